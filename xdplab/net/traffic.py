"""A line-rate traffic generator made of XDP: BPF_PROG_RUN with BPF_F_TEST_XDP_LIVE_FRAMES.

    r = xdplab.traffic.blast(Ether()/IP()/UDP(dport=9), via=lab["h1"], count=5_000_000,
                             vary={"sport": range(1024, 65536)})
    r.pps

How it works (kernel >= 5.18, net/bpf/test_run.c): the kernel copies the frame into
pages of a page pool and runs a small XDP program on it ``repeat`` times, in batches of
``batch_size``, in process context on the calling CPU; the program's verdicts are
honoured: XDP_TX becomes a redirect out of ``ctx->ingress_ifindex``, XDP_REDIRECT
goes where the program said. No skb is ever built, no Python runs per packet.

The generator program returns XDP_TX out of the interface it is run "on" (``via``).
Fields that vary per packet (UDP/TCP ports, IPv4 addresses) are rewritten IN the
program from a per-CPU sequence counter; checksums are updated incrementally
(RFC 1624), which stays right whether the page pool hands back a fresh copy of the
frame or the one modified last time.

veth: ``ndo_xdp_xmit`` into a veth only works when the *peer* runs NAPI, i.e. has a
native-mode XDP program (or GRO enabled); otherwise the kernel drops every frame
without counting it. From a lab host (``via=lab["h1"]``) frames leave the host's
``veth0`` and arrive at ``h1.outside`` — where the program under test sits, so attach
it (native mode) first. ``attach_receiver=True`` attaches an XDP_PASS program to the
peer when nothing is there.
"""
from __future__ import annotations

import ipaddress
import os
import re
import struct
import threading
import time
from dataclasses import dataclass

from .. import failures, kernel
from ..failures import Row
from ..errors import Closable, NotSupported, UsageError, XDPLabError, needs_open
from ..kernel import features
from ..programs.program import load
from ..programs.prog_run import to_frame
import errno
import subprocess
import math
import numbers

NETDEV_XDP_ACT_NDO_XMIT = kernel.NETDEV_XDP_ACT_NDO_XMIT
CHUNK_SECONDS = 0.3           # aim each BPF_PROG_RUN at this long: every call pays a fixed
                              # cost (page pool setup/teardown: ~0.1-30 ms here) outside the loop
CHUNK_MIN, CHUNK_START, CHUNK_MAX = 1 << 14, 1 << 20, 1 << 24
MAX_BATCH = kernel.TEST_XDP_MAX_BATCH

_GEN_C = r"""
BPF_PERCPU_ARRAY(xdplab_gen_seq, u64, 1);

static __always_inline void csum16(__sum16 *sum, u16 old, u16 new)
{
    /* RFC 1624 eq. 3: HC' = ~(~HC + ~m + m'), in whatever byte order the words are */
    u32 s = (u16)~*sum + (u16)~old + new;
    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    *sum = ~s;
}

static __always_inline void set16(void *data, int off, u16 new, int l3csum, int l4csum)
{
    u16 *p = data + off, old = *p;
    *p = new;
    if (l3csum >= 0)
        csum16(data + l3csum, old, new);
    if (l4csum >= 0) {
        __sum16 *c = data + l4csum;
        if (*c == 0 && L4_UDP4)         /* IPv4 UDP without checksum stays without */
            return;
        csum16(c, old, new);
        if (*c == 0 && L4_UDP)
            *c = 0xffff;
    }
}

int xdplab_gen(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
    u32 k = 0;
    u64 *seq, n;

    if (data + FRAME_MIN > end)
        return XDP_ABORTED;
    seq = xdplab_gen_seq.lookup(&k);
    if (!seq)
        return XDP_ABORTED;
    n = (*seq)++;
VARY
    return VERDICT;
}
"""


@dataclass(frozen=True)
class _Field:
    name: str
    offset: int
    size: int           # 2 or 4 bytes
    start: int
    count: int
    l3csum: int         # offset of the IPv4 header checksum to fix, or -1
    l4csum: int         # offset of the UDP/TCP checksum to fix, or -1

    def c(self) -> str:
        v = f"({self.start}ULL + n % {self.count}ULL)"
        if self.size == 2:
            return f"    set16(data, {self.offset}, htons((u16){v}), {self.l3csum}, {self.l4csum});\n"
        return (f"    {{ u32 v = htonl((u32){v}); u16 *w = (u16 *)&v;\n"
                f"      set16(data, {self.offset}, w[0], {self.l3csum}, {self.l4csum});\n"
                f"      set16(data, {self.offset + 2}, w[1], {self.l3csum}, {self.l4csum}); }}\n")


def _layout(pkt):
    """Offsets of the layers in a scapy frame: {'IP': off, 'UDP': off, ...}."""
    offs, off, layer = {}, 0, pkt
    while layer is not None and layer.__class__.__name__ not in ("NoPayload", "Raw", "Padding"):
        offs.setdefault(layer.__class__.__name__, off)
        off += len(layer) - len(layer.payload)
        layer = layer.payload if layer.payload else None
    return offs


def _range(spec) -> tuple[int, int]:
    """range(a, b) / (a, b) inclusive / single value -> (start, count)."""
    if isinstance(spec, range):
        if spec.step != 1 or not len(spec):
            raise XDPLabError(f"vary range {spec} must be non-empty with step 1")
        return spec.start, len(spec)
    if isinstance(spec, (tuple, list)) and len(spec) == 2:
        a, b = spec
        return a, b - a + 1
    return int(spec), 1


def _addr_range(spec) -> tuple[int, int]:
    """'10.0.0.0/24', ('10.0.0.1', '10.0.0.9'), IPv4Network -> (first as int, count)."""
    if isinstance(spec, (tuple, list)):
        a, b = (int(ipaddress.IPv4Address(x)) for x in spec)
        return a, b - a + 1
    net = ipaddress.IPv4Network(spec, strict=False)
    return int(net.network_address), net.num_addresses


def vary_fields(frame, vary: dict) -> list[_Field]:
    """Translate ``vary={'sport': range(..), 'dport': .., 'src': '10.0.0.0/24', 'dst': ..}``
    into in-frame offsets and the checksums each field is covered by."""
    from scapy.layers.l2 import Ether
    pkt = Ether(frame)
    offs = _layout(pkt)
    l4 = "UDP" if "UDP" in offs else "TCP" if "TCP" in offs else None
    ip4 = offs.get("IP")
    l4csum = offs[l4] + (6 if l4 == "UDP" else 16) if l4 else -1
    fields = []
    for name, spec in (vary or {}).items():
        if name in ("sport", "dport"):
            if not l4:
                raise XDPLabError(f"vary {name!r} needs a UDP or TCP packet")
            start, count = _range(spec)
            if not (0 <= start and start + count <= 65536):
                raise XDPLabError(f"vary {name!r}: ports must lie in 0..65535")
            fields.append(_Field(name, offs[l4] + (0 if name == "sport" else 2), 2, start, count,
                                 -1, l4csum))
        elif name in ("src", "dst"):
            if ip4 is None:
                raise XDPLabError(f"vary {name!r} works on IPv4 packets (IPv6 addresses: not yet)")
            start, count = _addr_range(spec)
            fields.append(_Field(name, ip4 + (12 if name == "src" else 16), 4, start, count,
                                 ip4 + 10, l4csum))
        else:
            raise XDPLabError(f"cannot vary {name!r}", hint="vary: sport, dport (UDP/TCP), src, dst (IPv4)")
    return fields


def restore_code(frame: bytes, n: int) -> str:
    """C that writes the frame's first ``n`` bytes (rounded down to 8) back, before each send.

    Live frames live in a page pool: a frame that was forwarded (new MACs, TTL - 1) and
    dropped further on comes back to the pool *as modified*, and the next run reuses it
    without copying the original in again. Restoring the headers keeps every send equal."""
    n = min(n, len(frame)) // 8 * 8
    if not n:
        return ""
    words = struct.unpack(f"<{n // 8}Q", frame[:n])
    return (f"    if (data + {n} > end)\n        return XDP_ABORTED;\n"
            + "".join(f"    ((u64 *)data)[{i}] = {w:#x}ULL;\n" for i, w in enumerate(words)))


def generator_source(frame: bytes, vary: dict | None = None, redirect_ifindex: int = 0,
                     restore: int = 0) -> str:
    """The C of the generator program for ``frame`` (``restore``: see ``restore_code``)."""
    from scapy.layers.l2 import Ether
    fields = vary_fields(frame, vary or {})
    offs = _layout(Ether(frame))
    udp4 = int("UDP" in offs and "IP" in offs)
    verdict = f"bpf_redirect({redirect_ifindex}, 0)" if redirect_ifindex else "XDP_TX"
    need = max([f.offset + f.size for f in fields] + [f.l4csum + 2 for f in fields if f.l4csum >= 0]
               + [14])
    return (_GEN_C.replace("VARY", restore_code(frame, restore) + "".join(f.c() for f in fields)
                           or "    (void)n;")
            .replace("VERDICT", verdict).replace("FRAME_MIN", str(need))
            .replace("L4_UDP4", str(udp4)).replace("L4_UDP", str(int("UDP" in offs))))


# --- programs and probing ---------------------------------------------------------------

_CACHE: dict = {}             # generator C source -> loaded program (compiling takes seconds)
PROGRAM_CACHE = _CACHE        # public: what the generator has loaded


def _program(source: str):
    """The loaded program for ``source``, compiled once per process."""
    prog = _CACHE.get(source)
    if prog is None or prog._closed:
        prog = _CACHE[source] = load(source, count=False, origin="<xdplab traffic generator>")
    return prog


def supported() -> bool:
    """Does this kernel run XDP programs on live frames (BPF_PROG_RUN, Linux >= 5.18)?"""
    try:
        require_live_frames()
        return True
    except NotSupported:
        return False


def require_live_frames() -> None:
    """Raise NotSupported unless the kernel has BPF_PROG_RUN live frames (probed once)."""
    features.require("live_frames")


def check_live_frames(prog_fd: int | None = None) -> None:
    """Raise NotSupported unless BPF_PROG_RUN accepts BPF_F_TEST_XDP_LIVE_FRAMES (the kernel
    feature registry probes it once: ``kernel.features``)."""
    features.require("live_frames")


def _netns_names() -> list[str]:
    return sorted(p for p in os.listdir("/run/netns")) if os.path.isdir("/run/netns") else []


def find_peer(ifname: str, netns: str | None) -> tuple[str | None, str] | None:
    """(netns, name) of the other end of veth ``ifname`` (netns None: the root netns)."""
    d = kernel.run_in_netns(netns, kernel.link_details, ifname)
    if not d or d["kind"] != "veth" or not d["peer_ifindex"]:
        return None
    if d["peer_netnsid"] is None:
        return netns, kernel.run_in_netns(netns, kernel.link_name, d["peer_ifindex"])

    def back(name):                          # a veth in ``name`` whose peer is us
        p = kernel.run_in_netns(name, kernel.link_details,
                                 kernel.run_in_netns(name, kernel.link_name, d["peer_ifindex"]) or "")
        return p and p["kind"] == "veth" and p["peer_ifindex"] == d["ifindex"] and p["peer_netnsid"] is not None

    def same_id(name):                       # the namespace our netns knows by the peer's netnsid
        try:
            return kernel.run_in_netns(netns, kernel.netnsid, name) == d["peer_netnsid"]
        except OSError:
            return False
    names = [n for n in [None, *_netns_names()] if n != netns]
    # two namespaces can each hold a veth with the same pair of ifindexes: the netnsid decides
    for name in sorted(names, key=lambda n: not same_id(n)):
        if back(name):
            return name, kernel.run_in_netns(name, kernel.link_name, d["peer_ifindex"])
    return None


def _where(netns, ifname) -> str:
    return f"{ifname} (netns {netns})" if netns else ifname


# --- the generator -----------------------------------------------------------------------

@dataclass
class TrafficResult:
    """What a run sent: ``sent`` frames handed to the device in ``seconds``."""

    sent: int
    seconds: float
    cpus: tuple
    per_cpu: dict
    frame_len: int
    dev: str
    ns_per_packet: float = 0.0
    interrupted: bool = False
    receiver: str = ""
    #: frames the device refused (veth: peer ring full; ``ethtool -S`` tx_queue_*_xdp_xmit_errors)
    xmit_errors: int | None = None

    @property
    def pps(self) -> float:
        return self.sent / self.seconds if self.seconds else 0.0

    @property
    def gbps(self) -> float:
        """On-the-wire rate (frame + FCS + preamble + IFG = 24 B extra per frame)."""
        return self.pps * (self.frame_len + 24) * 8 / 1e9

    def __repr__(self) -> str:
        s = (f"<TrafficResult {self.sent:,} frames of {self.frame_len} B in {self.seconds:.3f} s = "
             f"{self.pps / 1e6:.2f} Mpps ({self.gbps:.2f} Gbit/s on the wire) out of {self.dev}, "
             f"CPUs {','.join(map(str, self.cpus))}")
        if self.xmit_errors:
            s += f"; {self.xmit_errors:,} refused by the device (ring full)"
        return s + (" — interrupted>" if self.interrupted else ">")

    def _repr_html_(self) -> str:
        rows = "".join(f"<tr><td>CPU {c}</td><td>{n:,}</td></tr>" for c, n in self.per_cpu.items())
        return (f"<b>{self.pps / 1e6:.2f} Mpps</b> &mdash; {self.sent:,} frames of {self.frame_len} B "
                f"in {self.seconds:.3f} s out of <code>{self.dev}</code>"
                f"{' (interrupted)' if self.interrupted else ''}"
                f"{f'; {self.xmit_errors:,} refused by the device (ring full)' if self.xmit_errors else ''}"
                f"<table>{rows}</table>")


def check_run_args(count=None, duration=None, rate=None, batch_size: int = 64) -> None:
    """Refuse (``UsageError``) amounts a run cannot mean, before anything is loaded."""
    if count is None and duration is None:
        raise UsageError("say how much: count=N packets or duration=seconds")
    if count is not None:
        if isinstance(count, bool) or not isinstance(count, numbers.Integral) or count < 1:
            raise UsageError(f"count={count!r}: give the number of frames to send, an int >= 1")
    for name, v, what in (("duration", duration, "seconds to send for"),
                          ("rate", rate, "packets per second (None: as fast as possible)")):
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v) or v <= 0:
            raise UsageError(f"{name}={v!r}: give the {what}, a finite number > 0")
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) \
            or not 1 <= batch_size <= MAX_BATCH:
        raise UsageError(f"batch_size={batch_size!r}: batch_size must be 1..{MAX_BATCH} (TEST_XDP_MAX_BATCH)")


class Generator(Closable):
    """A loaded generator for one frame, sending out of ``via``. After ``close()``,
    ``run()`` raises ``ClosedError``.

    ``via``: a lab Host (frames leave the host's veth0 and arrive at ``host.outside``),
    or an interface name (in ``netns``, default the root netns). ``redirect_to``: an
    interface of the same netns to XDP_REDIRECT to instead of XDP_TX out of ``via``."""

    def __init__(self, packet, via, *, netns: str | None = None, vary: dict | None = None,
                 redirect_to: str | None = None, attach_receiver: bool = False,
                 restore_headers: int = 0):
        if hasattr(via, "inside") and hasattr(via, "netns"):        # a lab Host
            netns, ifname = via.netns, via.inside
            if not _is_eth(packet):
                from scapy.layers.l2 import Ether
                packet = Ether(src=via.mac, dst=via.gw_mac) / packet
        else:
            ifname = str(via)
        self.netns, self.ifname, self.frame = netns, ifname, to_frame(packet)
        self.ingress_ifindex = kernel.run_in_netns(netns, kernel.ifindex, ifname)
        if not self.ingress_ifindex:
            raise XDPLabError(f"no interface {_where(netns, ifname)}", hint="is the lab up? (`xdplab up`)")
        out = redirect_to or ifname
        out_ifindex = kernel.run_in_netns(netns, kernel.ifindex, out) if redirect_to else 0
        if redirect_to and not out_ifindex:
            raise XDPLabError(f"no interface {_where(netns, redirect_to)} to redirect to")
        self.out = out
        self.vary = dict(vary or {})
        self._receiver = None
        self.prog = _program(generator_source(self.frame, self.vary, out_ifindex, restore_headers))
        try:
            require_live_frames()
            self.receiver = self._check_target(out, attach_receiver)
        except BaseException:
            self.close()
            raise

    # -- can the target device take XDP frames? --------------------------------------
    def _check_target(self, out: str, attach_receiver: bool) -> str:
        d = kernel.run_in_netns(self.netns, kernel.link_details, out)
        limit = d["mtu"] + 14 + 4
        if len(self.frame) > limit:
            raise XDPLabError(f"the frame has {len(self.frame)} B but {out} takes at most {limit} "
                              f"(MTU {d['mtu']})")
        LINEAR_MAX = kernel.LINEAR_MAX
        if len(self.frame) > LINEAR_MAX:       # bpf_prog_test_run_xdp: no jumbo frames in live mode
            raise XDPLabError(f"the frame has {len(self.frame)} B: live frames must fit one page "
                              f"({LINEAR_MAX} B after XDP's headroom and skb_shared_info); the kernel "
                              "refuses multi-buffer frames in BPF_PROG_RUN live mode",
                              hint="send jumbo frames from a lab host: xdplab.memory.send(host, pkt, count); "
                                   "prog.run(pkt) takes them (test runs split them into fragments)")
        peer = find_peer(out, self.netns) if d["kind"] == "veth" else None
        if d["kind"] == "veth" and peer is None:
            raise XDPLabError(f"cannot find the peer of veth {_where(self.netns, out)}")
        if peer:
            pns, pname = peer
            state = kernel.run_in_netns(pns, kernel.xdp_state, pname)
            if "native" in state:
                return f"{_where(pns, pname)}: native XDP program id {state['native']}"
            if not attach_receiver:
                what = ("only a generic-mode program" if state else "no XDP program")
                raise XDPLabError(
                    f"frames sent out of veth {_where(self.netns, out)} would be dropped silently: its "
                    f"peer {_where(pns, pname)} has {what}. ndo_xdp_xmit into a veth needs the "
                    "PEER to run NAPI, which a native-mode XDP program turns on",
                    hint=f"attach the program under test to {pname} in native mode, or pass "
                         "attach_receiver=True (attaches an XDP_PASS program there)")
            self._attach_receiver(pns, pname)
            return f"{_where(pns, pname)}: XDP_PASS receiver attached by the generator"
        feats = kernel.run_in_netns(self.netns, kernel.netdev_xdp_features, d["ifindex"])
        if feats is not None and not feats & NETDEV_XDP_ACT_NDO_XMIT:
            raise XDPLabError(f"{_where(self.netns, out)} cannot transmit XDP frames "
                              "(no ndo_xdp_xmit: NETDEV_XDP_ACT_NDO_XMIT is not set)",
                              hint="send via a lab host (via=lab['h1']) or a driver with XDP redirect support")
        return ""

    def _attach_receiver(self, netns: str | None, ifname: str) -> None:
        rx = load("int xdplab_rx_pass(struct xdp_md *ctx) { return XDP_PASS; }",
                  origin="<xdplab receiver>")

        def attach():     # a bpf_link fd belongs to the process; the netns only matters here
            return kernel.link_create_xdp(rx.fd, kernel.ifindex(ifname), "native")
        try:
            fd = kernel.run_in_netns(netns, attach)
        except kernel.BPFError as e:
            rx.close()
            raise XDPLabError(f"could not attach the receiver to {_where(netns, ifname)}: {e.strerror}") from None
        self._receiver = (rx, fd, netns, ifname)

    @property
    def receiver_program(self):
        """The XDP_PASS program attached by ``attach_receiver=True`` (its counters count arrivals)."""
        return self._receiver[0] if self._receiver else None

    # -- running ---------------------------------------------------------------------
    def _ctx(self) -> bytes:
        return kernel.xdp_md(len(self.frame), self.ingress_ifindex)

    @needs_open
    def run(self, count: int | None = None, duration: float | None = None, *, rate: float | None = None,
            cpus=1, batch_size: int = 64, progress: bool = True) -> TrafficResult:
        """Send ``count`` frames (or for ``duration`` seconds) from ``cpus`` (a number, or
        CPU ids) at most at ``rate`` packets/s in total."""
        check_run_args(count, duration, rate, batch_size)
        count = None if count is None else int(count)
        cpu_ids = _cpus(cpus)
        self._seed(cpu_ids)
        per_rate = rate / len(cpu_ids) if rate else None
        quota = None if count is None else _split(count, len(cpu_ids))
        done = {c: 0 for c in cpu_ids}
        ns = {c: [] for c in cpu_ids}
        errors, stop = [], threading.Event()
        t0 = deadline = None                 # set when the threads start

        def worker(cpu, budget):
            try:
                with kernel.in_netns(self.netns):
                    os.sched_setaffinity(0, {cpu})
                    ctx = self._ctx()
                    # rate cap: an average over chunks of CHUNK_SECONDS at the rate (within a
                    # chunk frames leave at full speed); otherwise chunks adapt to take ~CHUNK_SECONDS
                    chunk = max(batch_size, int(per_rate * CHUNK_SECONDS)) if per_rate else CHUNK_START
                    while not stop.is_set():
                        n = chunk if budget is None else min(chunk, budget - done[cpu])
                        if deadline:
                            left = deadline - time.perf_counter()
                            if left <= 0:
                                return
                            pace = per_rate or n / CHUNK_SECONDS      # packets per second, roughly
                            n = min(n, max(1 if per_rate else batch_size, int(left * pace)))
                        if n <= 0:
                            return
                        t = time.perf_counter()
                        _, _, dur = kernel.prog_test_run(
                            self.prog.fd, self.frame, repeat=n, ctx=ctx,
                            flags=kernel.BPF_F_TEST_XDP_LIVE_FRAMES, batch_size=batch_size)
                        if not per_rate:
                            chunk = min(CHUNK_MAX, max(CHUNK_MIN, int(n * CHUNK_SECONDS / max(time.perf_counter() - t, 1e-3))))
                        done[cpu] += n
                        ns[cpu].append((n, dur))
                        if per_rate:
                            ahead = t0 + done[cpu] / per_rate - time.perf_counter()
                            if deadline:
                                ahead = min(ahead, deadline - time.perf_counter())
                            if ahead > 0:
                                time.sleep(ahead)
            except BaseException as e:       # noqa: BLE001 - reported in the caller
                errors.append(e)
                stop.set()

        threads = [threading.Thread(target=worker, args=(c, q), name=f"xdplab-gen-cpu{c}", daemon=True)
                   for c, q in zip(cpu_ids, quota or [None] * len(cpu_ids))]
        errs0 = self.xmit_errors()
        bar = _bar(progress, count, self.out)
        interrupted = False
        t0 = time.perf_counter()
        deadline = t0 + duration if duration else None
        try:
            for t in threads:
                t.start()
            last = 0
            while any(t.is_alive() for t in threads):
                time.sleep(0.1)
                total = sum(done.values())
                if bar is not None:
                    bar.update(total - last)
                last = total
        except KeyboardInterrupt:
            interrupted = True
            stop.set()
        finally:
            for t in threads:
                t.join()
            seconds = time.perf_counter() - t0
            if bar is not None:
                bar.update(sum(done.values()) - bar.n)
                bar.close()
        if errors:
            raise _explain(errors[0], self)
        runs = [x for c in cpu_ids for x in ns[c]]
        sent = sum(done.values())
        return TrafficResult(sent, seconds, tuple(cpu_ids), dict(done), len(self.frame),
                             _where(self.netns, self.out),
                             sum(n * d for n, d in runs) / sent if sent else 0.0, interrupted,
                             self.receiver, _minus(self.xmit_errors(), errs0))

    def xmit_errors(self) -> int | None:
        """Frames the output device refused so far (veth: ``tx_queue_*_xdp_xmit_errors``)."""
        try:
            stats = kernel.run_in_netns(self.netns, kernel.ethtool_stats, self.out)
        except OSError:                      # the namespace or the device went away
            return None
        vals = [v for k, v in stats.items() if k.endswith("xdp_xmit_errors")]
        return sum(vals) if vals else None

    def _seed(self, cpu_ids) -> None:
        """Start each CPU's sequence at its own slice of the varied ranges."""
        seq = self.prog.maps["xdplab_gen_seq"].table
        span = max([f.count for f in vary_fields(self.frame, self.vary)] or [1])
        vals = seq.Leaf()
        for i in range(len(vals)):
            vals[i] = (cpu_ids.index(i) * span // len(cpu_ids)) if i in cpu_ids else 0
        seq[seq.Key(0)] = vals

    def close(self) -> None:
        if self._receiver:
            rx, fd, _, _ = self._receiver
            os.close(fd)                     # closing the last link fd detaches
            rx.close()
            self._receiver = None
        self.prog = None                     # the program stays cached for the next generator
        self._closed = True

    _reopen_hint = "make a new Generator(...) (or use xdplab.traffic.blast)"

    def _describe(self) -> str:
        return f"traffic generator out of {_where(self.netns, self.out)}"

    def __repr__(self) -> str:
        return (f"<Generator {len(self.frame)} B frames out of {_where(self.netns, self.out)}"
                f"{' vary ' + ', '.join(self.vary) if self.vary else ''}"
                f"{'; receiver ' + self.receiver if getattr(self, 'receiver', '') else ''}"
                f"{' closed' if self.closed else ''}>")


def blast(packet, via, count: int | None = None, duration: float | None = None, *, rate=None,
          cpus=1, batch_size: int = 64, vary: dict | None = None, netns: str | None = None,
          redirect_to: str | None = None, attach_receiver: bool = False,
          progress: bool = True) -> TrafficResult:
    """Load a generator for ``packet``, send, unload. See ``Generator``."""
    check_run_args(count, duration, rate, batch_size)       # before anything is loaded
    with Generator(packet, via, netns=netns, vary=vary, redirect_to=redirect_to,
                   attach_receiver=attach_receiver) as g:
        return g.run(count, duration, rate=rate, cpus=cpus, batch_size=batch_size, progress=progress)


def _minus(a, b):
    return None if a is None or b is None else a - b


def _is_eth(packet) -> bool:
    if isinstance(packet, (bytes, bytearray)):
        return True
    from scapy.layers.l2 import Ether
    return packet.haslayer(Ether)


def _cpus(cpus) -> list[int]:
    allowed = sorted(os.sched_getaffinity(0))
    if isinstance(cpus, int):
        if not 1 <= cpus <= len(allowed):
            raise XDPLabError(f"cpus={cpus}: this process may run on {len(allowed)} CPUs ({allowed})")
        return allowed[:cpus]
    ids = sorted(set(cpus))
    bad = [c for c in ids if c not in allowed]
    if bad:
        raise XDPLabError(f"CPUs {bad} are not available (allowed: {allowed})")
    return ids


def _split(count: int, parts: int) -> list[int]:
    return [count // parts + (1 if i < count % parts else 0) for i in range(parts)]


def _bar(progress: bool, total, dev: str):
    if not progress:
        return None
    from tqdm.auto import tqdm
    return tqdm(total=total, unit="pkt", unit_scale=True, desc=f"xdp gen -> {dev}", leave=True,
                mininterval=0.2, smoothing=0.3)


#: why a generator's BPF_PROG_RUN failed, by errno (failures, kind 'traffic')
GENERATOR_HINTS = failures.register(
    Row("generator-device-gone", "the device went away", kind="traffic", when={"errno": errno.ENODEV},
        fix="{ifname} disappeared (lab torn down?)"),
    Row("generator-interrupted", "interrupted", kind="traffic", when={"errno": errno.EINTR},
        fix="interrupted by a signal"),
)


def _explain(e: BaseException, g: Generator) -> BaseException:
    if isinstance(e, kernel.BPFError):
        row = failures.find("traffic", errno=e.errno)
        hint = row.advice(ifname=g.ifname) if row else ""
        return XDPLabError(f"the generator's BPF_PROG_RUN failed: {e.strerror}", hint=hint)
    return e
