"""Devices by the names a learner uses: ``kernel.resolve_device`` plus lab host names.

    device.resolve("h1")            # lab host h1 of the default lab -> Device('xl-h1')
    device.resolve("h3")            # h3 of the router lab (up) -> Device('xl-rh3', 'xl-rrt')
    device.resolve("eth1"), device.resolve(7), device.resolve(("xl-h1", "veth0"))

A name that is an interface of the root namespace is that interface; otherwise it is
looked up as a host of every topology of this lab that is up (the default lab first),
which is what ``%%xdp --dev`` does.
"""
from __future__ import annotations

from .. import kernel
from ..errors import UsageError
from ..kernel import Device
from . import labstate
from .topology import DEFAULT_PREFIX, Topology


def hosts_up(prefix: str = DEFAULT_PREFIX) -> dict:
    """{host name: Host} over every topology of this lab that is up (first one wins)."""
    out = {}
    for t in labstate.topologies(prefix):
        if t.is_up():
            for h in t:
                out.setdefault(h.name, h)
    return out


def resolve(dev, netns: str | None = None, *, prefix: str = DEFAULT_PREFIX) -> Device:
    """Like ``kernel.resolve_device``, and a string naming no interface may name a lab
    host ("h1") of any topology that is up."""
    d = kernel.resolve_device(dev, netns)
    if isinstance(dev, str) and netns is None and not d.exists():
        host = hosts_up(prefix).get(dev)
        if host is None and dev in Topology.__dataclass_fields__["hosts"].default and prefix == DEFAULT_PREFIX:
            host = Topology()[dev]                      # the default lab's, down: attach says so
        if host is not None:
            return host.as_device()
    return d


def describe(dev) -> str:
    """'xl-h1' or 'xl-rrt:xl-rh3' (for messages)."""
    return str(resolve(dev))


__all__ = ["Device", "UsageError", "describe", "hosts_up", "resolve"]
