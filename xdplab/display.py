"""Where output goes: a Jupyter kernel (rich HTML, widgets) or a terminal (text)."""
from __future__ import annotations

import sys


def in_notebook() -> bool:
    """True inside a Jupyter kernel (IPKernelApp), False in a script or a terminal IPython."""
    ip = sys.modules.get("IPython")
    if ip is None:
        try:
            from IPython import get_ipython
        except ImportError:
            return False
    else:
        get_ipython = ip.get_ipython
    shell = get_ipython()
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})
