"""One notion of a network device: a name in a network namespace.

``resolve`` is the one place that turns what a caller names a device by into a
``Device``: an interface name (root namespace), an ifindex, ``(netns, name)``, a
``Device``, or any object with ``as_device()`` (a lab ``Host`` of any topology answers
with the end where XDP attaches: its root-side veth, or the router's port for a routed
host). ``xdplab.net.device.resolve`` adds lab host names ("h1") of every topology up.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import UsageError
from . import core as bpf


@dataclass(frozen=True)
class Device:
    """An interface ``name`` in network namespace ``netns`` (None: the root namespace)."""

    name: str
    netns: str | None = None

    @property
    def ifindex(self) -> int:
        """Its ifindex inside its namespace (0 when there is no such interface now)."""
        return bpf.run_in_netns(self.netns, bpf.ifindex, self.name) if self.netns else bpf.ifindex(self.name)

    def exists(self) -> bool:
        return bool(self.ifindex)

    def run(self, fn, *args, **kw):
        """Call ``fn`` with the calling thread in the device's namespace (ifindexes,
        netlink and bpf_link creation then see this device)."""
        return bpf.run_in_netns(self.netns, fn, *args, **kw) if self.netns else fn(*args, **kw)

    def __str__(self) -> str:
        return f"{self.netns}:{self.name}" if self.netns else self.name


def resolve(dev, netns: str | None = None) -> Device:
    """``dev`` as a Device: a name (in ``netns``, default the root namespace), an ifindex,
    ``(netns, name)``, a Device, or an object with ``as_device()`` (a lab Host)."""
    if isinstance(dev, Device):
        return dev
    as_device = getattr(dev, "as_device", None)
    if callable(as_device):
        return as_device()
    if isinstance(dev, tuple) and len(dev) == 2 and isinstance(dev[1], str):
        return Device(dev[1], dev[0] or None)
    if isinstance(dev, bool):
        raise UsageError(f"{dev!r} is not a device", hint="name it: 'xl-h1', an ifindex, lab['h1'] or (netns, name)")
    if isinstance(dev, int):
        name = bpf.run_in_netns(netns, bpf.link_name, dev) if netns else bpf.link_name(dev)
        if name is None:
            where = f"network namespace {netns}" if netns else "the root namespace"
            raise UsageError(f"no interface with ifindex {dev} in {where}",
                             hint="`ip -br link` lists interfaces and their indexes")
        return Device(name, netns)
    if isinstance(dev, str) and dev:
        return Device(dev, netns)
    raise UsageError(f"{dev!r} ({type(dev).__name__}) is not a device",
                     hint="pass an interface name, an ifindex, a lab Host (lab['h1']) or (netns, name)")
