"""Where did my packets go? A drop detector on the kernel's ``xdp:*`` tracepoints.

    with xdplab.DropDetector() as dd:       # BCC TRACEPOINT_PROBEs (no fentry needed)
        lab["h1"].ping(lab["h1"].gw4)
        dd.summary()                         # DataFrame: where, what, errno, why
    dd.widget()                              # live table (4 Hz) next to action counters

The XDP path reports losses only through tracepoints (xdp-monitor reads the same ones):
``xdp_exception`` (XDP_ABORTED, an unknown action, a driver that failed an action),
``xdp_redirect``/``xdp_redirect_err`` (redirect decided / refused), ``xdp_bulk_tx``
(XDP_TX flushed to the device: sent/drops/err), ``xdp_devmap_xmit`` (redirected frames
flushed to the target's ndo_xdp_xmit), ``xdp_cpumap_enqueue``/``xdp_cpumap_kthread``.
Which exist and which fields they carry differ between kernels (6.1 still has
``xdp_redirect_map{,_err}``): the probes are generated from the format files under
/sys/kernel/tracing/events/xdp; BCC builds the argument structs from the same files. The
two that fire on every flush of sent frames (``xdp_devmap_xmit``, ``xdp_bulk_tx``) are
raw tracepoints wherever the kernel's BTF shows their prototype (``RAW_PROTOTYPES``), and a
flush that lost nothing costs one per-CPU hash lookup: ~30 ns per flush of up to 16 frames.
"""
from __future__ import annotations

import collections
import errno
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from .. import failures, kernel
from ..errors import Closable, NotSupported, needs_open
from ..failures import Row
from ..kernel import features
from ..programs.compile import capture_stderr
from html import escape
from ..programs.capture import wide_table # the notebook view shows whole reasons

TRACEFS = kernel.tracefs.TRACEFS
EVENTS = TRACEFS / "events" / "xdp"
#: tracepoints we know how to read, in the order they get their index
TRACEPOINTS = ("xdp_exception", "xdp_redirect", "xdp_redirect_err", "xdp_redirect_map",
               "xdp_redirect_map_err", "xdp_bulk_tx", "xdp_devmap_xmit", "xdp_cpumap_enqueue",
               "xdp_cpumap_kthread")
#: tracepoints where every hit is one lost frame (no ``drops`` field)
_EACH_HIT_DROPS = {"xdp_exception", "xdp_redirect_err", "xdp_redirect_map_err"}
_EACH_HIT_SENT = {"xdp_redirect", "xdp_redirect_map"}


def available() -> dict[str, set[str]]:
    """The xdp tracepoints this kernel has, with their field names (from the format files)."""
    features.require("xdp_tracepoints")
    out = {}
    for tp in TRACEPOINTS:
        fields = kernel.tracefs.event_fields("xdp", tp)
        if fields is not None:
            out[tp] = fields
    return out


def _probe(idx: int, tp: str, fields: set[str]) -> str:
    """The C of one TRACEPOINT_PROBE, reading only the fields this kernel's format has."""
    def f(name, default="0"):
        return f"args->{name}" if name in fields else default
    ifindex = f("ifindex", f("from_ifindex"))
    to = f("to_ifindex", f("to_cpu", f("cpu")))
    drops = "1" if tp in _EACH_HIT_DROPS else f("drops")
    sent = "1" if tp in _EACH_HIT_SENT else f("sent", f("processed"))
    return f"""
TRACEPOINT_PROBE(xdp, {tp})
{{
    struct xl_key k = {{}};
    k.tp = {idx};
    k.act = {f("act")};
    k.ifindex = {ifindex};
    k.to = {to};
    k.err = {f("err")};
    k.prog_id = {f("prog_id")};
    k.map_id = {f("map_id")};
    xl_record(args, &k, {drops}, {sent}, {f("map_index")});
    return 0;
}}
"""


#: the flush tracepoints fire once per bulk of frames that went out (every 16 on a devmap),
#: fine or not. As perf-event tracepoints each hit first fills a record of all fields (the
#: ``args`` of TRACEPOINT_PROBE); a raw tracepoint hands the program the arguments as they
#: are, which measured the cost of the detector on an XDP_DROP flood fed by XDP_TX down
#: from ~8 % to ~1 %. Each is used only where the running kernel's BTF shows exactly this
#: prototype (``btf_trace_<tp>``); anything else keeps the tracepoint's format file.
#: tp: (parameter types after the tracer's void *, C of each key/count field from ``ctx->args``)
RAW_PROTOTYPES = {
    "xdp_devmap_xmit": (("const struct net_device *", "const struct net_device *", "int", "int", "int"),
                        {"act": str(kernel.XDP_REDIRECT), "dev": "ctx->args[0]", "to_dev": "ctx->args[1]",
                         "sent": "(int)ctx->args[2]",
                         "drops": "(int)ctx->args[3]", "err": "(int)ctx->args[4]"}),
    "xdp_bulk_tx": (("const struct net_device *", "int", "int", "int"),
                    {"act": str(kernel.XDP_TX), "dev": "ctx->args[0]", "to_dev": "0",
                     "sent": "(int)ctx->args[1]", "drops": "(int)ctx->args[2]", "err": "(int)ctx->args[3]"}),
}


def _member_offset(b, type_id: int, name: str) -> int | None:
    """Byte offset of member ``name`` in a struct (looking inside anonymous members)."""
    t = b.resolve(type_id)
    for m in t.members:
        if m.name == name:
            return m.bit_offset // 8
        if not m.name and b.resolve(m.type).kind in ("struct", "union"):
            inner = _member_offset(b, m.type, name)
            if inner is not None:
                return m.bit_offset // 8 + inner
    return None


def raw_capable(tracepoints) -> tuple[set, int | None]:
    """(which of ``tracepoints`` get a raw tracepoint probe, the offset of ``ifindex`` in
    ``struct net_device``) from the running kernel's BTF; (empty, None) without BTF."""
    if not features.have("raw_tracepoints") or not any(tp in RAW_PROTOTYPES for tp in tracepoints):
        return set(), None
    try:
        b = kernel.btf.vmlinux()
        off = _member_offset(b, b.find("net_device", "struct"), "ifindex")
    except (NotSupported, KeyError, OSError, kernel.btf.BTFError):
        return set(), None
    if off is None:
        return set(), None
    out = set()
    for tp in tracepoints:
        want = RAW_PROTOTYPES.get(tp)
        if want is None:
            continue
        try:
            ptr = b[b.find(f"btf_trace_{tp}", "typedef")].type
            proto = b.resolve(b.resolve(ptr).type)
        except (KeyError, IndexError):
            continue
        params = tuple(b.type_name(m.type) for m in proto.members)
        if proto.kind == "func_proto" and params[1:] == want[0]:
            out.add(tp)
    return out, off


def _raw_probe(idx: int, tp: str) -> str:
    """A flush that lost nothing (the common case) is counted by its devices' addresses in
    ``xl_flush`` (one per-CPU hash lookup). Their ifindexes are read on a CPU's first hit
    and again every 64th: a device freed and another allocated at its address is noticed
    within 64 flushes, and what the old one sent is kept under its ifindex (``xl_stats``).
    A flush that lost frames goes the whole way (``xl_record``)."""
    f = RAW_PROTOTYPES[tp][1]
    to_ifindex = f"xl_ifindex({f['to_dev']})" if f["to_dev"] != "0" else "0"
    return f"""
RAW_TRACEPOINT_PROBE({tp})
{{
    int drops = {f["drops"]}, err = {f["err"]}, sent = {f["sent"]};
    if (!drops && !err) {{
        struct xl_fkey fk = {{.dev = {f["dev"]}, .to_dev = {f["to_dev"]}, .tp = {idx}}};
        struct xl_fval zero = {{}}, *fv = xl_flush.lookup_or_try_init(&fk, &zero);
        if (!fv)
            return 0;
        if ((fv->events & 63) == 0) {{          /* this CPU's first hit, then every 64th */
            int i = xl_ifindex({f["dev"]}), t = {to_ifindex};
            if (fv->events && (fv->ifindex != i || fv->to != t))
                xl_fold(&fk, fv);              /* another device at that address now */
            fv->ifindex = i;
            fv->to = t;
            fv->act = {f["act"]};
        }}
        fv->events += 1;
        fv->sent += sent;
        return 0;
    }}
    struct xl_key k = {{}};
    k.tp = {idx};
    k.act = {f["act"]};
    k.ifindex = xl_ifindex({f["dev"]});
    k.to = {to_ifindex};
    k.err = err;
    xl_record(ctx, &k, drops, sent, 0);
    return 0;
}}
"""


_PRELUDE = r"""
struct xl_key {
    u32 tp; u32 act; s32 ifindex; s32 to; s32 err; u32 prog_id; u32 map_id;
};
struct xl_val {                 /* per CPU: plain adds, no atomic read-modify-write */
    u64 events; u64 drops; u64 sent; u64 streamed_ns;
};
struct xl_event {               /* flat: read in Python through _Event (ctypes) */
    u64 ts; struct xl_key k; u32 drops; u32 sent; s32 map_index; u32 cpu;
};
BPF_PERCPU_HASH(xl_stats, struct xl_key, struct xl_val, 4096);
/* flushes that lost nothing, by the devices' addresses (raw tracepoint probes only) */
struct xl_fkey { u64 dev; u64 to_dev; u32 tp; u32 pad; };
struct xl_fval { u64 events; u64 sent; s32 ifindex; s32 to; u32 act; u32 pad; };
BPF_PERCPU_HASH(xl_flush, struct xl_fkey, struct xl_fval, 1024);
BPF_RINGBUF_OUTPUT(xl_events, 16);
BPF_ARRAY(xl_lost, u64, 2);         /* [0] events with no room, [1] events submitted */

static __always_inline void xl_fold(struct xl_fkey *fk, struct xl_fval *fv)
{
    /* a device's cheap-path counts, kept under its ifindex once its address is reused */
    struct xl_key k = {};
    struct xl_val zero = {}, *v;
    k.tp = fk->tp; k.act = fv->act; k.ifindex = fv->ifindex; k.to = fv->to;
    v = xl_stats.lookup_or_try_init(&k, &zero);
    if (v) {
        v->events += fv->events;
        v->sent += fv->sent;
    }
    fv->events = 0;
    fv->sent = 0;
}

static __always_inline int xl_ifindex(u64 dev)
{
    int i = 0;
    bpf_probe_read_kernel(&i, sizeof(i), (void *)(dev + XL_IFINDEX_OFF));
    return i;
}

static __always_inline void xl_record(void *ctx, struct xl_key *k, u32 drops, u32 sent, s32 map_index)
{
    /* a clock read only for losses: xdp_devmap_xmit/xdp_bulk_tx fire on every flush of
     * frames that went out fine, and a clock read is the dearest part of this (a VM's clock) */
    u64 now = (drops || k->err) ? bpf_ktime_get_ns() : 0;
    struct xl_val zero = {}, *v;
    v = xl_stats.lookup_or_try_init(k, &zero);
    if (v) {
        v->events += 1;
        v->drops += drops;
        v->sent += sent;
    }
    if (!drops && k->err == 0)
        return;                          /* only losses are streamed, */
    if (v && v->streamed_ns && now - v->streamed_ns < XL_STREAM_GAP_NS)
        return;                          /* at most one per key, CPU and gap: the map has the totals */
    if (v)
        v->streamed_ns = now;
    struct xl_event *e = xl_events.ringbuf_reserve(sizeof(struct xl_event));
    if (!e) {
        u32 z = 0;
        u64 *lost = xl_lost.lookup(&z);
        if (lost)
            __sync_fetch_and_add(lost, 1);
        return;
    }
    e->ts = now; e->k = *k; e->drops = drops; e->sent = sent; e->map_index = map_index;
    e->cpu = bpf_get_smp_processor_id();
    xl_events.ringbuf_submit(e, 0);
    u32 one = 1;
    u64 *sub = xl_lost.lookup(&one);
    if (sub)
        __sync_fetch_and_add(sub, 1);
}
"""


import ctypes as _ct


class _Key(_ct.Structure):
    _fields_ = [("tp", _ct.c_uint32), ("act", _ct.c_uint32), ("ifindex", _ct.c_int32), ("to", _ct.c_int32),
                ("err", _ct.c_int32), ("prog_id", _ct.c_uint32), ("map_id", _ct.c_uint32)]


class _Event(_ct.Structure):
    _fields_ = [("ts", _ct.c_uint64), ("k", _Key), ("drops", _ct.c_uint32), ("sent", _ct.c_uint32),
                ("map_index", _ct.c_int32), ("cpu", _ct.c_uint32)]


def errno_name(err: int) -> str:
    if not err:
        return ""
    return errno.errorcode.get(abs(err), str(err))


def ifname(ifindex: int) -> str:
    if ifindex <= 0:
        return ""
    try:
        return socket.if_indextoname(ifindex)
    except OSError:
        return f"ifindex {ifindex}"


@dataclass(frozen=True)
class Loss:
    """One row: a (tracepoint, interface, action, errno, target, program) and its totals."""
    tracepoint: str
    ifindex: int
    action: str
    err: int
    to: int
    prog_id: int
    map_id: int
    events: int
    drops: int
    sent: int

    @property
    def reason(self) -> str:
        if not self.drops and not self.err:
            return "no loss"          # a successful flush/redirect (summary(all_events=True))
        return reason(self.tracepoint, self.action, self.err, self.ifindex, self.to)


_FLUSH = frozenset({"xdp_bulk_tx", "xdp_devmap_xmit"})
_REDIRECT_ERR = frozenset({"xdp_redirect_err", "xdp_redirect_map_err"})
_PEER_FIX = ("Attach an XDP program (XDP_PASS is enough) to the peer inside the namespace "
             "(xdplab.net.redirect.ensure_peer_program(host)).")

#: why a frame was lost, by tracepoint, action, errno (positive) and the target's link kind;
#: the first matching row wins (failures.find("drop", ...)); ``what`` may use {dev},
#: {target}, {what} (XDP_TX/XDP_REDIRECT), {action}, {errname}, {to}
DROP_CAUSES = failures.register(
    Row("aborted", "XDP_ABORTED", kind="drop", when={"tp": "xdp_exception", "action": "ABORTED"},
        what="the program returned XDP_ABORTED (explicitly, or through bpf_redirect_map() missing its "
             "map entry with flags 0: the helper then returns XDP_ABORTED); the frame is dropped"),
    Row("driver-action-failed", "the driver could not carry out the action", kind="drop",
        when={"tp": "xdp_exception", "action": ("TX", "REDIRECT")},
        what="the driver of {dev} could not carry out XDP_{action} (e.g. no room to convert the buffer to a frame)"),
    Row("invalid-action", "an unknown action", kind="drop", when={"tp": "xdp_exception"},
        what="the program returned an invalid action ({action}): treated as XDP_ABORTED"),
    Row("veth-peer-no-xdp", "XDP_TX/redirect into a veth whose peer has no XDP program", kind="drop",
        when={"tp": _FLUSH, "errno": errno.ENXIO, "target_kind": "veth"},
        what="{what} into veth {target}: its peer has no XDP program, so the peer has no XDP receive "
             "ring (NAPI) and veth_xdp_xmit() frees the frames (-ENXIO). " + _PEER_FIX,
        fix="redirect.ensure_peer_program(host)"),
    Row("no-xdp-ring", "the target has no XDP ring", kind="drop", when={"tp": _FLUSH, "errno": errno.ENXIO},
        what="{what} into {target}: the device cannot take XDP frames now (-ENXIO: no XDP ring/peer)"),
    Row("target-down", "the target is down", kind="drop", when={"tp": _FLUSH, "errno": errno.ENETDOWN},
        what="{what} into {target}: the device (or its veth peer) is down (-ENETDOWN)"),
    Row("no-ndo-xdp-xmit", "the target driver cannot transmit XDP frames", kind="drop",
        when={"tp": _FLUSH, "errno": errno.EOPNOTSUPP},
        what="{what} into {target}: the driver has no ndo_xdp_xmit (-EOPNOTSUPP)"),
    Row("tx-ring-full", "the target's XDP TX ring is full", kind="drop", when={"tp": _FLUSH, "errno": errno.ENOSPC},
        what="{what} into {target}: its XDP TX ring is full (-ENOSPC)"),
    Row("flush-failed", "flushing to the target failed", kind="drop", when={"tp": _FLUSH, "errno": failures.nonzero},
        what="{what} into {target} failed: -{errname}"),
    Row("flush-short", "the transmit queue took fewer frames", kind="drop", when={"tp": _FLUSH},
        what="the device's transmit queue took fewer frames than were flushed (ring full)"),
    Row("redirect-veth-peer", "XDP_REDIRECT into a veth whose peer has no XDP program", kind="drop",
        when={"tp": _REDIRECT_ERR, "errno": errno.EOPNOTSUPP, "to": failures.nonzero, "target_kind": "veth"},
        what="XDP_REDIRECT into veth {target}: a veth accepts XDP frames (advertises "
             "NETDEV_XDP_ACT_NDO_XMIT) only while its peer has an XDP program (or GRO); this peer has "
             "none, so the redirect is refused (-EOPNOTSUPP) and the frame dropped. " + _PEER_FIX,
        fix="redirect.ensure_peer_program(host)"),
    Row("redirect-target-down", "redirect target down", kind="drop",
        when={"tp": _REDIRECT_ERR, "errno": errno.ENETDOWN},
        what="XDP_REDIRECT to {target}: the target is down (-ENETDOWN)"),
    Row("redirect-no-ndo-xdp-xmit", "redirect target cannot transmit XDP frames", kind="drop",
        when={"tp": _REDIRECT_ERR, "errno": errno.EOPNOTSUPP},
        what="XDP_REDIRECT to {target}: the target driver has no ndo_xdp_xmit (-EOPNOTSUPP)"),
    Row("redirect-mtu", "frame larger than the target's MTU", kind="drop",
        when={"tp": _REDIRECT_ERR, "errno": errno.EMSGSIZE},
        what="XDP_REDIRECT to {target}: the frame exceeds the target's MTU (-EMSGSIZE)"),
    Row("redirect-einval", "redirect to nowhere", kind="drop", when={"tp": _REDIRECT_ERR, "errno": errno.EINVAL},
        what="XDP_REDIRECT to an ifindex that does not exist, or no bpf_redirect*() call before "
             "returning XDP_REDIRECT (-EINVAL)"),
    Row("redirect-empty-entry", "redirect through an empty map entry", kind="drop",
        when={"tp": _REDIRECT_ERR, "errno": errno.ENOENT},
        what="XDP_REDIRECT through a map entry that is empty (-ENOENT)"),
    Row("redirect-xsk-full", "AF_XDP ring full", kind="drop", when={"tp": _REDIRECT_ERR, "errno": errno.EBUSY},
        what="XDP_REDIRECT into an AF_XDP socket whose ring is full (-EBUSY)"),
    Row("redirect-enobufs", "no room in the target queue", kind="drop",
        when={"tp": _REDIRECT_ERR, "errno": errno.ENOBUFS},
        what="XDP_REDIRECT: no room in the target's queue (-ENOBUFS)"),
    Row("redirect-refused", "redirect refused", kind="drop", when={"tp": _REDIRECT_ERR},
        what="XDP_REDIRECT refused: -{errname}"),
    Row("cpumap-queue-full", "cpumap queue full", kind="drop", when={"tp": "xdp_cpumap_enqueue"},
        what="cpumap: CPU {to}'s queue was full, frames dropped before the remote CPU saw them"),
    Row("cpumap-kthread", "dropped on the remote CPU", kind="drop", when={"tp": "xdp_cpumap_kthread"},
        what="cpumap kthread: frames dropped on the remote CPU (its program or skb allocation)"),
)


def reason(tp: str, action: str, err: int, ifindex: int, to: int) -> str:
    """The cause of a loss, in the words of the kernel code that reported it (the first
    matching row of ``DROP_CAUSES``)."""
    e = abs(err)
    dev = ifname(ifindex)
    target = (dev if tp == "xdp_bulk_tx" else ifname(to)) if tp in _FLUSH else (ifname(to) if to else "the target")
    facts = {"tp": tp, "action": action, "errno": e, "to": to, "dev": dev, "target": target,
             "what": "XDP_TX" if tp == "xdp_bulk_tx" else "XDP_REDIRECT", "errname": errno_name(err)}
    if e in (errno.ENXIO, errno.EOPNOTSUPP) and target and target != "the target":
        facts["target_kind"] = (kernel.link_details(target) or {}).get("kind")
    row = failures.find("drop", **facts)
    if row is not None:
        return row.explain(**facts)
    return f"{tp}: -{errno_name(err)}" if err else tp


class DropDetector(Closable):
    """Attach BCC probes to every xdp tracepoint this kernel has; aggregate in a kernel
    map (read at any rate), stream each loss through a ring buffer (``events()``).

    ``programs``: XDPPrograms whose action counters the widget shows alongside.
    ``stream_gap``: a loss event is streamed to ``events()`` at most once per this many
    seconds per (tracepoint, interface, action, errno, target, program); ``summary()``
    counts every one. 0 streams all (costly under a flood).
    ``ifaces``: only report losses on or into these interfaces (the probes see the whole
    machine; other users' drops are filtered out here).
    ``successes``: also probe ``xdp_redirect`` (one hit per *successful* redirect: costly
    at high rates and never a loss; its failures come through ``xdp_redirect_err``).

    ``stop()`` (= ``close()``, the end of a ``with`` block) is final: what was recorded
    stays readable (``summary()``, ``losses()``, ``events()``); ``start()``, ``wait()``,
    ``clear()`` and ``widget()`` then raise ``ClosedError``."""

    _reopen_hint = "what it recorded stays readable; make a new DropDetector() to watch again"

    def __init__(self, programs=(), max_events: int = 10000, successes: bool = False,
                 stream_gap: float = 0.01, ifaces=None):
        self.stream_gap = stream_gap
        #: show only losses on (or into) these interfaces (names, or lab Hosts); None: all
        self.ifaces = None if ifaces is None else [kernel.resolve_device(i).name for i in ifaces]
        self.programs = list(programs)
        self.tracepoints = {tp: f for tp, f in available().items()
                            if successes or tp not in _EACH_HIT_SENT}
        self._names = list(self.tracepoints)
        #: the tracepoints probed raw (``raw_capable``), known once the source is made
        self.raw: set = set()
        self._raw_off = None
        self._events = collections.deque(maxlen=max_events)
        #: the last loss events for the widget: clear() does not erase what was seen
        self._recent = collections.deque(maxlen=8)
        self._cleared_at = time.time()
        self.bpf = None
        self._stop = threading.Event()
        self._thread = None
        self.received = 0

    # --- lifecycle -------------------------------------------------------------------
    def source(self) -> str:
        """The probes' C: a raw tracepoint where ``raw_capable`` says so (``self.raw``), the
        tracepoint's format file elsewhere."""
        if self._raw_off is None:
            self.raw, off = raw_capable(self._names)
            self._raw_off = off if off is not None else 0
        probes = "".join(_raw_probe(i, tp) if tp in self.raw else _probe(i, tp, self.tracepoints[tp])
                         for i, tp in enumerate(self._names))
        return (f"#define XL_STREAM_GAP_NS {int(self.stream_gap * 1e9)}ULL\n"
                f"#define XL_IFINDEX_OFF {self._raw_off}\n" + _PRELUDE + probes)

    def attach_probes(self, on: bool = True) -> None:
        """Attach (or with ``on=False`` detach) every probe of a started detector: while
        detached it costs nothing and records nothing (bench measures it both ways)."""
        self._check_open("attach its probes")
        for tp in self._names:
            if tp in self.raw:
                if on:
                    self.bpf.attach_raw_tracepoint(tp=tp, fn_name=f"raw_tracepoint__{tp}")
                else:
                    self.bpf.detach_raw_tracepoint(tp)
            elif on:
                self.bpf.attach_tracepoint(tp=f"xdp:{tp}", fn_name=f"tracepoint__xdp__{tp}")
            else:
                self.bpf.detach_tracepoint(f"xdp:{tp}")

    @needs_open
    def start(self) -> "DropDetector":
        if self.bpf is not None:
            return self
        from bcc import BPF
        with capture_stderr() as err:
            try:
                self.bpf = BPF(text=self.source().encode())
            except Exception as e:
                raise features.error("ringbuf_tracepoints",
                                     f"BCC could not load the probes: {e}\n{err['text'][-800:]}") from None
        self.bpf["xl_events"].open_ring_buffer(self._on_event)
        self._stop.clear()
        self._thread = threading.Thread(target=self._poll, name="xdplab-drops", daemon=True)
        self._thread.start()
        return self

    def _poll(self):
        while not self._stop.is_set():
            try:
                self.bpf.ring_buffer_poll(100)
            except Exception:
                if self._stop.is_set():
                    return
                time.sleep(0.1)

    def _on_event(self, ctx, data, size):
        e = _ct.cast(data, _ct.POINTER(_Event)).contents
        k = e.k
        tp = self._names[k.tp] if k.tp < len(self._names) else str(k.tp)
        self._events.append(ev := {
            "time": e.ts / 1e9, "tracepoint": tp, "ifname": ifname(k.ifindex),
            "action": kernel.action_name(k.act), "errno": errno_name(k.err),
            "to": ifname(k.to) if tp not in ("xdp_cpumap_enqueue", "xdp_cpumap_kthread") else f"cpu{k.to}",
            "drops": e.drops, "sent": e.sent, "prog_id": k.prog_id, "map_id": k.map_id,
            "map_index": e.map_index, "cpu": e.cpu,
            "reason": reason(tp, kernel.action_name(k.act), k.err, k.ifindex, k.to)})
        ev["program"] = _prog_name(k.prog_id, k.ifindex)     # now: the program that ran it
        ev["wall"] = time.time() - time.monotonic() + e.ts / 1e9   # ktime is CLOCK_MONOTONIC
        self._recent.append(ev)
        self.received += 1                                  # last: wait() settles on it

    def stop(self) -> None:
        if self.bpf is None:
            self._closed = True
            return
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=2)
        self._final = self.losses()
        self.bpf.cleanup()
        self.bpf = None
        self._closed = True

    close = stop

    def _describe(self) -> str:
        return "DropDetector"

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # --- data ------------------------------------------------------------------------
    def losses(self, all_events: bool = False) -> list[Loss]:
        """Aggregated rows from the kernel map; only rows with drops or an errno unless
        ``all_events`` (successful redirects/flushes too)."""
        if self.bpf is None:
            return list(getattr(self, "_final", []))
        keep = None if self.ifaces is None else {kernel.ifindex(n) for n in self.ifaces} - {0}
        totals: dict = {}            # (tp, ifindex, act, err, to, prog_id, map_id) -> [events, drops, sent]

        def add(key, events, drops, sent):
            t = totals.setdefault(key, [0, 0, 0])
            t[0], t[1], t[2] = t[0] + events, t[1] + drops, t[2] + sent
        for k, per_cpu in self.bpf["xl_stats"].items():
            add((k.tp, k.ifindex, k.act, k.err, k.to, k.prog_id, k.map_id),
                *(sum(getattr(v, f) for v in per_cpu) for f in ("events", "drops", "sent")))
        if all_events and self.raw:
            for k, per_cpu in self.bpf["xl_flush"].items():
                for v in per_cpu:            # each CPU read the devices' ifindexes itself
                    if v.events:
                        add((k.tp, v.ifindex, v.act, 0, v.to, 0, 0), v.events, 0, v.sent)
        rows = []
        for (tpi, ifindex, act, err, to, prog_id, map_id), (events, drops, sent) in totals.items():
            tp = self._names[tpi] if tpi < len(self._names) else str(tpi)
            if not all_events and not drops and not err:
                continue
            if keep is not None and ifindex not in keep and ("cpumap" in tp or to not in keep):
                continue
            rows.append(Loss(tp, ifindex, kernel.action_name(act), err, to, prog_id, map_id, events, drops, sent))
        return sorted(rows, key=lambda r: -r.drops)

    @property
    def dropped(self) -> int:
        return sum(r.drops for r in self.losses())

    @property
    def lost_events(self) -> int:
        """Loss events the ring buffer had no room for (the aggregate still counts them)."""
        if self.bpf is None:
            return 0
        return self.bpf["xl_lost"][_ct.c_int(0)].value

    def _submitted(self) -> int:
        return self.bpf["xl_lost"][_ct.c_int(1)].value

    def events(self, clear: bool = False) -> list[dict]:
        """The individual loss events received so far (newest last)."""
        out = list(self._events)
        if clear:
            self._events.clear()
        return out

    @needs_open
    def wait(self, timeout: float = 1.0, min_drops: int = 1) -> list[Loss]:
        """Poll the kernel aggregate until ``min_drops`` frames are reported lost, then until
        every loss event the kernel streamed so far has reached ``events()`` and the widget."""
        end = time.monotonic() + timeout
        while True:
            rows = self.losses()
            if sum(r.drops for r in rows) >= min_drops or time.monotonic() >= end:
                break
            time.sleep(0.02)
        settle = time.monotonic() + 1.0      # the poll thread wakes at least every 100 ms
        if self.received < self._submitted():
            while self.received < self._submitted() and time.monotonic() < settle:
                time.sleep(0.01)
            rows = self.losses()              # as of now: frames may have come in meanwhile
        return rows

    @needs_open
    def clear(self) -> None:
        if self.bpf is not None:
            self.bpf["xl_stats"].clear()
            self.bpf["xl_flush"].clear()
        self._events.clear()
        self._cleared_at = time.time()

    def summary(self, all_events: bool = False):
        """A DataFrame: one row per (tracepoint, interface, action, errno, target, program)."""
        import pandas as pd
        rows = [{"tracepoint": r.tracepoint, "ifname": ifname(r.ifindex), "program": _prog_name(r.prog_id, r.ifindex),
                 "action": r.action, "errno": errno_name(r.err),
                 "to": ifname(r.to) if "cpumap" not in r.tracepoint else f"cpu{r.to}",
                 "events": r.events, "drops": r.drops, "sent": r.sent, "reason": r.reason}
                for r in self.losses(all_events)]
        cols = ["tracepoint", "ifname", "program", "action", "errno", "to", "events", "drops", "sent", "reason"]
        return wide_table(rows, columns=cols)

    # --- display ---------------------------------------------------------------------
    def _html(self) -> str:
        rows = self.losses()
        parts = ["<b>XDP losses</b> (xdp tracepoints: " + ", ".join(self._names) + ")"]
        if not rows:
            since = time.strftime("%H:%M:%S", time.localtime(self._cleared_at))
            parts.append(f"<div style='color:#2e7d32'>no drops reported since {since}</div>")
        else:
            parts.append("<table><tr><th>where</th><th>program</th><th>tracepoint</th><th>action</th>"
                         "<th>errno</th><th>target</th><th>drops</th><th>why</th></tr>")
            for r in rows:
                parts.append(
                    f"<tr><td><code>{escape(ifname(r.ifindex))}</code></td><td>{escape(_prog_name(r.prog_id, r.ifindex))}</td>"
                    f"<td>{r.tracepoint}</td><td>XDP_{r.action}</td><td>{errno_name(r.err)}</td>"
                    f"<td>{escape(ifname(r.to)) if 'cpumap' not in r.tracepoint else f'cpu{r.to}'}</td>"
                    f"<td><b style='color:#c0392b'>{r.drops}</b></td>"
                    f"<td style='text-align:left'>{escape(r.reason)}</td></tr>")
            parts.append("</table>")
        if self._recent:                # kept across clear(): what happened stays readable
            parts.append("<div style='margin-top:4px'><b>recent loss events</b> (newest first)</div>"
                         "<table><tr><th>time</th><th>where</th><th>program</th><th>tracepoint</th>"
                         "<th>errno</th><th>drops</th><th>why</th></tr>")
            for ev in reversed(self._recent):
                t = time.strftime("%H:%M:%S", time.localtime(ev["wall"])) + f".{int(ev['wall'] % 1 * 1000):03d}"
                parts.append(f"<tr><td style='white-space:nowrap'>{t}</td>"
                             f"<td style='white-space:nowrap'><code>{escape(ev['ifname'])}</code></td>"
                             f"<td>{escape(ev['program'])}</td><td>{ev['tracepoint']}</td><td>{ev['errno']}</td>"
                             f"<td>{ev['drops']}</td><td style='text-align:left'>{escape(ev['reason'])}</td></tr>")
            parts.append("</table>")
        for p in self.programs:
            try:
                c = p.counters()
            except Exception:
                continue
            parts.append(f"<div><b>{escape(p.name)}</b> (id {p.id}) actions:</div>{c._repr_html_()}")
        return "".join(parts)

    def _repr_html_(self) -> str:
        return self._html()

    def __repr__(self) -> str:
        state = "running" if self.bpf is not None else "stopped, closed" if self.closed else "not started"
        return f"<DropDetector {state}: {len(self._names)} tracepoints, {self.dropped} drops>"

    @needs_open
    def widget(self, hz: float = 4.0):
        """An ipywidgets HTML table refreshed ``hz`` times a second (starts the detector)."""
        import ipywidgets as w
        self.start()
        box = w.HTML(self._html())

        def refresh():
            while self.bpf is not None and not self._stop.is_set():
                try:
                    box.value = self._html()
                except Exception:
                    pass
                time.sleep(1 / hz)
        threading.Thread(target=refresh, name="xdplab-drops-widget", daemon=True).start()
        return box


def _prog_name(prog_id: int, ifindex: int = 0) -> str:
    """``name#id`` of the program a loss came from: the tracepoint's prog_id, or (those
    that carry none: xdp_bulk_tx, xdp_devmap_xmit) the XDP program attached where the
    frame was received (``ifindex``)."""
    if not prog_id and ifindex > 0:
        dev = ifname(ifindex)
        try:
            state = kernel.xdp_state(dev) if dev and not dev.startswith("ifindex ") else {}
        except Exception:
            state = {}
        prog_id = state.get("native") or state.get("generic") or 0
    if not prog_id:
        return ""
    return f"{kernel.prog_name_by_id(prog_id)}#{prog_id}"
