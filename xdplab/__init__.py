"""xdplab: learn and debug XDP in Jupyter on a real kernel.

    import xdplab
    lab = xdplab.lab()                       # the lab hosts (built if missing)
    prog = xdplab.load(C_SOURCE)             # compile (BCC) + verify
    prog.attach(lab["h1"].outside)           # bpf_link, native mode
    lab["h1"].ping(lab["h1"].gw4); prog.counters()

In a notebook: ``%load_ext xdplab`` then ``%%xdp --dev xl-h1`` cells.
"""
from .errors import (AttachError, ClosedError, CompileError, MapError, MapKeyError, NotSupported,
                     TopologyError, UsageError, VerifierError, XDPLabError)
from .program import ACTIONS, Link, Program, XDPProgram, detach_all, load
from .topology import Host, Topology
from .capture import Capture
from .trace import DropDetector
from .byid import AttachedProgram, attached

__version__ = "0.1.0"


def lab(prefix: str | None = None) -> Topology:
    """The default lab topology, built if it is not up yet."""
    t = Topology() if prefix is None else Topology(prefix=prefix)
    return t if t.is_up() else t.up()


def doctor(**kw):
    """Check this machine for the lab; returns a report that shows itself as a table."""
    from .health import run
    return run(**kw)


def load_ipython_extension(ipython):
    from .magics import load_ipython_extension as _load
    _load(ipython)


def unload_ipython_extension(ipython):
    from .magics import unload_ipython_extension as _unload
    _unload(ipython)


__all__ = ["ACTIONS", "AttachError", "Capture", "ClosedError", "CompileError", "DropDetector", "Host", "Link", "NotSupported", "Program",
           "MapError", "MapKeyError", "Topology", "TopologyError", "UsageError", "VerifierError", "XDPLabError", "XDPProgram",
           "detach_all", "doctor", "lab", "load"]
