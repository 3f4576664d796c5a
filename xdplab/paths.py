"""Where xdplab's files are: one place for every path computed from the package.

``PACKAGE_BPF`` is package data (installed with the package): the headers every program
gets and the programs the library itself runs. ``CHECKOUT`` is the source checkout the
package was imported from, or None for an installed package: the labs (notebooks) and
their reference solutions only exist there.
"""
from __future__ import annotations

import os
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
PACKAGE_BPF = PACKAGE / "bpf"
INCLUDE_DIR = PACKAGE_BPF / "include"          # xdplab.h and the headers labs include
PROGRAMS_DIR = PACKAGE_BPF / "programs"        # C the library loads itself (never a lab's answer)
JUPYTER = PACKAGE / "jupyter"                  # JupyterLab settings and the C-cells labextension

STATE_DIR = Path(os.environ.get("XDPLAB_STATE_DIR", "/run/xdplab"))   # what topologies built
DEFAULT_PREFIX = os.environ.get("XDPLAB_PREFIX", "xl-")                 # this lab's names
DEFAULT_NET = int(os.environ.get("XDPLAB_NET", "11"))

_root = PACKAGE.parent
CHECKOUT: Path | None = _root if (_root / "labs").is_dir() and (_root / "lab").is_file() else None
LABS = CHECKOUT / "labs" if CHECKOUT else None
#: lab material outside the package: reference solutions and programs labs provide
LAB_BPF = CHECKOUT / "bpf" if CHECKOUT else None
SOLUTIONS = LAB_BPF / "solutions" if LAB_BPF else None


def program(name: str) -> Path:
    """A C program the library ships (package data), e.g. ``program("policer.c")``."""
    return PROGRAMS_DIR / name


def lab_file(relative: str) -> Path:
    """A file of the checkout's lab material (``bpf/``): ``lab_file("solutions/01-hello-xdp/x.c")``.
    Raises FileNotFoundError for an installed package (the labs live in the checkout)."""
    if LAB_BPF is None:
        raise FileNotFoundError(f"{relative}: lab material is only in a source checkout of xdplab")
    return LAB_BPF / relative
