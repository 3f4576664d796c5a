"""Packet capture at XDP, without fentry/fexit: the program is instrumented when compiled.

    prog = xdplab.load(SRC, capture=True)                 # or capture=Capture(snaplen=128, filter="udp")
    prog.attach("xl-h1")
    cap = prog.capture()                                  # starts reading samples
    ... traffic ...
    cap.table()                                           # entry/exit side by side, with the action
    cap.write_pcap("x.pcap")                              # tcpdump -r x.pcap
    cap.stats()                                           # seen / captured / lost

The wrapper xdplab already puts around the user's XDP function (to count actions) also
emits two samples per packet through bpf_perf_event_output: at entry (the bytes the
program got) and at exit (the action it returned and the bytes after it changed them).
For XDP, the helper appends ``caplen`` bytes of the packet itself (flags bits 32..63), so
nothing is copied on the BPF stack. ``filter`` is a tcpdump expression: libpcap compiles
it to classic BPF, which is translated here to C (forward gotos only, every load
bounds-checked) and evaluated on the entry bytes; ``snaplen`` caps the copied bytes.
A full perf buffer makes the helper fail: those samples are counted as lost, so
captured + lost = samples the program tried to emit.

libbpf-style C and compiled objects get the same wrapper as libbpf-style C
(``libbpf_wrapper``), spliced in front of the program's final instructions (``splice``;
``libbpf.capture_object_program``), read through libbpf's perf buffer: same API, same
samples.
"""
from __future__ import annotations

import ctypes as ct
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import Closable, ClosedError, UsageError, XDPLabError, needs_open
from .. import kernel
from ..kernel.abi import ACTIONS
from .maps import _exists
from html import escape

ENTRY, EXIT = 0, 1
MAX_SNAPLEN = 65535
# stats slots (per-CPU array xdplab_cap_stats)
SEEN, MATCHED, EMITTED, LOST = range(4)


@dataclass(frozen=True)
class Capture:
    """Capture options for ``Program(..., capture=Capture(...))`` (``capture=True``: defaults).

    ``snaplen``: bytes of each packet copied (at most); ``filter``: tcpdump expression
    (empty: everything); ``entry``/``exit``: which samples to emit; ``pages``: perf buffer
    pages per CPU."""

    snaplen: int = 256
    filter: str = ""
    entry: bool = True
    exit: bool = True
    pages: int = 64

    def __post_init__(self):
        def is_int(v):
            return isinstance(v, int) and not isinstance(v, bool)
        if not is_int(self.snaplen) or not 1 <= self.snaplen <= MAX_SNAPLEN:
            raise UsageError(f"Capture snaplen={self.snaplen!r}: give the bytes to copy of each packet, "
                             f"an int in 1..{MAX_SNAPLEN}")
        if not is_int(self.pages) or self.pages < 1 or self.pages & (self.pages - 1):
            raise UsageError(f"Capture pages={self.pages!r}: perf buffer pages per CPU must be a "
                             "power of two (e.g. 64)")
        if not isinstance(self.filter, str):
            raise UsageError(f"Capture filter={self.filter!r}: give a tcpdump expression as a str "
                             "('' = everything)")
        if not self.entry and not self.exit:
            raise UsageError("Capture(entry=False, exit=False) captures nothing",
                             hint="keep entry=True, exit=True or both")

    @classmethod
    def of(cls, value) -> "Capture | None":
        if not value:
            return None
        if value is True:
            return cls()
        if isinstance(value, int) and not isinstance(value, bool):
            return cls(snaplen=value)
        if isinstance(value, str):
            return cls(filter=value)
        if isinstance(value, dict):
            try:
                return cls(**value)
            except TypeError as e:
                raise UsageError(f"capture={value!r}: {e}", hint="keys: snaplen, filter, entry, exit, pages") from None
        if isinstance(value, cls):
            return value
        raise UsageError(f"capture={value!r}: give True, a snaplen (int), a tcpdump filter (str), "
                         "a dict or xdplab.Capture(...)")


# --- tcpdump filter -> classic BPF -> C ----------------------------------------------------

def cbpf(expr: str) -> list[tuple[int, int, int, int]]:
    """libpcap's classic BPF for ``expr`` on Ethernet (what ``tcpdump -d`` prints)."""
    from scapy.arch.common import compile_filter
    try:
        prog = compile_filter(expr, linktype=1)
    except Exception as e:
        raise XDPLabError(f"capture filter {expr!r} does not compile: {e}",
                          hint="use tcpdump syntax, e.g. 'udp port 53' or 'icmp or arp'") from None
    return [(prog.bf_insns[i].code, prog.bf_insns[i].jt, prog.bf_insns[i].jf, prog.bf_insns[i].k)
            for i in range(prog.bf_len)]


def _load(size: int, ptr: str) -> str:
    if size == 1:
        return f"{ptr}[0]"
    if size == 2:
        return f"(((u32){ptr}[0] << 8) | {ptr}[1])"
    return f"(((u32){ptr}[0] << 24) | ((u32){ptr}[1] << 16) | ((u32){ptr}[2] << 8) | {ptr}[3])"


def cbpf_to_c(insns, name: str = "xdplab_cap_match") -> str:
    """Translate classic BPF into a C function ``int name(void *data, void *data_end)``
    returning non-zero for a match. Classic BPF only jumps forward, so the C has no loops."""
    targets = {0}
    for i, (code, jt, jf, k) in enumerate(insns):
        if code & 0x07 == 0x05:
            if code & 0xf0 == 0x00:
                targets.add(i + 1 + k)
            else:
                targets.update((i + 1 + jt, i + 1 + jf))
    body = []
    sizes = {0x00: 4, 0x08: 2, 0x10: 1}
    for i, (code, jt, jf, k) in enumerate(insns):
        cls, lab = code & 0x07, f"L{i}: " if i in targets else ""
        s = ""
        if cls in (0x00, 0x01):                       # LD / LDX
            dst = "A" if cls == 0x00 else "X"
            mode, size = code & 0xe0, sizes.get(code & 0x18, 4)
            if mode == 0x00:
                s = f"{dst} = {k}u;"
            elif mode == 0x80:
                s = f"{dst} = len;"
            elif mode == 0x60:
                s = f"{dst} = M[{k & 15}];"
            elif mode == 0x20:
                s = (f"p = data + {k}; if ((void *)(p + {size}) > data_end) return 0; "
                     f"{dst} = {_load(size, 'p')};")
            elif mode == 0x40:
                s = (f"off = (X + {k}u) & 0xffff; p = data + off; if ((void *)(p + {size}) > data_end) "
                     f"return 0; {dst} = {_load(size, 'p')};")
            elif mode == 0xa0:
                s = f"p = data + {k}; if ((void *)(p + 1) > data_end) return 0; X = (p[0] & 0xf) << 2;"
        elif cls == 0x02:
            s = f"M[{k & 15}] = A;"
        elif cls == 0x03:
            s = f"M[{k & 15}] = X;"
        elif cls == 0x04:                             # ALU
            op, src = code & 0xf0, ("X" if code & 0x08 else f"{k}u")
            ops = {0x00: "+", 0x10: "-", 0x20: "*", 0x30: "/", 0x40: "|", 0x50: "&", 0x60: "<<",
                   0x70: ">>", 0x90: "%", 0xa0: "^"}
            if op == 0x80:
                s = "A = -A;"
            elif op in (0x30, 0x90) and src == "X":
                s = f"if (X == 0) return 0; A = A {ops[op]} X;"
            else:
                s = f"A = A {ops[op]} {src};"
        elif cls == 0x05:                             # JMP
            op, src = code & 0xf0, ("X" if code & 0x08 else f"{k}u")
            if op == 0x00:
                s = f"goto L{i + 1 + k};"
            else:
                cond = {0x10: f"A == {src}", 0x20: f"A > {src}", 0x30: f"A >= {src}",
                        0x40: f"A & {src}"}[op]
                s = f"if ({cond}) goto L{i + 1 + jt}; else goto L{i + 1 + jf};"
        elif cls == 0x06:                             # RET
            rv = code & 0x18
            s = "return A;" if rv == 0x10 else ("return X;" if rv == 0x08 else f"return {k}u;")
        elif cls == 0x07:
            s = "X = A;" if code & 0xf8 == 0x00 else "A = X;"
        body.append(f"    {lab}{s}")
    return (f"static __always_inline u32 {name}(void *data, void *data_end)\n{{\n"
            "    u32 A = 0, X = 0, off = 0, M[16] = {};\n"
            "    u32 len = data_end - data;\n    unsigned char *p;\n"
            + "\n".join(body) + "\n    return 0;\n}\n")


# --- the instrumented wrapper (used by Program.full_source) ----------------------------------

_DECLS = r"""
struct xdplab_cap_hdr {
    u64 ts;          /* bpf_ktime_get_ns() at entry: with the CPU, pairs entry and exit */
    u32 ifindex;
    u32 rxq;
    u32 len;         /* packet length at this point */
    u32 caplen;      /* bytes that follow */
    s32 action;      /* -1 at entry */
    u32 point;       /* 0 entry, 1 exit */
};
BPF_PERF_OUTPUT(xdplab_cap);
BPF_PERCPU_ARRAY(xdplab_cap_stats, u64, 4);   /* seen, matched, emitted, lost */

static __always_inline void xdplab_cap_inc(u32 slot)
{
    u64 *v = xdplab_cap_stats.lookup(&slot);
    if (v)
        *v += 1;
}

static __always_inline void xdplab_cap_emit(struct xdp_md *ctx, u64 ts, u32 point, int action)
{
    struct xdplab_cap_hdr h = {};
    u64 len = ctx->data_end - ctx->data;
    h.ts = ts;
    h.ifindex = ctx->ingress_ifindex;
    h.rxq = ctx->rx_queue_index;
    h.len = len;
    u32 caplen = len < XDPLAB_SNAPLEN ? len : XDPLAB_SNAPLEN;
    h.caplen = caplen;
    h.action = action;
    h.point = point;
    int rc = xdplab_cap.perf_submit_skb(ctx, caplen, &h, sizeof(h));
    if (rc == 0)
        xdplab_cap_inc(2);
    else
        xdplab_cap_inc(3);
}
"""


def wrapper(spec, entry: str, inner: str) -> str:
    """C for the capture helpers and the exported XDP function around ``inner``."""
    cap = Capture.of(spec.capture)
    match = (cbpf_to_c(cbpf(cap.filter)) if cap.filter else
             "static __always_inline u32 xdplab_cap_match(void *data, void *data_end) { return 1; }\n")
    ret = f"xdplab_count(ctx, act)" if spec.count else "act"
    emit_entry = "xdplab_cap_emit(ctx, ts, 0, -1);" if cap.entry else ""
    emit_exit = "xdplab_cap_emit(ctx, ts, 1, act);" if cap.exit else ""
    return (f'\n#line 1 "<xdplab capture>"\n#define XDPLAB_SNAPLEN {int(cap.snaplen)}\n{_DECLS}\n{match}\n'
            f"int {entry}(struct xdp_md *ctx)\n{{\n"
            "    u64 ts = bpf_ktime_get_ns();\n"
            "    u32 hit = xdplab_cap_match((void *)(long)ctx->data, (void *)(long)ctx->data_end);\n"
            "    xdplab_cap_inc(0);\n"
            f"    if (hit) {{ xdplab_cap_inc(1); {emit_entry} }}\n"
            f"    int act = {inner}(ctx);\n"
            f"    if (hit) {{ {emit_exit} }}\n"
            f"    return {ret};\n}}\n")


# --- libbpf-style source and compiled objects: the same wrapper, spliced -----------------------
#
# A libbpf program's entry cannot be rewritten the BCC way for an object (there is no
# source), and trampolines (fexit/freplace) are refused here. So the capture wrapper is
# compiled on its own (clang, libbpf-style C) around a stub subprogram, libbpf relocates
# it (map fds), and its final instructions are spliced in front of the user's program's
# final instructions: the stub is cut off and the wrapper's bpf-to-bpf call then lands on
# the user's program (``splice``). The same for a libbpf-style source (its counting
# wrapper is compiled in) and for an object (the capture wrapper counts: XDPLAB_COUNT).

_LIBBPF_DECLS = r"""
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
typedef __u64 u64;
typedef __u32 u32;
typedef __s32 s32;
struct xdplab_cap_hdr {
    u64 ts;
    u32 ifindex;
    u32 rxq;
    u32 len;
    u32 caplen;
    s32 action;
    u32 point;
};
struct {
    __uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
    __uint(key_size, sizeof(u32));
    __uint(value_size, sizeof(u32));
} xdplab_cap SEC(".maps");
struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 4);
    __type(key, u32);
    __type(value, u64);
} xdplab_cap_stats SEC(".maps");
#ifdef XDPLAB_COUNT
struct __xdplab_rec { u64 packets; u64 bytes; };
struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 5);
    __type(key, u32);
    __type(value, struct __xdplab_rec);
} xdplab_actions SEC(".maps");
#endif

static __always_inline void xdplab_cap_inc(u32 slot)
{
    u64 *v = bpf_map_lookup_elem(&xdplab_cap_stats, &slot);
    if (v)
        *v += 1;
}

static __always_inline void xdplab_cap_emit(struct xdp_md *ctx, u64 ts, u32 point, int action)
{
    struct xdplab_cap_hdr h = {};
    u64 len = bpf_xdp_get_buff_len(ctx);        /* with an xdp.frags program's fragments */
    u64 caplen = len < XDPLAB_SNAPLEN ? len : XDPLAB_SNAPLEN;
    h.ts = ts;
    h.ifindex = ctx->ingress_ifindex;
    h.rxq = ctx->rx_queue_index;
    h.len = len;
    h.caplen = caplen;
    h.action = action;
    h.point = point;
    if (bpf_perf_event_output(ctx, &xdplab_cap, BPF_F_CURRENT_CPU | (caplen << 32), &h, sizeof(h)) == 0)
        xdplab_cap_inc(2);
    else
        xdplab_cap_inc(3);
}

/* cut off by splice(): the call lands on the user's program instead. Opaque to clang
 * (a memory clobber, any return value): nothing is assumed about what the program does */
static __attribute__((noinline)) int xdplab_cap_user(struct xdp_md *ctx)
{
    asm volatile("" ::: "memory");
    return *(volatile __u32 *)&ctx->rx_queue_index;
}
"""


def libbpf_wrapper(spec, name: str, count: bool) -> str:
    """libbpf-style C of the capture wrapper (``SEC("xdp") int name(ctx)``) around the
    stub ``xdplab_cap_user``; ``count``: it also counts actions in ``xdplab_actions``."""
    cap = Capture.of(spec.capture)
    match = (cbpf_to_c(cbpf(cap.filter)) if cap.filter else
             "static __always_inline u32 xdplab_cap_match(void *data, void *data_end) { return 1; }\n")
    count_c = ("    { u32 key = (u32)act < 5 ? (u32)act : 0;\n"
               "      struct __xdplab_rec *rec = bpf_map_lookup_elem(&xdplab_actions, &key);\n"
               "      if (rec) { rec->packets++; rec->bytes += ctx->data_end - ctx->data; } }\n") if count else ""
    emit_entry = "xdplab_cap_emit(ctx, ts, 0, -1);" if cap.entry else ""
    emit_exit = "xdplab_cap_emit(ctx, ts, 1, act);" if cap.exit else ""
    return (f"#define XDPLAB_SNAPLEN {int(cap.snaplen)}\n" + ("#define XDPLAB_COUNT 1\n" if count else "")
            + _LIBBPF_DECLS + match
            + '\nSEC("xdp")\n'
            f"int {name}(struct xdp_md *ctx)\n{{\n"
            "    u64 ts = bpf_ktime_get_ns();\n"
            "    u32 hit = xdplab_cap_match((void *)(long)ctx->data, (void *)(long)ctx->data_end);\n"
            "    xdplab_cap_inc(0);\n"
            f"    if (hit) {{ xdplab_cap_inc(1); {emit_entry} }}\n"
            "    int act = xdplab_cap_user(ctx);\n"
            f"    if (hit) {{ {emit_exit} }}\n"
            f"{count_c}"
            "    return act;\n}\n"
            'char _license[] SEC("license") = "GPL";\n')


_PSEUDO_CALL = 1


def splice(wrapper: bytes) -> bytes:
    """The capture wrapper's final instructions without its stub subprogram (its last
    function, the target of its only bpf-to-bpf call): the user's program's instructions
    appended right after them become the call's target."""
    n = len(wrapper) // 8
    calls = []
    for i in range(n):
        code, regs = wrapper[8 * i], wrapper[8 * i + 1]
        if code == 0x85 and (regs >> 4) == _PSEUDO_CALL:
            imm = int.from_bytes(wrapper[8 * i + 4:8 * i + 8], "little", signed=True)
            calls.append(i + 1 + imm)
    if len(set(calls)) != 1 or not 0 < calls[0] < n:
        raise XDPLabError(f"the capture wrapper has {len(set(calls))} subprogram calls, not one "
                          "(an xdplab bug: the stub was inlined or duplicated)")
    return wrapper[:8 * calls[0]]


class _PerfBuffer:
    """libbpf's perf buffer on a PERF_EVENT_ARRAY map fd (one ring per CPU)."""

    _lib = None

    def __init__(self, map_fd: int, pages: int, on_sample, on_lost):
        L = self._libbpf()
        self._sample = self._SAMPLE(lambda ctx, cpu, data, size: on_sample(cpu, data, size))
        self._lost = self._LOST(lambda ctx, cpu, cnt: on_lost(cnt))
        ct.set_errno(0)
        self._pb = L.perf_buffer__new(map_fd, pages, self._sample, self._lost, None, None)
        if not self._pb or L.libbpf_get_error(self._pb):
            raise XDPLabError(f"libbpf could not open the capture's perf buffer: errno {ct.get_errno()}")

    @classmethod
    def _libbpf(cls):
        if cls._lib is None:
            L = ct.CDLL("libbpf.so.1", use_errno=True)
            cls._SAMPLE = ct.CFUNCTYPE(None, ct.c_void_p, ct.c_int, ct.c_void_p, ct.c_uint32)
            cls._LOST = ct.CFUNCTYPE(None, ct.c_void_p, ct.c_int, ct.c_uint64)
            L.perf_buffer__new.restype = ct.c_void_p
            L.perf_buffer__new.argtypes = [ct.c_int, ct.c_size_t, cls._SAMPLE, cls._LOST, ct.c_void_p, ct.c_void_p]
            L.perf_buffer__poll.restype, L.perf_buffer__poll.argtypes = ct.c_int, [ct.c_void_p, ct.c_int]
            L.perf_buffer__free.restype, L.perf_buffer__free.argtypes = None, [ct.c_void_p]
            L.libbpf_get_error.restype, L.libbpf_get_error.argtypes = ct.c_long, [ct.c_void_p]
            cls._lib = L
        return cls._lib

    def poll(self, timeout_ms: int) -> None:
        if self._pb:
            self._lib.perf_buffer__poll(self._pb, timeout_ms)

    def free(self) -> None:
        if self._pb:
            self._lib.perf_buffer__free(self._pb)
            self._pb = None


# --- reading samples -------------------------------------------------------------------------

class _Hdr(ct.Structure):
    _fields_ = [("ts", ct.c_uint64), ("ifindex", ct.c_uint32), ("rxq", ct.c_uint32),
                ("len", ct.c_uint32), ("caplen", ct.c_uint32), ("action", ct.c_int32),
                ("point", ct.c_uint32)]


_HDR = ct.sizeof(_Hdr)


class Recorder(Closable):
    """Samples of one capture-instrumented program, read by a background thread.
    ``stop()`` (= ``close()``, also done by ``prog.close()``) ends reading; the samples
    and final stats stay readable, ``clear()`` then raises ``ClosedError``."""

    _reopen_hint = "the samples and stats() stay readable; prog.capture() starts a new capture"

    def __init__(self, prog, max_samples: int = 100000):
        if getattr(prog, "closed", False):
            prog._check_open("capture")
        # libbpf-loaded programs: the spliced capture wrapper's maps (perf array, stats)
        self._maps = getattr(prog, "capture_maps", None)
        if prog.bpf is None and self._maps is None or prog.bpf is not None and \
                "xdplab_cap" not in getattr(prog.bpf, "tables", {}) and not _has_table(prog.bpf, "xdplab_cap"):
            raise XDPLabError(f"{prog.name} was not built for capture",
                              hint="load it with capture=True (xdplab.load(src, capture=True) or %%xdp --capture)")
        self.prog = prog
        self.options = Capture.of(prog.spec.capture)
        self.samples: list[dict] = []
        self.max_samples = max_samples
        self.perf_lost = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._base = self._kernel_stats()
        self._boot = time.time() - time.monotonic()
        self._perf = None
        if self._maps is not None:
            self._perf = _PerfBuffer(self._maps[0], self.options.pages, self._on_sample, self._on_lost)
        else:
            prog.bpf["xdplab_cap"].open_perf_buffer(self._on_sample, page_cnt=self.options.pages,
                                                    lost_cb=self._on_lost)
        self._thread = threading.Thread(target=self._poll, name="xdplab-capture", daemon=True)
        self._thread.start()
        prog.__dict__.setdefault("_readers", []).append(self)     # close() stops us first

    def _poll(self):
        while not self._stop.is_set():
            try:
                if self._perf is not None:
                    self._perf.poll(100)
                else:
                    self.prog.bpf.perf_buffer_poll(100)
            except Exception:
                if self._stop.is_set():
                    return
                time.sleep(0.05)

    def _on_sample(self, cpu, data, size):
        h = ct.cast(data, ct.POINTER(_Hdr)).contents
        raw = ct.string_at(data + _HDR if isinstance(data, int) else ct.addressof(h) + _HDR, h.caplen)
        with self._lock:
            if len(self.samples) < self.max_samples:
                self.samples.append({"cpu": cpu, "ts": h.ts, "point": "entry" if h.point == ENTRY else "exit",
                                     "action": ACTIONS[h.action] if 0 <= h.action < 5 else
                                     (None if h.action < 0 else str(h.action)),
                                     "ifindex": h.ifindex, "rxq": h.rxq, "len": h.len,
                                     "caplen": h.caplen, "data": raw})

    def _on_lost(self, lost):
        self.perf_lost += lost

    def _kernel_stats(self) -> list[int]:
        if self._maps is not None:
            n = kernel.possible_cpus()
            out = []
            for i in range(4):
                raw = kernel.map_lookup(self._maps[1], i.to_bytes(4, "little"), 8 * n) or b""
                out.append(sum(int.from_bytes(raw[o:o + 8], "little") for o in range(0, len(raw), 8)))
            return out
        t = self.prog.bpf["xdplab_cap_stats"]
        return [sum(t[t.Key(i)]) for i in range(4)]

    # --- results ---------------------------------------------------------------------
    def flush(self, settle: float = 0.2) -> "Recorder":
        """Wait until every emitted sample has been read (or ``settle`` s without progress)."""
        end = time.monotonic() + 5
        while time.monotonic() < end:
            before = len(self.samples)
            time.sleep(settle)
            s = self.stats()
            if s["captured"] + s["lost"] >= s["samples"] and len(self.samples) == before:
                break
        return self

    def stats(self) -> dict:
        if self._stop.is_set() and getattr(self, "_final_stats", None):
            return dict(self._final_stats, captured=len(self.samples))
        return self._stats_now()

    def _stats_now(self) -> dict:
        """seen: packets the program ran on; matched: passed the filter; samples: what the
        program tried to emit; captured: read here; lost: refused by a full buffer (the
        helper failed; perf also reports these as PERF_RECORD_LOST: ``perf_lost``)."""
        now = self._kernel_stats()
        d = [a - b for a, b in zip(now, self._base)]
        return {"seen": d[SEEN], "matched": d[MATCHED], "samples": d[EMITTED] + d[LOST],
                "captured": len(self.samples), "lost": d[LOST]}

    closed = property(lambda self: self._stop.is_set())

    def _describe(self) -> str:
        return f"capture of {self.prog.name}"

    def stop(self) -> "Recorder":
        """Stop reading (the samples stay). Also done by ``prog.close()``."""
        if not self._stop.is_set():
            self._stop.set()
            self._thread.join(timeout=2)
            self._final_stats = self._stats_now()
            if self._perf is not None and not self._thread.is_alive():
                self._perf.free()
        return self

    close = stop

    @needs_open
    def clear(self) -> None:
        with self._lock:
            self.samples.clear()
        self._base = self._kernel_stats()
        self.perf_lost = 0

    def _time(self, ts_ns: int) -> float:
        # bpf_ktime_get_ns is CLOCK_MONOTONIC: shift to wall-clock time for pcap
        return self._boot + ts_ns / 1e9

    def packets(self, point: str = "both"):
        """scapy packets (``.time`` set, ``.comment`` = 'entry' / 'exit ACTION')."""
        from scapy.layers.l2 import Ether
        out = []
        with self._lock:
            samples = list(self.samples)
        for s in samples:
            if point != "both" and s["point"] != point:
                continue
            p = Ether(s["data"])
            p.time = self._time(s["ts"])
            p.wirelen = s["len"]
            p.comment = (s["point"] if s["point"] == "entry" else f"exit XDP_{s['action']}").encode()
            out.append(p)
        return out

    def pairs(self) -> list[dict]:
        """One row per packet: entry bytes, exit bytes, action (matched on CPU and entry time)."""
        rows, open_ = [], {}
        with self._lock:
            samples = list(self.samples)
        for s in samples:
            key = (s["cpu"], s["ts"])
            if s["point"] == "entry":
                open_[key] = {"time": self._time(s["ts"]), "cpu": s["cpu"], "ifindex": s["ifindex"],
                              "len_in": s["len"], "entry": s["data"], "action": None, "len_out": None, "exit": None}
                rows.append(open_[key])
            else:
                r = open_.pop(key, None)
                if r is None:
                    r = {"time": self._time(s["ts"]), "cpu": s["cpu"], "ifindex": s["ifindex"], "len_in": None,
                         "entry": None}
                    rows.append(r)
                r.update(action=s["action"], len_out=s["len"], exit=s["data"])
        return rows

    def table(self, limit: int = 50):
        """A DataFrame: time, action, lengths, the packet before and after (one line per
        layer: ``describe()``), and whether the program changed it. Shown in a notebook
        with every line whole (no "..." cut), so request and reply are told apart."""
        import pandas as pd
        rows = []
        for r in self.pairs()[-limit:]:
            rows.append({"time": pd.Timestamp(r["time"], unit="s").strftime("%H:%M:%S.%f")[:-3],
                         "action": r["action"], "len in": r["len_in"], "len out": r["len_out"],
                         "entry": describe(r["entry"]) if r["entry"] else "",
                         "exit": describe(r["exit"]) if r["exit"] else "",
                         "modified": (r["entry"] != r["exit"]) if r["entry"] is not None and r["exit"] is not None else None})
        return wide_table(rows, columns=["time", "action", "len in", "len out", "entry", "exit", "modified"])

    def write_pcap(self, path, point: str = "both") -> Path:
        """Write a pcap tcpdump reads (``point``: 'entry', 'exit' or 'both', interleaved)."""
        from scapy.utils import wrpcap
        path = Path(path)
        wrpcap(str(path), self.packets(point), linktype=1, snaplen=max(self.options.snaplen, 64))
        return path

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def __repr__(self) -> str:
        s = self.stats()
        return (f"<Capture {self.prog.name}: seen {s['seen']}, matched {s['matched']}, "
                f"captured {s['captured']}, lost {s['lost']}{' (stopped, closed)' if self.closed else ''}>")

    def _repr_html_(self) -> str:
        s = self.stats()
        head = ", ".join(f"{k} <b>{v}</b>" for k, v in s.items())
        return f"<b>capture of {self.prog.name}</b> ({head}){self.table()._repr_html_()}"


def describe(frame: bytes) -> str:
    """A frame, one line per layer (scapy's summary of each): ``Ether a > b (IPv4)``,
    ``IP 10.11.1.2 > 10.11.1.1 icmp ttl=64``, ``ICMP echo-request id=1 seq=3``..."""
    from scapy.packet import NoPayload, Raw
    from scapy.layers.l2 import Ether
    lines, layer = [], Ether(frame)
    while layer is not None and not isinstance(layer, NoPayload):
        name = type(layer).__name__
        if isinstance(layer, Raw):
            lines.append(f"Raw {len(layer.load)} bytes")
            break
        try:
            text = layer.mysummary()
        except Exception:
            text = ""
        text = text if isinstance(text, str) else text[0] % layer if text else ""
        text = text.removeprefix(name).strip()
        if name == "ICMP":
            text = f"{layer.sprintf('%ICMP.type%')} id={layer.id} seq={layer.seq}" \
                if layer.type in (0, 8) else layer.sprintf("%ICMP.type% code %ICMP.code%")
        elif name in ("IP", "IPv6"):
            text += f" ttl={layer.ttl}" if name == "IP" else f" hlim={layer.hlim}"
        lines.append(f"{name} {text}".strip())
        layer = layer.payload
    return "\n".join(lines)


_WIDE = None


def wide_table(*args, **kw):
    """A DataFrame whose notebook view shows every cell whole (no "..." cut), a line per
    line of text (``describe()``'s layers), left-aligned."""
    global _WIDE
    if _WIDE is None:
        import pandas as pd

        class WideTable(pd.DataFrame):
            @property
            def _constructor(self):
                return WideTable

            def _repr_html_(self) -> str:
                def cell(v):
                    if not isinstance(v, str):
                        return v
                    if "\n" in v:            # a packet, a line per layer: kept whole
                        return ("<div style='font-family:monospace;font-size:11px;white-space:nowrap'>"
                                + escape(v).replace("\n", "<br>") + "</div>")
                    return escape(v)           # long text (a reason) wraps, never cut
                df = pd.DataFrame(self).map(cell)
                with pd.option_context("display.max_colwidth", None):
                    html = df.to_html(index=False, escape=False, na_rep="")
                return ("<div style='overflow-x:auto'>" + html.replace(
                    "<td>", "<td style='text-align:left;vertical-align:top;font-size:12px'>") + "</div>")
        _WIDE = WideTable
    return _WIDE(*args, **kw)


def _has_table(bpf, name: str) -> bool:
    return _exists(bpf, name)


def start(prog) -> Recorder:
    return Recorder(prog)
