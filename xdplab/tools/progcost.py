"""What a BPF program costs per packet (BPF_PROG_RUN), and whether a new build of it is slower.

    from xdplab.tools import progcost
    progcost.measure_programs({"mine": prog, "hook": hook})      # ns/packet, interleaved rounds
    rec = progcost.measure_ab(OLD_C, NEW_C)                      # two builds, side by side
    progcost.judge_ab(rec)      # {'change': +0.094, 'threshold': 0.031, 'verdict': 'SLOWER', ...}

**Side by side.** On a shared machine a program's ns/packet moves by up to 60 % for minutes
at a time (measured here: the same program at 86 ns, then at 124 ns for minutes, while its
neighbours ran). Numbers stored from an earlier run cannot tell a 10 % change from that.
Two builds measured in the same rounds, run by run interleaved, see the same machine: over
20 reruns their ratio stayed within +-1.4 % while each one's cost moved by 40 %. So the
regression harness (``bench.compare``) judges a program by measuring the baseline's build
(its source is stored in the baseline) beside the current one.

**Copies.** Each load puts the JIT image at a random offset (bpf_prog_pack), and the same
code can cost 7 % more at one offset than at another. A build's cost is the mean over
``copies`` loads of it (a BCC program is compiled once and its instructions loaded again);
the spread between copies is the noise the verdict's threshold is derived from.

**The dispatcher.** BPF_PROG_RUN of an XDP program with repeat > 1 puts the program into
the kernel's XDP dispatcher and takes it out again: an RCU grace period each way, 16 ms per
call here, whatever the packet count. A program attached somewhere is in the dispatcher
already, so ``Held`` attaches each measured XDP program to a veth of its own in a namespace
of ours (no traffic flows there): the call then costs 0.06 ms, and thousands of short,
finely interleaved runs take a second.
"""
from __future__ import annotations

import math
import os
import random
import statistics

from .. import kernel, paths
from ..errors import Closable, XDPLabError
from ..programs import program

HOOK_C = "int xdp_empty(struct xdp_md *ctx) { return XDP_PASS; }"

MIN_N = 3                       # fewer repetitions (rounds, copies) are reported, never judged
AB_Z = 3.0                      # standard errors a side-by-side change must exceed
AB_FLOOR = 0.03                 # ... and never less than 3 %
AB_COPIES = 6


def summary(values) -> dict:
    v = [float(x) for x in values]
    if not v:
        return {"n": 0}
    med = statistics.median(v)
    mad = statistics.median(abs(x - med) for x in v)
    return {"n": len(v), "median": med, "min": min(v), "max": max(v), "mad": mad, "values": v}


def test_frame() -> bytes:
    """64 B on the wire (60 B + FCS): UDP 10.0.0.2:4242 -> 10.0.0.1:9."""
    from scapy.all import IP, UDP, Ether
    return bytes(Ether(src="02:58:4c:00:00:01", dst="02:58:4c:00:00:02") / IP(src="10.0.0.2", dst="10.0.0.1")
                 / UDP(sport=4242, dport=9) / (b"x" * 18))


def _bar(progress, total, desc):
    if not progress:
        return None
    from tqdm.auto import tqdm
    return tqdm(total=total, desc=desc, unit="run", leave=True)


# --- holding programs in the XDP dispatcher ------------------------------------------------

class Held(Closable):
    """XDP programs kept in the kernel's XDP dispatcher while they are measured: each is
    attached (native, a bpf_link) to a veth of its own in the namespace
    ``<prefix>h<pid>`` (``xdplab down --all`` removes it after a crash). The dispatcher has
    48 slots; a program beyond those runs the slow way."""

    def __init__(self, netns: str | None = None):
        self.name = netns or f"{paths.DEFAULT_PREFIX}h{os.getpid() % 100000}"
        self._links: list[int] = []
        self._n = 0
        kernel.netns_create(self.name)

    def hold(self, prog) -> bool:
        """Attach ``prog`` (a loaded program or an fd) to a fresh veth; False when it is not an
        XDP program or the kernel refuses (it is then measured the slow way)."""
        self._check_open("hold a program")
        fd = prog if isinstance(prog, int) else prog.fd
        if kernel.prog_info(fd)["type"] != kernel.BPF_PROG_TYPE_XDP:
            return False
        i = self._n
        self._n += 1

        def attach():
            idx = kernel.netlink.veth_add(f"h{i}", f"k{i}", self.name)
            return kernel.link_create_xdp(fd, idx, "native")
        try:
            self._links.append(kernel.run_in_netns(self.name, attach))
        except OSError:
            return False
        return True

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for fd in self._links:
            os.close(fd)
        self._links.clear()
        if os.path.exists(f"/run/netns/{self.name}"):
            kernel.netns_remove(self.name)

    def __repr__(self):
        return f"<Held: {len(self._links)} programs in {self.name}{' (closed)' if self._closed else ''}>"


class _Copy(Closable):
    """Another load of a program's instructions: a fd and close()."""

    def __init__(self, fd: int, name: str):
        self._fd, self.name = fd, name

    @property
    def fd(self) -> int:
        self._check_open("use its fd")
        return self._fd

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            os.close(self._fd)


def copies(make, k: int, *, first=None) -> list:
    """``k`` loads of one program: ``first`` (a loaded program) or ``make()``, then, for a
    BCC-compiled XDP program, its instructions loaded k-1 times more (no compiler; the copies
    share its maps: ``_Copy``), else ``make()`` k-1 times more. Each load is placed by the JIT
    at an offset of its own."""
    borrowed = first is not None
    first = first if borrowed else make()
    out = [first]
    try:
        insns = first.instructions() if getattr(first, "bpf", None) is not None and \
            kernel.prog_info(first.fd)["type"] == kernel.BPF_PROG_TYPE_XDP else None
        for _ in range(k - 1):
            out.append(_Copy(kernel.prog_load_xdp(insns, first.name[:15]), first.name) if insns else make())
    except BaseException:
        for p in out[1:] if borrowed else out:
            p.close()
        raise
    return out


# --- measuring ----------------------------------------------------------------------------

def prog_ns(prog_or_fd, frame: bytes, repeat: int) -> float:
    return prog_ns_stats(prog_or_fd, frame, repeat)[0]


def prog_ns_stats(prog_or_fd, frame: bytes, repeat: int) -> tuple[float, bool]:
    """(ns per run, were BPF run-time stats on?) of one BPF_PROG_RUN. The program's own
    run counter moves only while stats are on (BPF_ENABLE_STATS held by ANY process, or the
    sysctl): then every run pays two clock reads (~100 ns in this VM), switched on and off
    by other processes at any time."""
    fd = prog_or_fd if isinstance(prog_or_fd, int) else prog_or_fd.fd
    before = kernel.prog_stats(fd)["run_cnt"]
    _, _, ns = kernel.prog_test_run(fd, frame, repeat=repeat)
    return float(ns), kernel.prog_stats(fd)["run_cnt"] != before


def measure_programs(progs: dict, *, rounds: int = 7, repeat: int = 200_000, frame: bytes | None = None,
                     progress: bool = True, inner: int = 10, hold: bool = True) -> dict:
    """{name: summary of ns/packet} for loaded programs ``{name: prog}``: a warm-up run,
    then ``rounds`` rounds; a round's figure is the least of ``inner`` runs of ``repeat / inner``
    packets, the programs' runs interleaved one by one (interrupts and a busy host only ever
    add time; a busy spell hits all programs alike), taken from the runs with BPF run-time
    stats off when there are any (``stats_on`` says, per round). The kernel's timer
    (bpf_test_timer) leaves out the time the task is scheduled away. ``hold``: XDP programs
    are held in the dispatcher meanwhile (``Held``: 0.06 ms per run instead of 16 ms)."""
    frame = frame or test_frame()
    vals = {k: [] for k in progs}
    states = {k: [] for k in progs}
    held = Held() if hold else None
    old = os.sched_getaffinity(0)
    try:
        for p in progs.values() if held else ():
            held.hold(p)
        os.sched_setaffinity(0, {max(old)})        # this thread, on one CPU: caches and the CPU stay the same
        for k, p in progs.items():
            prog_ns(p, frame, max(1000, repeat // 10))
        bar = _bar(progress, rounds * len(progs), "BPF_PROG_RUN")
        for _ in range(rounds):
            runs = {k: [] for k in progs}
            for _ in range(inner):             # interleaved run by run: a busy spell hits all alike
                for k, p in progs.items():
                    runs[k].append(prog_ns_stats(p, frame, max(1, repeat // inner)))
            for k in progs:
                off = [ns for ns, on in runs[k] if not on]
                vals[k].append(min(off) if off else min(ns for ns, _ in runs[k]))
                states[k].append(not off)
                if bar is not None:
                    bar.update()
        if bar is not None:
            bar.close()
    finally:
        os.sched_setaffinity(0, old)
        if held is not None:
            held.close()
    return {k: {**summary(v), "unit": "ns", "stats_on": states[k]} for k, v in vals.items()}


def _maker(what, hook: str):
    """(make, first): how to load one more of ``what``, and the loaded program given, if any."""
    if isinstance(what, str):
        return (lambda: program.Program(what, hook=hook, count=False, stats=False).load()), None
    if hasattr(what, "fd") and hasattr(what, "close"):        # a loaded program: borrowed, never closed here
        spec = getattr(what, "spec", None)
        return (spec.load if spec is not None else (lambda: what)), what
    if callable(what):
        return what, None
    raise XDPLabError(f"measure_ab takes C source, a loaded program or a function that loads one, "
                      f"not {type(what).__name__}")


def measure_ab(base, current, *, copies_each: int = AB_COPIES, rounds: int = 20, inner: int = 5,
               repeat: int = 20_000, frame: bytes | None = None, hook: str = "xdp", setup=None,
               progress: bool = False) -> dict:
    """Two builds of a program measured side by side: ``copies_each`` loads of each (C source,
    or a function returning a loaded program) and the empty hook, all interleaved run by run
    (``measure_programs``), in random order. A loaded program given is used as one load of
    its build and left open. ``setup(prog)`` runs on every load with maps of its own (fill
    them; instruction copies share their first load's). The record ``judge_ab`` decides
    on: ns per round per copy of each side, the hook's, and whether BPF stats were on."""
    frame = frame or test_frame()
    loaded, borrowed = {}, set()
    try:
        for side, what in (("base", base), ("current", current)):
            make, first = _maker(what, hook)
            if first is not None:
                borrowed.add(id(first))
            cs = copies(make, copies_each, first=first)
            for p in cs:
                if setup is not None and not isinstance(p, _Copy):
                    setup(p)
            loaded.update({f"{side}{i}": p for i, p in enumerate(cs)})
        loaded["hook"] = program.load(HOOK_C, count=False)
        order = list(loaded.items())
        random.Random(len(order)).shuffle(order)
        m = measure_programs(dict(order), rounds=rounds, repeat=repeat, frame=frame, inner=inner, progress=progress)
    finally:
        for p in loaded.values():
            if id(p) not in borrowed:
                p.close()
    side = lambda s: [m[k]["values"] for k in loaded if k.startswith(s) and k[len(s):].isdigit()]
    stats_on = [any(m[k]["stats_on"][r] for k in loaded) for r in range(rounds)]
    return {"base": side("base"), "current": side("current"), "hook": m["hook"]["values"],
            "stats_on": stats_on, "rounds": rounds, "repeat": repeat, "inner": inner}


def _copy_levels(costs: list[list[float]], scale: list[float]) -> list[float]:
    return [statistics.median(c / g for c, g in zip(copy, scale)) for copy in costs]


def judge_ab(rec: dict, *, z: float = AB_Z, floor: float = AB_FLOOR) -> dict:
    """The verdict on a ``measure_ab`` record: 'SLOWER', 'faster', 'same' or 'too few runs'.

    Each round's costs are divided by that round's mean over every copy of both builds (what
    the machine did in that round cancels); a copy's level is the median of those over the
    rounds; a build's level the mean over its copies. ``change`` = current / base - 1. Its
    standard error comes from the spread between copies (pooled over both builds: the
    placement of each load and the rounds' noise are both in it), and the threshold is
    ``max(floor, z * SE)``. Rounds with BPF run-time stats on are left out when at least
    MIN_N are off; if stats were on throughout, the hook's cost is subtracted first (the
    added clock reads cancel) and ``change`` is of the program's own cost."""
    base, cur, hook = rec["base"], rec["current"], rec["hook"]
    on = rec.get("stats_on") or [False] * len(hook)
    keep = [r for r in range(len(hook)) if not on[r]]
    net = len(keep) < MIN_N
    if net:
        keep = list(range(len(hook)))
    pick = lambda copy: [copy[r] - (hook[r] if net else 0.0) for r in keep]
    b, c = [pick(x) for x in base], [pick(x) for x in cur]
    out = {"rounds": len(keep), "copies": (len(b), len(c)), "net_of_hook": net}
    if len(keep) < MIN_N or len(b) < 2 or len(c) < 2 or len(b) + len(c) < 2 * MIN_N:
        return {**out, "change": 0.0, "threshold": None, "verdict": "too few runs"}
    scale = [statistics.fmean(x[i] for x in b + c) for i in range(len(keep))]
    if min(scale) <= 0:
        return {**out, "change": 0.0, "threshold": None, "verdict": "too few runs"}
    lb, lc = _copy_levels(b, scale), _copy_levels(c, scale)
    mb, mc = statistics.fmean(lb), statistics.fmean(lc)
    change = mc / mb - 1
    ss = sum((x - mb) ** 2 for x in lb) + sum((x - mc) ** 2 for x in lc)
    se = math.sqrt(ss / (len(lb) + len(lc) - 2) * (1 / len(lb) + 1 / len(lc))) / mb
    thr = max(floor, z * se)
    verdict = "SLOWER" if change > thr else "faster" if change < -thr else "same"
    base_ns = statistics.fmean(statistics.median(x) for x in b)
    return {**out, "change": change, "threshold": thr, "se": se, "verdict": verdict,
            "base_ns": base_ns, "current_ns": base_ns * (1 + change), "levels": (lb, lc)}
