"""Lab hosts: network namespaces joined to the root namespace by veth pairs (pyroute2).

A ``Topology`` is a declaration (hosts, addresses, MACs: all derived from the spec, so
known before anything exists). ``up()`` builds it, ``down()`` removes exactly what it
built. What was built is recorded in a state file under /run/xdplab before each step,
so ``down()`` works after the creating process crashed (or from ``xdplab down``).

Default topology, as xdp-tutorial's testenv: hosts ``h1`` and ``h2``; host ``hN`` is
netns ``<prefix>hN`` with interface ``veth0`` inside; its peer ``<prefix>hN`` sits in the
root namespace, where XDP programs are attached::

    root ns  <prefix>h1  10.11.1.1/24  fc00:dead:cafe:1::1/64
                 |  veth
    netns    veth0       10.11.1.2/24  fc00:dead:cafe:1::2/64  (default route via .1)
"""
from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from .. import kernel, owners
from ..errors import TopologyError, UsageError
from ..owners import current_owner, refuse_others
import ipaddress

from ..paths import DEFAULT_NET, DEFAULT_PREFIX, STATE_DIR  # noqa: E402  (re-exported)
NETNS_DIR = Path("/run/netns")
IFNAMSIZ = 16                  # interface names: at most IFNAMSIZ - 1 = 15 characters
_NAME = re.compile(r"[A-Za-z0-9_.-]*")
MAX_HOSTS = 254                # the host index is an IPv4 address byte (10.<net>.<index>.x)


def _mac(net: int, idx: int, side: int) -> str:
    # locally administered, "XL" in the OUI bytes, then the subnet, host and side
    return f"02:58:4c:{net:02x}:{idx:02x}:{side:02x}"


@dataclass(frozen=True)
class Host:
    """One lab host. ``outside`` is the root-namespace end of its veth (attach XDP there),
    ``inside`` the end within the host's netns."""

    name: str
    index: int
    prefix: str
    net: int
    inside: str = "veth0"

    @property
    def netns(self) -> str:
        return f"{self.prefix}{self.name}"

    @property
    def outside(self) -> str:
        return f"{self.prefix}{self.name}"

    ipv4 = property(lambda s: f"10.{s.net}.{s.index}.2")
    gw4 = property(lambda s: f"10.{s.net}.{s.index}.1")
    ipv6 = property(lambda s: f"fc00:dead:cafe:{s.net:x}{s.index:02x}::2")
    gw6 = property(lambda s: f"fc00:dead:cafe:{s.net:x}{s.index:02x}::1")
    mac = property(lambda s: _mac(s.net, s.index, 2))
    gw_mac = property(lambda s: _mac(s.net, s.index, 1))

    def as_device(self) -> kernel.Device:
        """Where XDP attaches for this host: ``outside`` (see ``kernel.resolve_device``)."""
        return kernel.Device(self.outside)

    @property
    def ifindex(self) -> int:
        """ifindex of ``outside`` in the root namespace (0 when the host is down)."""
        return kernel.ifindex(self.outside)

    # --- doing things from inside the host ---------------------------------------
    def run(self, cmd, *, check: bool = True, timeout: float = 30, **kw) -> subprocess.CompletedProcess:
        """Run a command inside the host's netns (no /sys remount, unlike `ip netns exec`)."""
        if isinstance(cmd, str):
            cmd = ["/bin/sh", "-c", cmd]
        fd = os.open(NETNS_DIR / self.netns, os.O_RDONLY)
        try:
            return subprocess.run(cmd, preexec_fn=lambda: kernel.setns(fd), pass_fds=(fd,),
                                  capture_output=True, text=True, check=check, timeout=timeout,
                                  **kw)
        finally:
            os.close(fd)

    def socket(self, family: int = socket.AF_INET, type: int = socket.SOCK_DGRAM,
               timeout: float | None = 1.0) -> socket.socket:
        """A socket inside the host (its netns): ``h.socket().sendto(b"x", (h.gw4, 9))``."""
        return kernel.netns_socket(self.netns, family, type, timeout=timeout)

    def ping(self, dst: str, count: int = 3, interval: float = 0.2, timeout: float = 1) -> int:
        """Ping ``dst`` from this host; returns how many replies came back."""
        r = self.run(["ping", "-n", "-q", "-c", str(count), "-i", str(interval),
                      "-W", str(timeout), dst], check=False, timeout=count * (interval + timeout) + 10)
        for line in r.stdout.splitlines():
            if "received" in line:
                return int(line.split(",")[1].split()[0])
        raise TopologyError(f"ping from {self.name} failed: {r.stderr.strip() or r.stdout.strip()}")

    def send(self, packets, count: int = 1, inter: float = 0) -> int:
        """Send scapy packets (Ethernet frames, or IP packets that get this host's Ethernet
        header) out of the host's interface. Returns the number of frames sent."""
        from scapy.all import Ether, conf
        if not isinstance(packets, (list, tuple)):
            packets = [packets]
        frames = [p if p.haslayer(Ether) else Ether(src=self.mac, dst=self.gw_mac) / p
                  for p in packets]
        sock = kernel.run_in_netns(self.netns, conf.L2socket, iface=self.inside)
        try:
            sent = 0
            for _ in range(count):
                for f in frames:
                    sock.send(f)
                    sent += 1
                    if inter:
                        time.sleep(inter)
            return sent
        finally:
            sock.close()

    def sniffer(self, **kwargs):
        """A started scapy AsyncSniffer on the host's interface (call ``.stop()`` for packets)."""
        from scapy.all import AsyncSniffer, conf
        sock = kernel.run_in_netns(self.netns, conf.L2listen, iface=self.inside)
        sn = AsyncSniffer(opened_socket=sock, **kwargs)
        sn.start()
        return sn

    def __repr__(self) -> str:
        return (f"<Host {self.name}: netns {self.netns} {self.inside} {self.ipv4}/{self.ipv6} "
                f"<-> {self.outside} {self.gw4}>")


@dataclass
class Topology:
    """Declarative lab topology. ``Topology()`` is the default two-host lab."""

    hosts: tuple = ("h1", "h2")
    prefix: str = DEFAULT_PREFIX
    net: int = DEFAULT_NET
    _hosts: dict = field(init=False, repr=False)

    def __post_init__(self):
        self._validate()
        self._hosts = {h: Host(h, i + 1, self.prefix, self.net) for i, h in enumerate(self.hosts)}

    def _validate(self) -> None:
        """Refuse (``UsageError``) a spec the kernel would reject half-way through ``up()``:
        names become interface names (<= 15 characters, no '/', ':' or spaces) and netns
        files; ``net`` and the host index are bytes of the hosts' IPv4 addresses."""
        accepted = "letters, digits, '_', '.', '-'"
        p = self.prefix
        if not isinstance(p, str) or not _NAME.fullmatch(p):
            raise UsageError(f"Topology prefix={p!r}: use only {accepted} (it starts every "
                             "interface and netns name)", hint="e.g. prefix='my-'")
        h = self.hosts
        if isinstance(h, str) or not isinstance(h, (tuple, list)) or not h:
            raise UsageError(f"Topology hosts={h!r}: give a non-empty tuple of host names, "
                             "e.g. ('h1', 'h2')")
        if len(h) > MAX_HOSTS:
            raise UsageError(f"Topology hosts: {len(h)} hosts, at most {MAX_HOSTS} fit one net")
        for name in h:
            if not isinstance(name, str) or not name or not _NAME.fullmatch(name) or name in (".", ".."):
                raise UsageError(f"Topology host name {name!r}: use a non-empty name of {accepted}")
            if len(p) + len(name) > IFNAMSIZ - 1:
                raise UsageError(f"Topology prefix {p!r} + host name {name!r} = {len(p) + len(name)} "
                                 f"characters: an interface name takes at most {IFNAMSIZ - 1} (IFNAMSIZ-1)",
                                 hint="use a shorter prefix or host names")
        if len(set(h)) != len(h):
            raise UsageError(f"Topology hosts={tuple(h)!r}: host names must be unique")
        n = self.net
        if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= 255:
            raise UsageError(f"Topology net={n!r}: give an int in 0..255 (hosts get 10.<net>.<host>.0/24)")

    def __getitem__(self, name: str) -> Host:
        return self._hosts[name]

    def __iter__(self):
        return iter(self._hosts.values())

    @property
    def state_file(self) -> Path:
        return STATE_DIR / f"topology-{self.prefix.rstrip('-') or 'default'}.json"

    # --- state -----------------------------------------------------------------
    def _record(self, created: list) -> None:
        STATE_DIR.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        state = {"prefix": self.prefix, "created": created}
        if current_owner():                 # a workshop attendee's lab: whose it is
            state["owner"] = current_owner()
        tmp.write_text(json.dumps(state))
        tmp.replace(self.state_file)

    def _recorded(self) -> list:
        try:
            return json.loads(self.state_file.read_text())["created"]
        except (OSError, ValueError, KeyError):
            return []

    # --- build / remove --------------------------------------------------------
    def is_up(self) -> bool:
        return all((NETNS_DIR / h.netns).exists() and h.ifindex for h in self)

    def up(self) -> "Topology":
        """Build every host that is not already there (idempotent)."""
        refuse_others(self.prefix, "build hosts under")
        created = self._recorded()
        for h in self:
            if (NETNS_DIR / h.netns).exists() and h.ifindex:
                continue
            self._remove_host(h)           # half-built leftovers
            self._check_subnet(h)
            created += [["netns", h.netns], ["link", h.outside]]
            self._record(created)
            kernel.netns_create(h.netns)
            kernel.netlink.veth_add(h.outside, h.inside, h.netns, mac=h.gw_mac, peer_mac=h.mac)
            kernel.netlink.configure(h.outside, addresses=[(h.gw4, 24), (h.gw6, 64)],
                                     neighbours=[(h.ipv4, h.mac), (h.ipv6, h.mac)])
            kernel.netlink.link_up("lo", h.netns)
            kernel.netlink.configure(h.inside, h.netns, addresses=[(h.ipv4, 24), (h.ipv6, 64)],
                                     neighbours=[(h.gw4, h.gw_mac), (h.gw6, h.gw_mac)],
                                     gateways=[h.gw4, h.gw6])
        return self

    def _check_subnet(self, h: Host) -> None:
        """Refuse a host subnet some interface of the root namespace already has: two
        connected routes to one /24 would send this host's replies out of the other."""
        subnet = ipaddress.ip_network(f"{h.gw4}/24", strict=False)
        for other, addr in kernel.netlink.ipv4_addresses():
            if ipaddress.ip_address(addr) in subnet:
                raise TopologyError(
                    f"subnet {subnet} of host {h.name} is already in use: {other} has {addr}",
                    hint=f"another topology uses net={self.net}: give this one another net= "
                         "(XDPLAB_NET for the default lab), or take the other down")

    def _remove_host(self, h: Host) -> None:
        kernel.netlink.links_del([h.outside])
        if (NETNS_DIR / h.netns).exists():
            kernel.netns_remove(h.netns)

    def down(self) -> list[str]:
        """Remove what this topology built (also what a crashed process recorded).
        Returns the names removed."""
        refuse_others(self.prefix, "take down")
        removed = []
        items = self._recorded() + [[k, h.netns] for h in self for k in ("link", "netns")]
        removed += kernel.netlink.links_del([name for kind, name in items if kind == "link"])
        for kind, name in items:
            if kind == "netns" and (NETNS_DIR / name).exists():
                kernel.netns_remove(name)
                removed.append(f"netns {name}")
        self.state_file.unlink(missing_ok=True)
        return removed

    def status(self) -> list[dict]:
        rows = []
        for h in self:
            xdp = kernel.xdp_state(h.outside) if h.ifindex else {}
            rows.append({"host": h.name, "netns": h.netns, "up": bool(h.ifindex and (NETNS_DIR / h.netns).exists()),
                         "outside": h.outside, "ipv4": h.ipv4, "ipv6": h.ipv6,
                         "xdp": ", ".join(f"{m}:{kernel.prog_name_by_id(p)}#{p}" for m, p in xdp.items()) or "-"})
        return rows

    def __enter__(self):
        return self.up()

    def __exit__(self, *exc):
        self.down()

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td>{r['host']}</td><td>{'up' if r['up'] else 'down'}</td><td><code>{r['netns']}</code></td>"
            f"<td><code>{r['outside']}</code></td><td>{r['ipv4']}</td><td>{r['ipv6']}</td><td>{r['xdp']}</td></tr>"
            for r in self.status())
        return ("<table><tr><th>host</th><th>state</th><th>netns</th><th>root-side veth (attach here)</th>"
                f"<th>IPv4</th><th>IPv6</th><th>XDP</th></tr>{rows}</table>")

    def __repr__(self) -> str:
        return "\n".join(
            f"{r['host']:4} {'up' if r['up'] else 'down':4} netns={r['netns']} veth={r['outside']} "
            f"{r['ipv4']} {r['ipv6']} xdp={r['xdp']}" for r in self.status())


def lab(prefix: str | None = None) -> Topology:
    """The default lab topology (``xdplab.lab()``), built if it is not up yet."""
    t = Topology() if prefix is None else Topology(prefix=prefix)
    return t if t.is_up() else t.up()


def leftovers(prefix: str = DEFAULT_PREFIX) -> dict:
    """Namespaces and root-namespace links whose names start with ``prefix``."""
    ns = sorted(p.name for p in NETNS_DIR.glob(f"{prefix}*")) if NETNS_DIR.exists() else []
    return {"netns": ns, "links": sorted(kernel.netlink.link_names(prefix=prefix))}


def remove(links, namespaces) -> None:
    """Delete these root-namespace links and these network namespaces."""
    kernel.netlink.links_del(links)
    for name in namespaces:
        kernel.netns_remove(name)


def remove_all(prefix: str = DEFAULT_PREFIX) -> dict:
    """Remove every namespace and link named with ``prefix`` (``xdplab down --all``)."""
    refuse_others(prefix, "remove")
    left = leftovers(prefix)
    remove(left["links"], left["netns"])
    for f in STATE_DIR.glob("topology-*.json") if STATE_DIR.exists() else []:
        try:
            if json.loads(f.read_text()).get("prefix", "").startswith(prefix):
                f.unlink()
        except (OSError, ValueError):
            pass
    return left
