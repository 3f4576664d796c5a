"""xdplab: learn and debug XDP in Jupyter on a real kernel.

    import xdplab
    lab = xdplab.lab()                       # the lab hosts (built if missing)
    prog = xdplab.load(C_SOURCE)             # compile (BCC) + verify
    prog.attach(lab["h1"].outside)           # bpf_link, native mode
    lab["h1"].ping(lab["h1"].gw4); prog.counters()

In a notebook: ``%load_ext xdplab`` then ``%%xdp --dev xl-h1`` cells.
"""
from . import errors, kernel, paths
from .errors import (AttachError, ClosedError, CompileError, MapError, MapKeyError, NotSupported,
                     TopologyError, UsageError, VerifierError, XDPLabError)
from .programs.program import ACTIONS, Link, Program, XDPProgram, detach_all, load
from .net.topology import Host, Topology, lab
from .programs.capture import Capture
from .tools.drops import DropDetector
from . import programs, net, tools  # the layers (see ARCHITECTURE.md)
from .ui import doctor as _doctor
from .ui.magics import load_ipython_extension, unload_ipython_extension
from .programs.byid import AttachedProgram, attached

__version__ = "0.1.0"


def doctor(**kw):
    """Check this machine for the lab; returns a report that shows itself as a table."""
    return _doctor.run(**kw)


__all__ = ["ACTIONS", "AttachError", "Capture", "ClosedError", "CompileError", "DropDetector", "Host", "Link", "NotSupported", "Program",
           "MapError", "MapKeyError", "Topology", "TopologyError", "UsageError", "VerifierError", "XDPLabError", "XDPProgram",
           "detach_all", "doctor", "lab", "load"]
