"""Memory models, multi-buffer, RX hints and broadcast (issue 16), on the libbpf path.

    from xdplab import memory
    memory.require("xdp_frags")                   # NotSupported naming the version, or None
    memory.capabilities()                         # every probe of this module, as a table
    memory.page_pools(lab["h1"])                  # netdev netlink page-pool-get (Linux >= 6.8)
    memory.page_pool_stats()                      # page-pool-stats-get (CONFIG_PAGE_POOL_STATS)
    with memory.PageWatch() as w:                 # page_pool:* and xdp:mem_connect/disconnect
        ...                                       # (BCC tracepoint probes: no trampolines)
    w.table(); w.events; w.widget()               # per pool: held, released, in flight
    memory.set_mtu(lab["h1"], 9000)               # both ends of the host's veth (jumbo)
    prog = xdplab.load(SRC, bind_to=lab["h1"])    # device-bound: RX metadata kfuncs
    memory.rx_hints_program(lab["h1"])            # xdplab/bpf/programs/memory/rx_hints.c bound to the host
    flood = memory.Flood([h1, h2, h3])            # devmap broadcast, exclude ingress

The probes live in ``PROBES`` (one table: feature -> minimum kernel, how it is probed) so
that a central feature registry can take them over as they are.
"""
from __future__ import annotations

import html
import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from .. import kernel, paths
from ..kernel import features
from ..errors import Closable, NotSupported, UsageError, XDPLabError
from ..programs.libbpf import BPF_F_XDP_HAS_FRAGS, _prog_load_raw
from ..programs.program import Program
from ..programs.libbpf import BPF_F_XDP_DEV_BOUND_ONLY, lib
from ..programs import dialects
from ..programs import libbpf
from ..errors import CompileError
from ..programs.libbpf import _next_key
from ..net import redirect
from ..programs.prog_run import to_frame
from ..errors import ClosedError
import subprocess
import struct
import ctypes
import errno
import fcntl

BPF_DIR = paths.program("memory")          # the programs this module runs (package data)
TRACEFS = kernel.tracefs.TRACEFS
PAGE_SIZE = kernel.PAGE_SIZE
#: the linear part of an XDP buffer: a page minus XDP_PACKET_HEADROOM (256) and the
#: skb_shared_info at its end (320 B on x86_64): what BPF_PROG_RUN puts in one buffer
LINEAR_MAX = kernel.LINEAR_MAX
#: enum xdp_mem_type (include/net/xdp.h)
MEM_TYPES = {0: "page_shared", 1: "page_order0", 2: "page_pool", 3: "xsk_buff_pool"}
#: enum xdp_rss_hash_type bits (include/net/xdp.h)
RSS_L3 = {0x1: "IPv4", 0x2: "IPv6"}
RSS_L4 = {0x8: "TCP", 0x10: "UDP", 0x20: "SCTP", 0x40: "IPSEC"}


# --- kernel capabilities: one table ----------------------------------------------------

def _kallsyms(name: str) -> bool:
    pat = re.compile(rf" {re.escape(name)}(\s|$)")
    try:
        with open("/proc/kallsyms") as f:
            return any(pat.search(line) for line in f)
    except OSError:
        return False


def _frags_probe() -> str:
    fd, log = _prog_load_raw(bytes.fromhex("b700000002000000" "9500000000000000"), "xdplab_frags",
                             True, BPF_F_XDP_HAS_FRAGS)
    if fd < 0:
        return f"BPF_PROG_LOAD with BPF_F_XDP_HAS_FRAGS refused: {log.strip()[:80]}"
    os.close(fd)
    return ""


def _ksym_probe(*names):
    def probe() -> str:
        missing = [n for n in names if not _kallsyms(n)]
        return f"no {', '.join(missing)} in /proc/kallsyms" if missing else ""
    return probe


def _tracepoints_probe(*events):
    def probe() -> str:
        missing = [e for e in events if not (TRACEFS / "events" / e).is_dir()]
        return f"no tracepoint {', '.join(missing)}" if missing else ""
    return probe


@dataclass(frozen=True)
class Probe:
    name: str
    what: str
    min_kernel: str
    probe: object            # () -> "" when present, else why not

    def check(self) -> str:
        return self.probe()


PROBES = {p.name: p for p in (
    Probe("xdp_frags", "XDP multi-buffer (SEC(\"xdp.frags\"), BPF_F_XDP_HAS_FRAGS)", "5.18", _frags_probe),
    Probe("devmap_broadcast", "devmap broadcast (BPF_F_BROADCAST | BPF_F_EXCLUDE_INGRESS)", "5.13",
          _ksym_probe("dev_map_enqueue_multi")),
    Probe("rx_metadata_kfuncs", "device-bound programs and the RX metadata kfuncs (rx_hash, rx_timestamp)",
          "6.3", _ksym_probe("bpf_xdp_metadata_rx_hash", "bpf_xdp_metadata_rx_timestamp")),
    Probe("rx_vlan_tag", "the bpf_xdp_metadata_rx_vlan_tag kfunc", "6.8",
          _ksym_probe("bpf_xdp_metadata_rx_vlan_tag")),
    Probe("kern_ctx", "the kernel's xdp_buff behind ctx (bpf_cast_to_kern_ctx): an RX queue's memory model",
          "6.2", _ksym_probe("bpf_cast_to_kern_ctx")),
    Probe("page_pool_netlink", "page-pool-get / page-pool-stats-get (netdev netlink)", "6.8",
          lambda: features.missing("page_pool_netlink") or ""),     # the kernel floor's probe
    Probe("page_pool_tracepoints", "page_pool:* and xdp:mem_connect tracepoints", "5.0",
          _tracepoints_probe("page_pool/page_pool_state_hold", "page_pool/page_pool_release",
                             "xdp/mem_connect", "xdp/mem_disconnect")),
)}


def _register(p: Probe) -> None:
    """Each capability is a feature of the one kernel feature registry (kernel.features):
    doctor, the smoke suite and require() read it there."""
    if p.name not in features.FEATURES:
        features.register(features.Feature(p.name, p.what, p.min_kernel, f"xdplab.tools.memory probe {p.name}",
                                           probe_name=p.name), lambda: p.check() or None)


for _p in PROBES.values():
    _register(_p)


def require(name: str) -> None:
    """Raise NotSupported (naming the kernel version) unless this kernel has ``name``."""
    if name not in PROBES:
        raise UsageError(f"unknown capability {name!r}; one of {', '.join(PROBES)}")
    if name not in features.FEATURES:              # a probe added at run time: registered now
        _register(PROBES[name])
    why = features.missing(name)
    if why:
        raise features.get(name).error(f"{why} (this is {os.uname().release})")


def capabilities() -> "CapTable":
    """Every probe of this module on this kernel: name, needs, present, why not."""
    rows = []
    for p in PROBES.values():
        why = p.check()
        rows.append((p.name, p.what, p.min_kernel, not why, why))
    return CapTable(rows)


class CapTable(list):
    def __repr__(self):
        return "\n".join(f"{n:24} >= {v:5} {'yes' if ok else 'NO: ' + why}" for n, _, v, ok, why in self)

    def _repr_html_(self):
        body = "".join(f"<tr><td><code>{n}</code></td><td>{html.escape(w)}</td><td>{v}</td>"
                       f"<td>{'&#10004;' if ok else '&#10008; ' + html.escape(why)}</td></tr>"
                       for n, w, v, ok, why in self)
        return ("<table><tr><th>capability</th><th>what</th><th>needs Linux</th><th>here</th></tr>"
                + body + "</table>")


# --- netdev netlink: page pools (Linux >= 6.8) ---------------------------------------

NETDEV_CMD_PAGE_POOL_GET = kernel.NETDEV_CMD_PAGE_POOL_GET
NETDEV_CMD_PAGE_POOL_STATS_GET = kernel.NETDEV_CMD_PAGE_POOL_STATS_GET
_STATS = kernel.PAGE_POOL_STATS
_uint = kernel.nl_uint


def _pool_row(attrs: dict) -> dict:
    g = lambda k: _uint(attrs.get(f"NETDEV_A_PAGE_POOL_{k}"))
    return {"id": g("ID"), "ifindex": g("IFINDEX"), "napi_id": g("NAPI_ID"), "inflight": g("INFLIGHT"),
            "inflight_mem": g("INFLIGHT_MEM"), "detach_time": g("DETACH_TIME")}


def _dev_filter(dev):
    if dev is None:
        return None
    name = getattr(dev, "outside", dev)
    idx = name if isinstance(name, int) else kernel.ifindex(name)
    if not idx:
        raise UsageError(f"no interface {name!r} in this network namespace",
                         hint="give an interface name, an ifindex or a lab host")
    return idx


def page_pools(dev=None) -> list[dict]:
    """The page pools drivers registered with a netdev (netlink ``page-pool-get``), in the
    calling thread's netns: [{id, ifindex, napi_id, inflight, inflight_mem, detach_time}].
    ``dev`` (name, ifindex or Host) keeps that interface's. A driver that creates its pools
    without a netdev (veth does) does not show here: watch it with ``PageWatch``."""
    idx = _dev_filter(dev)
    rows = [_pool_row(dict(r["attrs"])) for r in kernel.page_pool_dump(stats=False)]
    return [r for r in rows if idx is None or r["ifindex"] == idx]


def page_pool_stats(dev=None) -> list[dict]:
    """``page-pool-stats-get`` per pool: {id, ifindex, alloc_fast, alloc_slow, ..., recycle_ring, ...}.
    Empty when the kernel is built without CONFIG_PAGE_POOL_STATS or no pool is listed."""
    idx = _dev_filter(dev)
    out = []
    for r in kernel.page_pool_dump(stats=True):
        a = dict(r["attrs"])
        info = a.get("NETDEV_A_PAGE_POOL_STATS_INFO")
        ia = dict(info["attrs"]) if info is not None else {}
        row = {"id": _uint(ia.get("NETDEV_A_PAGE_POOL_ID")), "ifindex": _uint(ia.get("NETDEV_A_PAGE_POOL_IFINDEX"))}
        row.update({s: _uint(a.get(f"STAT_{s}", 0)) for s in _STATS})
        if idx is None or row["ifindex"] == idx:
            out.append(row)
    return out


# --- tracing page pools and memory models (libbpf raw tracepoints) ----------------------

@dataclass(frozen=True)
class PoolRow:
    """What one page pool did while watched. ``held``: pages the pool took from the page
    allocator (page_pool_state_hold: the slow path, a refill); ``released``: pages it gave
    back for good (page_pool_state_release: unmapped and freed). Pages recycled through
    the pool's per-CPU cache (fast path) or its ptr_ring are neither: they go round
    without an event. ``in_flight`` = held - released while watched; ``destroyed``: the
    pool is gone (page_pool_release ran), ``inflight_at_destroy`` pages were still out then."""

    pool: int
    ifindex: int
    ifname: str
    held: int
    released: int
    destroyed: int
    inflight_at_destroy: int

    @property
    def in_flight(self) -> int:
        return self.held - self.released


@dataclass(frozen=True)
class MemModel:
    """One memory model seen by xdp:mem_connect / mem_disconnect (by mem id)."""

    mem_id: int
    mem_type: str
    ifindex: int
    ifname: str
    queue: int
    connects: int
    disconnects: int


class PageWatch(Closable):
    """Page pools and memory models, counted in the kernel by raw tracepoint programs
    (``xdplab/bpf/programs/memory/page_pools.c``, libbpf + CO-RE: no trampolines, no BCC compile):
    page_pool_state_hold / _release / page_pool_release per pool, attributed to the
    pool's device; xdp:mem_connect / mem_disconnect per memory model.

        with memory.PageWatch() as w:
            ...
        w.table(h1)          # PoolRow per pool of that device (all pools without dev)
        w.totals(h1)         # held, released, pools, destroyed
        w.models()           # MemModel per mem id
        w.widget()           # live table (4 Hz)

    It sees every pool of the machine (other programs' too): pass the device."""

    _close_when_collected = True

    def __init__(self):
        require("page_pool_tracepoints")
        src = (BPF_DIR / "page_pools.c").read_text()
        compiled, out, _ = dialects.compile_c(src, str(BPF_DIR / "page_pools.c"), 1, ())
        if compiled is None:
            raise CompileError(f"page_pools.c did not compile here: {out.strip()[-300:]}")
        self._closed = True
        self._obj = libbpf.Object(compiled.elf, "page_pools")
        self._tps = []
        try:
            try:
                self._obj.load()
            except libbpf._LoadFailure as f:
                raise XDPLabError(f"PageWatch: the kernel refused the tracepoint programs: {f}",
                                  hint=(f.vlog or f.log)[-400:]) from None
            for name, ref in self._obj.programs.items():
                tp = ref.section.split("/", 1)[1]
                buf = ctypes.create_string_buffer(tp.encode())
                self._tps.append(kernel.bpf(17, kernel.bpf_attr("=QI", ctypes.addressof(buf), ref.fd),
                                             "RAW_TRACEPOINT_OPEN"))
        except BaseException:
            self._release()
            raise
        self._closed = False
        self._maps = {r.name: r for r in self._obj.map_refs()}
        self._names = {}
        self._mark = {}

    def _release(self):
        for fd in self._tps:
            os.close(fd)
        self._tps = []
        self._obj.close()

    def _check(self):
        if self._closed:
            raise ClosedError("PageWatch", hint="start a new one: memory.PageWatch()")

    def _dump(self, name: str, ksize: int, vsize: int):
        fd, k = self._maps[name].fd, None
        while True:
            k = _next_key(fd, k, ksize)
            if k is None:
                return
            v = kernel.map_lookup(fd, k, vsize)
            if v:
                yield int.from_bytes(k, "little"), bytes(v)

    def _ifname(self, idx: int) -> str:
        if idx and idx not in self._names:
            self._names[idx] = kernel.link_name(idx) or f"ifindex {idx}"
        return self._names.get(idx, "")

    def table(self, dev=None) -> list[PoolRow]:
        """Pools seen (of ``dev``: interface name, ifindex or lab host), busiest first."""
        self._check()
        idx = _dev_filter(dev)
        rows = []
        for k, v in self._dump("pools", 8, 32):
            holds, rel, inflight, ifindex, destroys = struct.unpack("=QQqII", v)
            if idx is None or ifindex == idx:
                rows.append(PoolRow(k, ifindex, self._ifname(ifindex), holds, rel, destroys, inflight))
        return sorted(rows, key=lambda r: -(r.held + r.released))

    def models(self, dev=None) -> list[MemModel]:
        """Memory models registered / unregistered while watched."""
        self._check()
        idx = _dev_filter(dev)
        out = []
        for k, v in self._dump("models", 4, 32):
            t, ifindex, q, c, d, _pad, _alloc = struct.unpack("=IIIIIIQ", v)
            if idx is None or ifindex == idx:
                out.append(MemModel(k, MEM_TYPES.get(t, str(t)), ifindex, self._ifname(ifindex), q, c, d))
        return sorted(out, key=lambda m: m.mem_id)

    def totals(self, dev=None) -> dict:
        """held, released, pools, destroyed (pools) since start, for ``dev`` or all."""
        rows = self.table(dev)
        return {"held": sum(r.held for r in rows), "released": sum(r.released for r in rows),
                "pools": len(rows), "destroyed": sum(1 for r in rows if r.destroyed)}

    def mark(self, dev=None) -> None:
        self._mark[_dev_filter(dev)] = self.totals(dev)

    def delta(self, dev=None) -> dict:
        """What happened (to ``dev``'s pools) since ``mark(dev)``."""
        now, then = self.totals(dev), self._mark.get(_dev_filter(dev), {})
        return {k: now[k] - then.get(k, 0) for k in now}

    def widget(self, dev=None, interval: float = 0.25):
        """A live HTML table of the pools (ipywidgets), refreshed until closed."""
        import ipywidgets as W
        out = W.HTML(self._html(dev))

        def loop():
            while not self._closed:
                time.sleep(interval)
                try:
                    out.value = self._html(dev)
                except Exception:
                    return
        threading.Thread(target=loop, daemon=True).start()
        return out

    def _html(self, dev=None) -> str:
        rows = self.table(dev)
        body = "".join(f"<tr><td>{r.pool:#x}</td><td>{html.escape(r.ifname)}</td><td>{r.held}</td>"
                       f"<td>{r.released}</td><td>{r.in_flight}</td><td>{'yes' if r.destroyed else ''}</td></tr>"
                       for r in rows[:12])
        return ("<table><tr><th>page pool</th><th>device</th><th>held (from the page allocator)</th>"
                "<th>released (back to it)</th><th>in flight</th><th>destroyed</th></tr>"
                f"{body}</table>")

    def _repr_html_(self):
        return self._html() if not self._closed else "<i>PageWatch (closed)</i>"

    def __repr__(self):
        return f"<PageWatch {'closed' if self._closed else self.totals()}>"

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._release()


# --- which memory model does an RX queue use? ------------------------------------------

@dataclass(frozen=True)
class QueueModel:
    queue: int
    mem_type: str
    mem_id: int
    frames: int


def memory_models(dev, traffic, *, mode: str = "native") -> list[QueueModel]:
    """Attach ``xdplab/bpf/programs/memory/mem_model.c`` to ``dev`` (it must have no program), call
    ``traffic()`` (e.g. ``lambda: host.ping(host.gw4, 3)``), detach, and return per RX
    queue that saw frames the memory model of its ``xdp_rxq_info`` (the kernel's xdp_buff
    behind ctx, read through bpf_cast_to_kern_ctx, Linux >= 6.2)."""
    require("kern_ctx")
    if not callable(traffic):
        raise UsageError(f"traffic={traffic!r}: give a function that sends frames to {getattr(dev, 'outside', dev)}")
    prog = Program.from_file(BPF_DIR / "mem_model.c", count=False).load()
    try:
        prog.attach(getattr(dev, "outside", dev), mode)
        traffic()
        prog.detach()
        fd = prog.maps["models"].fd
        out = []
        for q in range(64):
            raw = kernel.map_lookup(fd, q.to_bytes(4, "little"), 16)
            t, i, n = struct.unpack("=IIQ", bytes(raw))
            if n:
                out.append(QueueModel(q, MEM_TYPES.get(t, str(t)), i, n))
        return out
    finally:
        prog.close()


# --- jumbo MTU (multi-buffer) ----------------------------------------------------------

def send(host, packet, count: int = 1) -> int:
    """Send ``packet`` from inside ``host`` (AF_PACKET): the way to get frames larger than
    a page to the host's root-side veth. (The live-frames generator cannot: the kernel
    refuses frames that do not fit one page in BPF_PROG_RUN live mode.)"""
    return host.send(packet, count=count)


def set_mtu(host, mtu: int) -> int:
    """Set the MTU of both ends of a lab host's veth (a veth end takes no more than its peer
    would receive). Returns the previous MTU of the root-side end."""
    if not isinstance(mtu, int) or not 68 <= mtu <= 65535:
        raise UsageError(f"mtu={mtu!r}: give an int 68..65535 (9000 for jumbo frames)")
    old = kernel.link_details(host.outside)["mtu"]
    for cmd, where in ((["ip", "link", "set", host.outside, "mtu", str(mtu)], None),
                       (["ip", "link", "set", host.inside, "mtu", str(mtu)], host)):
        r = host.run(cmd, check=False) if where else subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode:
            raise XDPLabError(f"setting MTU {mtu} on {cmd[3]} failed: {r.stderr.strip()}",
                              hint="an attached XDP program without xdp.frags keeps the MTU below a page "
                                   "(ERANGE); detach it, or load it as SEC(\"xdp.frags\")")
    return old


# --- device binding (RX metadata kfuncs) -------------------------------------------------

def bind_object(obj, dev):
    """Bind every XDP program of a libbpf object (opened, not loaded) to ``dev``:
    prog_ifindex + BPF_F_XDP_DEV_BOUND_ONLY. Returns (ifindex, name). Called by the libbpf
    loader for ``load(..., bind_to=dev)``."""
    try:
        name = getattr(dev, "outside", dev)
        idx = name if isinstance(name, int) else kernel.ifindex(str(name))
        if not idx:
            raise UsageError(f"bind_to={name!r}: no such interface in this network namespace",
                             hint="give the interface (or lab host) the program will be attached to")
        require("rx_metadata_kfuncs")
        L = lib()
        for p in obj._progs():
            if L.bpf_program__type(p) in (0, 6) and L.bpf_program__section_name(p).decode().startswith("xdp"):
                L.bpf_program__set_ifindex(p, idx)
                L.bpf_program__set_flags(p, L.bpf_program__flags(p) | BPF_F_XDP_DEV_BOUND_ONLY)
        return idx, (name if isinstance(name, str) else kernel.link_name(idx))
    except BaseException:
        obj.close()
        raise


def rx_hints_program(dev, **kw):
    """``xdplab/bpf/programs/memory/rx_hints.c`` bound to ``dev``: every frame's RX hash, timestamp and VLAN
    tag (kfunc return values too: 0, or -EOPNOTSUPP / -ENODATA) go into the XDP metadata
    (struct xdplab_hints, for TC) and the ``last`` map."""
    cflags = []
    if not PROBES["rx_vlan_tag"].check():
        cflags.append("-DXDPLAB_HAVE_RX_VLAN_TAG")
    return Program.from_file(BPF_DIR / "rx_hints.c", bind_to=dev, cflags=tuple(cflags), **kw).load()


@dataclass(frozen=True)
class Hints:
    """struct xdplab_hints (xdplab/bpf/programs/memory/xdplab_hints.h): what the kfuncs returned."""

    timestamp: int
    hash: int
    rss_type: int
    vlan_proto: int
    vlan_tci: int
    hash_err: int
    ts_err: int
    vlan_err: int
    magic: int

    @property
    def vlan_id(self) -> int:
        return self.vlan_tci & 0xFFF

    @property
    def rss(self) -> str:
        l3 = next((v for k, v in RSS_L3.items() if self.rss_type & k), "")
        l4 = next((v for k, v in RSS_L4.items() if self.rss_type & k), "")
        return "+".join(x for x in (l3, l4) if x) or ("none" if not self.rss_type else hex(self.rss_type))

    @staticmethod
    def err_name(err: int) -> str:
        names = {95: "EOPNOTSUPP"}             # Python calls 95 ENOTSUP (same number)
        return "ok" if err == 0 else f"-{names.get(-err) or errno.errorcode.get(-err, str(-err))}"

    def __repr__(self):
        return (f"Hints(hash={self.hash:#010x} [{self.rss}] {self.err_name(self.hash_err)}, "
                f"timestamp={self.timestamp} {self.err_name(self.ts_err)}, "
                f"vlan={self.vlan_id if not self.vlan_err else '-'} (tci {self.vlan_tci:#x}) "
                f"{self.err_name(self.vlan_err)})")


HINTS_FMT = "=QIIHHhhhHI"             # 32 bytes, magic last (next to the frame)
HINTS_MAGIC = 0x48494e54              # "HINT"


def decode_hints(raw: bytes) -> Hints | None:
    if len(raw) < struct.calcsize(HINTS_FMT):
        return None
    vals = struct.unpack_from(HINTS_FMT, raw, len(raw) - struct.calcsize(HINTS_FMT))
    ts, h, rss, vp, vt, he, te, ve, _pad, magic = vals
    if magic != HINTS_MAGIC:
        return None
    return Hints(ts, h, rss, vp, vt, he, te, ve, magic)


def last_hints(prog) -> Hints | None:
    """The hints of the last frame the rx_hints program saw (its ``last`` map)."""
    raw = prog.maps["last"]
    fd = raw.fd if hasattr(raw, "fd") else raw.ref.fd
    data = kernel.map_lookup(fd, b"\0" * 4, 32)
    return decode_hints(bytes(data)) if data else None


# --- devmap broadcast --------------------------------------------------------------------

class Flood(Closable):
    """An XDP L2 flood across lab hosts: ``xdplab/bpf/programs/memory/flood.c`` on every host's root-side
    veth, all in one DEVMAP_HASH (``ports``); a frame arriving from one host is sent to every
    other (bpf_redirect_map with BPF_F_BROADCAST | BPF_F_EXCLUDE_INGRESS).

    ``peers=True`` (default) gives each host's inside veth the XDP_PASS program a veth
    needs to receive redirected frames (``redirect.ensure_peer_program``); with False the
    frames are dropped silently, which is the point of ``peers=False``."""

    def __init__(self, hosts, *, peers: bool = True, frags: bool = False):
        require("devmap_broadcast")
        hosts = list(hosts)
        if len(hosts) < 2:
            raise UsageError(f"a flood needs at least 2 hosts, got {len(hosts)}")
        self.hosts = hosts
        self.prog = Program.from_file(BPF_DIR / "flood.c", func="flood").load()
        self.peers = []
        try:
            for h in hosts:
                redirect.devmap_set(self.prog["ports"].fd if hasattr(self.prog["ports"], "fd") else self.prog["ports"],
                                    h.ifindex, h.outside, check=False)
            for h in hosts:
                self.prog.attach(h.outside, "native", replace=True)
            if peers:
                for h in hosts:
                    self.peers.append(redirect.ensure_peer_program(h))
        except BaseException:
            self.close()
            raise

    def counters(self):
        return self.prog.counters()

    def close(self) -> None:
        self._closed = True
        for h in self.hosts:
            redirect.remove_peer_program(h)
        self.prog.close()

    def __repr__(self):
        return f"<Flood over {', '.join(h.outside for h in self.hosts)}: {self.prog.counters()}>"


# --- a VLAN tag outside the frame (for rx_vlan_tag) ---------------------------------------

VLAN_PUSH_SRC = r"""
int xdplab_vlan_push(struct __sk_buff *skb)
{
    bpf_skb_vlan_push(skb, bpf_htons(ETH_P_8021Q), VLAN_ID);
    return TC_ACT_OK;
}
"""


def vlan_tag_egress(host, vlan_id: int = 5):
    """Tag every frame the host sends with ``vlan_id`` *outside* the frame: a tcx egress
    program on the host's inside veth calls bpf_skb_vlan_push, which puts the tag in
    the sk_buff (hardware-offload style; veth keeps it there), so the root side's XDP
    sees an untagged frame and ``bpf_xdp_metadata_rx_vlan_tag`` returns the tag.
    (This kernel has no 8021q module or tc vlan action.) Returns the TC program: close()
    it to stop tagging."""
    if not isinstance(vlan_id, int) or not 1 <= vlan_id <= 4094:
        raise UsageError(f"vlan_id={vlan_id!r}: give an int 1..4094")
    prog = Program(VLAN_PUSH_SRC, hook="tc", cflags=(f"-DVLAN_ID={vlan_id}",)).load()
    try:
        # force: inside the host, veth0 carries the host's default route (never dropped here)
        kernel.run_in_netns(host.netns, prog.attach, host.inside, "egress", force=True)
    except BaseException:
        prog.close()
        raise
    return prog


# --- a tap device to feed frames to (a driver without RX metadata kfuncs) -----------------

class Tap(Closable):
    """A tap device of our own (name with the lab's prefix) whose XDP hook sees every frame
    written to it: ``with memory.Tap("xl-tap0") as tap: prog.attach(tap.name); tap.send(frame)``.
    tun/tap has native XDP but no RX metadata kfuncs: a device-bound program on it gets
    -EOPNOTSUPP from each of them."""

    IFF_TAP, IFF_NO_PI, TUNSETIFF = 0x0002, 0x1000, 0x400454CA

    def __init__(self, name: str):
        if not re.fullmatch(r"[\w.-]{1,15}", name or ""):
            raise UsageError(f"tap name {name!r}: 1..15 letters, digits, '.', '-', '_'")
        if kernel.ifindex(name):
            raise UsageError(f"an interface named {name!r} exists already", hint="pick another name")
        self.name = name
        self.fd = os.open("/dev/net/tun", os.O_RDWR | os.O_CLOEXEC)
        try:
            fcntl.ioctl(self.fd, self.TUNSETIFF, struct.pack("16sH", name.encode(), self.IFF_TAP | self.IFF_NO_PI))
            kernel.netlink.link_up(name)
        except BaseException:
            os.close(self.fd)
            self.fd = -1
            raise

    def send(self, frame, count: int = 1) -> int:
        """Write ``frame`` (scapy or bytes) ``count`` times: each is received on the tap."""
        if self.fd < 0:
            raise ClosedError(f"Tap {self.name}")
        data = to_frame(frame)
        for _ in range(count):
            os.write(self.fd, data)
        return count

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)             # a non-persistent tap goes with its last fd
            self.fd = -1

    @property
    def closed(self) -> bool:
        return self.fd < 0


def hints_reader():
    """``xdplab/bpf/programs/memory/read_hints.c``: a TC program (attach it: ``.attach(dev, "ingress")``,
    tcx, Linux >= 6.6) that reads the hints rx_hints.c put in the metadata.
    ``seen_hints(tc)`` decodes the last one; ``tc["count"]``: sk_buffs, with hints."""
    return Program.from_file(BPF_DIR / "read_hints.c", hook="tc").load()


def seen_hints(tc) -> Hints | None:
    """The last hints the TC reader found in an sk_buff's metadata."""
    fd = tc["seen"].table.map_fd if hasattr(tc["seen"], "table") else tc["seen"].map_fd
    raw = kernel.map_lookup(fd, b"\0" * 4, 32)
    return decode_hints(bytes(raw)) if raw else None


libbpf.DEVICE_BINDER = bind_object        # load(..., bind_to=dev) binds through this module
