"""Lab 07 (drivers): the `plan(src, dst)` exercise -- which redirect mode, and does the
target need a program of its own, given two devices' XDP features."""
from __future__ import annotations

import re

from .. import kernel
from ..net.drivers import Features
from .grading import Checker, Report


def _fake(name: str, driver: str, xdp: set) -> Features:
    return Features(name, None, 0, driver, driver, 1, 1, frozenset(xdp))


def check_plan(plan):
    """Check ``plan(src, dst) -> {'mode': 'native'|'generic', 'target_needs_program': bool}``
    (lab 07 exercise): how to redirect from device ``src`` to device ``dst`` given their
    features — native when ``src`` can redirect natively; a program on the target side
    when ``dst`` lacks ndo-xmit (only matters in native mode). Returns a grading Report."""
    veth = {"basic", "redirect", "rx-sg"}
    cases = [
        ("veth -> veth whose peer has XDP", _fake("a", "veth", veth), _fake("b", "veth", veth | {"ndo-xmit"}),
         {"mode": "native", "target_needs_program": False}),
        ("veth -> veth without a peer program", _fake("a", "veth", veth), _fake("b", "veth", veth),
         {"mode": "native", "target_needs_program": True}),
        ("tun (no native XDP) -> tap", _fake("tun0", "tun", set()), _fake("tap0", "tun", {"basic", "redirect", "ndo-xmit"}),
         {"mode": "generic", "target_needs_program": False}),
        ("tun -> veth without peer program (generic redirect uses the normal xmit path)",
         _fake("tun0", "tun", set()), _fake("b", "veth", veth),
         {"mode": "generic", "target_needs_program": False}),
        ("NIC with XDP_TX but no redirect -> virtio_net", _fake("n0", "nic", {"basic"}),
         _fake("v0", "virtio_net", {"basic", "redirect", "rx-sg"}),
         {"mode": "generic", "target_needs_program": False}),
        ("virtio_net -> virtio_net with no program yet", _fake("v0", "virtio_net", {"basic", "redirect"}),
         _fake("v1", "virtio_net", {"basic", "redirect"}), {"mode": "native", "target_needs_program": True}),
    ]
    report = Report("07", "plan a redirect from driver features", f"plan() ({getattr(plan, '__name__', plan)})")
    c = Checker(None, report)
    for what, src, dst, want in cases:
        try:
            got = plan(src, dst)
        except Exception as e:        # the learner's code: report it, do not raise
            got = f"{type(e).__name__}: {e}"
        c.that(what, want, got, kind="plan")
    return report


# --- helpers of the notebook's virtio_net part (the VM's lab NIC) ------------------------

#: ethtool -k's names for features the kernel calls otherwise
_OFFLOAD_ALIASES = {"rx-checksumming": "rx-checksum", "generic-receive-offload": "rx-gro"}


def virtio_lab_nic() -> str | None:
    """A virtio_net interface that does not carry the default route (never eth0 of a VM)."""
    busy = kernel.default_route_ifnames()
    for dev in kernel.netlink.link_names():
        if dev in busy:
            continue
        try:
            if kernel.ethtool_drvinfo(dev)["driver"] == "virtio_net":
                return dev
        except OSError:
            continue
    return None


def channels(dev: str) -> tuple[int, int]:
    """(maximum, current) combined queue pairs (``ethtool -l``)."""
    ch = kernel.ethtool_channels(dev) or {}
    return ch.get("max_combined", 0), ch.get("combined", 0)


def offloads(dev: str, names=("rx-gro-hw", "rx-checksumming", "generic-receive-offload")) -> dict:
    """Offload features as ``ethtool -k`` shows them: {name: 'on'|'off'}."""
    active = kernel.ethtool_features(dev)
    return {n: "on" if active.get(_OFFLOAD_ALIASES.get(n, n)) else "off" for n in names}


def xdp_tx_queues(dev: str) -> list[int]:
    """TX queues the driver lists in its statistics right now (virtio_net lists the XDP ones
    only while a program is attached)."""
    return sorted({int(m[1]) for k in kernel.ethtool_stats(dev)
                   if (m := re.match(r"tx_?(?:queue_)?(\d+)_", k))})
