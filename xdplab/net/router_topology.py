"""Topologies beyond the two-host default, built on ``xdplab.topology``.

``RouterTopology``: hosts h1, h2, h3 behind a router that is a network namespace of its
own (``<prefix>rt``), so forwarding is switched on there and nowhere else::

    netns <prefix>h1        netns <prefix>rt (the router)          netns <prefix>h3
    veth0 10.N.1.2 ---- <prefix>h1 10.N.1.1   <prefix>h3 10.N.3.1 ---- veth0 10.N.3.2
                                   <prefix>h2 10.N.2.1 ---- veth0 10.N.2.2 (netns <prefix>h2)

Every host has its default route via the router; the router has the three /24s
connected and permanent neighbour entries for the hosts (so ``bpf_fib_lookup`` finds
a next hop at once). XDP programs for the router go on the router's interfaces,
attached inside its netns: ``topo.attach(prog, "h1")``.

``shape(dev, rate)`` puts a tbf qdisc on an interface's egress (pyroute2's tc API) and
``qdisc_stats`` reads its counters: with ``RouterTopology(hosts=("h1", "h2"))`` and
``topo.shape("h2", "10mbit")`` the router's link to h2 is the slow one of a
fast->slow pair.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from .. import kernel
from ..errors import TopologyError
from .topology import DEFAULT_NET, DEFAULT_PREFIX, NETNS_DIR, Host, Topology
from ..programs.program import _LINKS
from .redirect import remove_peer_program
import os



@dataclass(frozen=True)
class RoutedHost(Host):
    """A host whose ``outside`` end lives in the router's netns (``router``), not in the
    root namespace."""

    router: str = ""

    def as_device(self) -> kernel.Device:
        """The router's port towards this host (in the router's netns)."""
        return kernel.Device(self.outside, self.router)

    @property
    def ifindex(self) -> int:
        """ifindex of ``outside`` in the router's netns (0 when it is not there)."""
        if not (NETNS_DIR / self.router).exists():
            return 0
        return kernel.run_in_netns(self.router, kernel.ifindex, self.outside)

    def __repr__(self) -> str:
        return (f"<Host {self.name}: netns {self.netns} {self.inside} {self.ipv4}/{self.ipv6} "
                f"<-> {self.outside} {self.gw4} in {self.router}>")


@dataclass
class RouterTopology(Topology):
    """Hosts behind a router namespace ``<prefix>rt`` with IPv4/IPv6 forwarding on
    (in that namespace only). ``RouterTopology()`` has hosts h1, h2, h3; its default
    prefix (``<XDPLAB_PREFIX>r``) and subnet keep it apart from the default lab's hosts,
    whose names it would otherwise share."""

    hosts: tuple = ("h1", "h2", "h3")
    prefix: str = f"{DEFAULT_PREFIX}r"
    net: int = (DEFAULT_NET + 100) % 250 + 1

    def __post_init__(self):
        super().__post_init__()
        self._hosts = {h: RoutedHost(h, i + 1, self.prefix, self.net, router=self.router)
                       for i, h in enumerate(self.hosts)}

    @property
    def router(self) -> str:
        """Name of the router's network namespace."""
        return f"{self.prefix}rt"

    @property
    def state_file(self):
        return super().state_file.with_name(super().state_file.stem + "-rt.json")

    # --- build / remove --------------------------------------------------------
    def is_up(self) -> bool:
        return (NETNS_DIR / self.router).exists() and super().is_up()

    def up(self) -> "RouterTopology":
        """Build the router netns and every missing host (idempotent): ``Topology.up``
        makes each host with its outside end in the root namespace; that end is then
        moved into the router and configured there."""
        if self.is_up():
            return self
        created = self._recorded()
        if ["netns", self.router] not in created:
            self._record([["netns", self.router], *created])
        if not (NETNS_DIR / self.router).exists():
            kernel.netns_create(self.router)
        kernel.netlink.link_up("lo", self.router)
        self.forwarding(True)
        super().up()
        for h in self:
            if not kernel.netlink.link_move(h.outside, self.router):
                continue                 # already in the router
            self._configure_router_side(h)
        return self

    def _configure_router_side(self, h: Host) -> None:
        # moving a device to another netns flushes its addresses and neighbours
        kernel.netlink.configure(h.outside, self.router, addresses=[(h.gw4, 24), (h.gw6, 64)],
                                 neighbours=[(h.ipv4, h.mac), (h.ipv6, h.mac)])

    def _remove_host(self, h: Host) -> None:
        super()._remove_host(h)
        if (NETNS_DIR / self.router).exists():
            kernel.netlink.links_del([h.outside], self.router)

    def down(self) -> list[str]:
        """Remove the hosts and the router namespace (with everything in it)."""
        self.detach()
        removed = super().down()
        if (NETNS_DIR / self.router).exists():
            kernel.netns_remove(self.router)
            removed.append(f"netns {self.router}")
        return removed

    # --- the router ------------------------------------------------------------
    def in_router(self, fn, *args, **kwargs):
        """Call ``fn`` on a thread inside the router's netns."""
        return kernel.run_in_netns(self.router, fn, *args, **kwargs)

    def dev(self, host_or_dev: str) -> str:
        """The router's interface towards ``host_or_dev`` (a host name or an interface)."""
        return self[host_or_dev].outside if host_or_dev in self.hosts else host_or_dev

    def attach(self, prog, host_or_dev: str, mode: str = "native", **kw):
        """Attach ``prog`` to the router's interface towards a host (inside the router's
        netns); returns the Link."""
        return self.in_router(prog.attach, self.dev(host_or_dev), mode, **kw)

    def attach_host(self, prog, host: str, mode: str = "native", **kw):
        """Attach ``prog`` to ``veth0`` inside a host. A native XDP_REDIRECT/XDP_TX into a
        veth only arrives when the veth's peer runs an XDP program (it needs the peer's
        NAPI), so a router redirecting to a host needs one there -- a pass program will do."""
        h = self[host]
        return kernel.run_in_netns(h.netns, prog.attach, h.inside, mode, force=True, **kw)

    def namespaces(self) -> list[str]:
        return [self.router, *(h.netns for h in self)]

    def detach(self) -> int:
        """Detach every XDP program this process attached inside this topology (router
        ports and hosts' veth0); returns how many. Programs stay loaded."""
        inodes = {os.stat(NETNS_DIR / n).st_ino for n in self.namespaces() if (NETNS_DIR / n).exists()}
        mine = [l for l in list(_LINKS.values()) if l.netns in inodes]
        for l in mine:
            l.detach()
        return len(mine) + sum(remove_peer_program(h) for h in self)

    def run(self, cmd, **kw):
        """Run a command in the router's netns (see ``Host.run``)."""
        return Host("rt", 0, self.prefix, self.net).run(cmd, **kw)

    def sysctl(self, key: str, value=None) -> str:
        """Read (or write) a net.* sysctl of the router's namespace: /proc/sys/net is
        per network namespace of the *calling thread*."""
        path = "/proc/sys/" + key.replace(".", "/")

        def rw():
            if value is not None:
                with open(path, "w") as f:
                    f.write(str(int(value) if isinstance(value, bool) else value))
            with open(path) as f:
                return f.read().strip()
        return self.in_router(rw)

    def forwarding(self, on: bool | None = None) -> bool:
        """Kernel IP forwarding in the router (IPv4 and IPv6); ``on`` sets it. Note that
        ``bpf_fib_lookup`` honours it too: with forwarding off on the ingress interface
        it answers BPF_FIB_LKUP_RET_FWD_DISABLED."""
        if on is not None:
            self.sysctl("net.ipv4.conf.all.forwarding", on)
            self.sysctl("net.ipv6.conf.all.forwarding", on)
        return self.sysctl("net.ipv4.conf.all.forwarding") == "1"

    def snmp(self) -> dict:
        """The router's IP MIB (/proc/net/snmp ``Ip:`` lines): ``ForwDatagrams`` counts
        packets the kernel forwarded (ip_forward_finish), ``InReceives`` what IP saw."""
        def read():
            with open("/proc/thread-self/net/snmp") as f:   # /proc/net = the process's netns
                lines = [l.split() for l in f if l.startswith("Ip:")]
            return {k: int(v) for k, v in zip(lines[0][1:], lines[1][1:])}
        return self.in_router(read)

    def status(self) -> list[dict]:
        return self.in_router(super().status)

    # --- shaping (tc) ----------------------------------------------------------
    def shape(self, host_or_dev: str, rate="10mbit", burst="16kb", latency_ms: float = 20):
        """Shape the router's egress towards a host with a tbf qdisc (token bucket
        filter): ``rate`` bits/s (``"10mbit"`` or a number), ``burst`` bytes, at most
        ``latency_ms`` of queueing before tbf drops. Only the kernel's transmit path
        (dev_queue_xmit) goes through a qdisc: XDP_REDIRECT/XDP_TX frames never do."""
        return self.in_router(shape, self.dev(host_or_dev), rate, burst, latency_ms)

    def unshape(self, host_or_dev: str) -> None:
        self.in_router(unshape, self.dev(host_or_dev))

    def qdisc_stats(self, host_or_dev: str) -> dict:
        return self.in_router(qdisc_stats, self.dev(host_or_dev))

    def _repr_html_(self) -> str:
        return (f"<b>router netns <code>{self.router}</code></b> "
                f"(forwarding {'on' if self.is_up() and self.forwarding() else 'off'})"
                + super()._repr_html_())


def router_lab(hosts=("h1", "h2", "h3")) -> RouterTopology:
    """The lab's router topology (built if missing): prefix ``<XDPLAB_PREFIX>r``, so it
    never meets the default lab's hosts, and ``xdplab down --all`` removes it too."""
    t = RouterTopology(hosts=tuple(hosts))
    return t if t.is_up() else t.up()


# --- tc: token bucket shaping (in the calling thread's netns) ----------------------------

_UNITS = {"": 1, "k": 1e3, "m": 1e6, "g": 1e9}


def parse_rate(rate) -> int:
    """'10mbit', '1.5gbit', '800kbit', 10e6 -> bits per second."""
    if isinstance(rate, (int, float)):
        return int(rate)
    m = re.fullmatch(r"\s*([\d.]+)\s*([kmg]?)(bit|bps)?\s*", str(rate).lower())
    if not m:
        raise TopologyError(f"cannot read the rate {rate!r}", hint="write e.g. '10mbit' or 10_000_000")
    bits = float(m[1]) * _UNITS[m[2]]
    return int(bits * 8 if m[3] == "bps" else bits)       # tc: 'bps' means bytes/s


def parse_size(size) -> int:
    """'16kb', '1mb', 1500 -> bytes (k = 1024, as tc)."""
    if isinstance(size, (int, float)):
        return int(size)
    m = re.fullmatch(r"\s*([\d.]+)\s*([kmg]?)b?\s*", str(size).lower())
    if not m:
        raise TopologyError(f"cannot read the size {size!r}", hint="write e.g. '16kb' or 16384")
    return int(float(m[1]) * {"": 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3}[m[2]])


def shape(dev: str, rate="10mbit", burst="16kb", latency_ms: float = 20) -> dict:
    """Replace ``dev``'s root qdisc with tbf (rate in bits/s)."""
    if not kernel.ifindex(dev):
        raise TopologyError(f"no interface {dev!r} here to shape")
    kernel.netlink.qdisc_tbf(dev, parse_rate(rate), parse_size(burst), latency_ms)
    return qdisc_stats(dev)


def unshape(dev: str) -> None:
    kernel.netlink.qdisc_del_root(dev)


def qdisc_stats(dev: str) -> dict:
    """Root qdisc counters of ``dev``: kind, bytes, packets, drops, overlimits, backlog, qlen."""
    if not kernel.ifindex(dev):
        raise TopologyError(f"no interface {dev!r} here")
    return kernel.netlink.qdisc_root_stats(dev)
