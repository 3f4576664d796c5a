"""The kernel interface: every bpf(2), netlink, generic netlink, ethtool, AF_XDP socket and
tracefs call xdplab makes goes through this package. Its names are public; everything
above (programs, net, tools, notebooks, tests) imports ``xdplab.kernel`` and nothing below.
"""
from . import abi, features, probes  # noqa: F401  (probes register with features)
from .abi import *  # noqa: F401,F403
from .core import *  # noqa: F401,F403
from .device import Device, resolve as resolve_device  # noqa: F401
from . import netlink, tracefs  # noqa: F401
