"""xdplab bench: a performance lab and a regression harness for XDP (issue 15).

    from xdplab import bench
    res = bench.run(short=True)          # paths (live frames), per-program cost, CPU cost
    res.table()                          # medians with min-max, per path
    res.chart()                          # bokeh: ours beside the paper's (another machine, another NIC)
    res.save("baseline.json")            # numbers, and each program's source
    base = bench.load("baseline.json")
    now = bench.run(short=True, baseline=base)          # programs also measured beside the baseline's builds
    bench.compare(base, now)             # flags what slowed beyond the noise

From the shell: ``xdplab bench [--short] [--json OUT] [--html OUT] [--compare BASELINE]``.

**The link.** Two network namespaces of our own (``<prefix>b<pid>-g``, ``-r``; prefix ``xl-``) joined by
a veth pair ``g0``-``r0`` with one queue per CPU, plus ``r1``-``s1`` for redirects; all
of it removed at the end. Frames (64 B on the wire: 60 B + FCS, UDP to port 9, source
port varied so every frame is its own flow) come from xdplab's live-frames generator
(BPF_PROG_RUN + BPF_F_TEST_XDP_LIVE_FRAMES) running on ``g0``: its XDP_TX hands them to
veth's ``ndo_xdp_xmit``, which queues them on ``r0``'s ring for the CPU that sent them and
schedules ``r0``'s NAPI **on that same CPU**. So each receive CPU also runs its own
generator: the rates below are what one CPU does when it both makes and takes the frames
(the generator's own share is measured apart: ``gen only`` = frames into an XDP_DROP peer
that drops at once is the cheapest receiver; see ``paths``).

**Noise.** One warm-up round, then ``rounds`` rounds in which every case runs once
(interleaved: drift hits all cases alike); each case reports its median with min-max and
the MAD. The load average is recorded before and after; the CPUs used are stated.

**Regression.** ``compare(baseline, current)`` judges two kinds of figure differently.
A program whose source the baseline stored is measured side by side with that build in the
current run (``run(baseline=...)``: several loads of each, run by run interleaved; see
``progcost``) and flagged when the current build costs more than ``max(3 %, 3 SE)`` beyond
it, SE from the spread between loads: the machine's mood cancels, since both builds live
through it together. A path (live traffic), or a program without a stored source, is judged
against the stored numbers (``judge``): lower quartile of the repetitions' cost,
``max(floor, z * SE)`` with a bootstrap SE; those thresholds are wide on a shared machine.
Fewer than 3 repetitions on either side: reported, never flagged.
"""
from __future__ import annotations

import functools
import json
import math
import os
import random
import re
import statistics
import struct
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from .. import paths
from ..errors import UsageError, XDPLabError
from ..programs import program
from ..net import traffic
from .. import kernel
from ..errors import AttachError
from ..net.traffic import Generator
from .drops import DropDetector
from . import progcost
from .progcost import (HOOK_C, MIN_N, _bar, judge_ab, measure_ab, measure_programs, prog_ns,  # noqa: F401
                       prog_ns_stats, summary, test_frame)
from ..net import redirect
from ..programs.live import LivePlot

BPF = paths.LAB_BPF or paths.PACKAGE_BPF     # the checkout's bpf/ (solutions, programs labs provide)

#: CoNEXT 2018 (Høiland-Jørgensen et al., "The eXpress Data Path"), one core, mlx5
#: (ConnectX-5, 100 Gbit/s), 64 B frames, Xeon E5-1650 v4. Another machine, another NIC.
PAPER = {
    "xdp_drop": ("XDP drop", 24.0),
    "dpdk_drop": ("DPDK drop", 43.5),
    "ipt_raw_drop": ("Linux raw drop", 4.8),
    "conntrack_drop": ("Linux conntrack drop", 1.8),
    "xdp_tx": ("XDP_TX", 16.5),           # 16-17 Mpps
    "router_xdp": ("XDP router", 5.36),
    "router_linux": ("Linux router", 1.74),
}
PAPER_HOOK_NS = 13.3            # an XDP_PASS program that only counts (4.8 -> 4.5 Mpps)

#: the issue's targets: (what, numerator path, denominator path, ratio at least)
TARGETS = [
    ("XDP_DROP / iptables raw DROP (XDP_PASS on veth)", "xdp_drop", "ipt_raw_drop", 5.0),
    ("XDP_DROP / iptables raw DROP (GRO on veth)", "xdp_drop", "ipt_raw_drop_gro", 5.0),
    ("XDP_DROP / tc drop", "xdp_drop", "tc_drop", 2.0),
    ("dashboard on / off, XDP_DROP", "xdp_drop_dashboard", "xdp_drop", 0.95),
    ("drop detector on / off, XDP_DROP", "xdp_drop_detector", "xdp_drop", 0.95),
]

FRAME_LEN = 60                  # + 4 B FCS = 64 B on the wire

# --- statistics and the regression rule (pure: tested on recorded numbers) ------------------

Z = 3.0                         # SEs a slowdown must exceed
FLOOR = 0.03                    # ... and never less than 3 %: run-to-run drift (frequency, caches)


def se_median(values) -> float:
    """Standard error of the median of ``values`` (robust: from the MAD), in their unit."""
    s = summary(values)
    if s["n"] < 2:
        return float("inf")
    return 1.2533 * 1.4826 * s["mad"] / math.sqrt(s["n"])


def rel_se(costs) -> float:
    """Relative standard error of the median of ``costs``."""
    s = summary(costs)
    if s["n"] < 2 or s["median"] <= 0:
        return float("inf")
    return se_median(costs) / s["median"]


#: a program's own cost (net of the hook) below this many ns is judged against this many:
#: a program as cheap as the empty hook has no meaningful relative change
NET_MIN_NS = 5.0


def _stats_states(entry: dict) -> list[bool]:
    st = entry.get("stats_on") or []
    return list(st) if len(st) == len(entry.get("values", [])) else [False] * len(entry.get("values", []))


def costs(entry: dict) -> list[float]:
    """ns per packet per repetition, only those measured with BPF run-time stats off when
    at least MIN_N were (stats add two clock reads to every program run)."""
    pairs = [(x, on) for x, on in zip(entry["values"], _stats_states(entry)) if entry.get("unit") != "pps" or x > 0]
    c = [1e9 / x if entry.get("unit") == "pps" else x for x, _ in pairs]
    off = [x for x, (_, on) in zip(c, pairs) if not on]
    return off if len(off) >= MIN_N else c


def net(entry: dict, ref: dict | None) -> list[float]:
    """Costs of ``entry`` per round minus the reference's (the empty hook's) cost in the same
    round: the program's own ns/packet. What the machine adds to every program run cancels:
    the test-run loop's own cost, and BPF run-time stats when both were measured with them
    on (two clock reads per run, ~100 ns in this VM; a ratio would not cancel an added
    constant). Rounds where only one of the two had stats on are left out, and rounds with
    stats off on both are used alone when there are at least MIN_N of them."""
    if not ref or len(ref.get("values", [])) != len(entry.get("values", [])):
        return costs(entry)
    rows = [(x - r, a) for x, r, a, b in zip(entry["values"], ref["values"], _stats_states(entry), _stats_states(ref))
            if a == b]
    off = [d for d, on in rows if not on]
    if len(off) >= MIN_N:
        return off
    return [d for d, _ in rows] if len(rows) >= MIN_N else [x - r for x, r in zip(entry["values"], ref["values"])]


normalized = net


#: the statistic judged: the lower quartile of the repetitions. On a shared machine noise
#: only adds (busy spells lasting seconds lift whole runs of rounds), so the lower quartile
#: follows the program's cost and the median follows the neighbours (recorded: 2 of 20 reruns
#: flagged on the median, 0 of 20 on the lower quartile, same threshold rule)
LOW_Q = 0.25


def quantile(values, q: float = LOW_Q) -> float:
    v = sorted(values)
    k = q * (len(v) - 1)
    i = int(k)
    return v[i] + (v[min(i + 1, len(v) - 1)] - v[i]) * (k - i)


def bootstrap_se(values, q: float = LOW_Q, n: int = 300) -> float:
    """Standard error of ``quantile(values, q)``: the spread of that quantile over ``n``
    resamples (a fixed seed: the same numbers always give the same verdict)."""
    rng = random.Random(15)
    v = list(values)
    qs = [quantile([rng.choice(v) for _ in v], q) for _ in range(n)]
    return statistics.pstdev(qs)


def judge(base: dict, cur: dict, *, z: float = Z, floor: float = FLOOR, base_ref: dict | None = None,
          cur_ref: dict | None = None) -> dict:
    """One case: {'change': +0.12, 'threshold': 0.05, 'verdict': 'SLOWER'|'faster'|'same'|'too few runs'}.
    ``change`` is the relative change of the cost's lower quartile over the repetitions
    (``LOW_Q``; ns/packet, rates become 1e9/rate); with references (the hook measured in the
    same rounds) of the program's own cost, net of the hook. Positive = slower. The
    threshold is ``max(floor, z * SE)``, SE combining both quartiles' standard errors
    (bootstrap over the repetitions): it follows the noise this run measured."""
    if base_ref and cur_ref:
        b, c = net(base, base_ref), net(cur, cur_ref)
    else:
        b, c = costs(base), costs(cur)
    mb, mc = (quantile(b) if b else 0.0), (quantile(c) if c else 0.0)
    denom = max(mb, NET_MIN_NS) if base_ref and cur_ref else mb
    change = (mc - mb) / denom if denom > 0 else 0.0
    if len(b) < MIN_N or len(c) < MIN_N:
        return {"change": change, "threshold": None, "verdict": "too few runs"}
    thr = max(floor, z * math.hypot(bootstrap_se(b), bootstrap_se(c)) / denom) if denom > 0 else float("inf")
    verdict = "SLOWER" if change > thr else "faster" if change < -thr else "same"
    return {"change": change, "threshold": thr, "verdict": verdict}


def compare(baseline, current, *, z: float = Z, floor: float = FLOOR) -> "Comparison":
    """Judge every case present in both (``Results`` or their dicts). A program measured side
    by side with the baseline's build in the current run (``run(baseline=...)``: entry
    ``"ab"``) is judged on that (``progcost.judge_ab``); paths, and programs of baselines
    without sources, against the stored numbers (``judge``: on this shared machine their
    thresholds are wide, because what the neighbours do moves them by tens of %)."""
    b = baseline.data if isinstance(baseline, Results) else baseline
    c = current.data if isinstance(current, Results) else current
    rows = []
    for section in ("paths", "programs"):
        bref, cref = (b.get(section, {}).get(REF), c.get(section, {}).get(REF)) if section == "programs" else (None, None)
        for key, cur in c.get(section, {}).items():
            base = b.get(section, {}).get(key)
            if not base or "values" not in base or "values" not in cur:
                continue
            if cur.get("ab"):               # both builds measured side by side in this run
                j = judge_ab(cur["ab"])
                rows.append({"section": section, "case": key, "unit": "ns", "how": "side by side",
                             "base": j.get("base_ns", statistics.median(base["values"])),
                             "current": j.get("current_ns", statistics.median(cur["values"])),
                             "stored": statistics.median(base["values"]),
                             **{k: j[k] for k in ("change", "threshold", "verdict")}})
                continue
            refs = {} if key == REF else {"base_ref": bref, "cur_ref": cref}
            how = "stored numbers" + (f" (the baseline's build failed: {cur['ab_skipped'][:70]})"
                                      if cur.get("ab_skipped") else "")
            rows.append({"section": section, "case": key, "unit": cur.get("unit"), "how": how,
                         "base": statistics.median(base["values"]),
                         "current": statistics.median(cur["values"]), **judge(base, cur, z=z, floor=floor, **refs)})
    return Comparison(rows)


@dataclass
class Comparison:
    rows: list

    @property
    def flagged(self) -> list[str]:
        return [f"{r['section']}/{r['case']}" for r in self.rows if r["verdict"] == "SLOWER"]

    def table(self) -> str:
        w = max([34] + [len(r["section"][:4] + "/" + r["case"]) for r in self.rows])
        out = [f"{'case':{w}} {'base':>10} {'now':>10} {'change':>8} {'threshold':>9}  {'verdict':12} judged on"]
        for r in self.rows:
            u = "Mpps" if r["unit"] == "pps" else "ns"
            f = (lambda x: f"{x / 1e6:7.2f}{u}") if u == "Mpps" else (lambda x: f"{x:8.1f}{u}")
            thr = f"{r['threshold']:8.1%}" if r["threshold"] is not None else "       -"
            out.append(f"{r['section'][:4] + '/' + r['case']:{w}} {f(r['base']):>10} {f(r['current']):>10} "
                       f"{r['change']:+7.1%} {thr:>9}  {r['verdict']:12} {r.get('how', 'stored numbers')}")
        out.append(f"flagged: {', '.join(self.flagged) or 'nothing'}")
        if any(r.get("how") == "side by side" for r in self.rows):
            out.append("side by side: the baseline's build of the program (its source is in the baseline) "
                       "measured beside the current one in this run, several loads of each; 'base' is that "
                       "build's cost now (the stored figure may differ by what the machine is doing)")
        return "\n".join(out)

    __str__ = table

    def __repr__(self):
        return f"<Comparison {len(self.rows)} cases, flagged: {self.flagged or 'nothing'}>"


# --- results ---------------------------------------------------------------------------

@dataclass
class Results:
    data: dict = field(default_factory=dict)

    def save(self, path) -> Path:
        p = Path(path)
        p.write_text(json.dumps(self.data, indent=1, sort_keys=True))
        return p

    def ratio(self, a: str, b: str) -> float | None:
        """median(a) / median(b) of two paths (rates), measured in this run."""
        pa, pb = self.data.get("paths", {}).get(a), self.data.get("paths", {}).get(b)
        if not pa or not pb or not pa.get("n") or not pb.get("n") or not pb["median"]:
            return None
        return pa["median"] / pb["median"]

    def paired(self, a: str, b: str) -> float | None:
        """Median over rounds of a/b measured in the same round (drift cancels)."""
        pa, pb = self.data.get("paths", {}).get(a), self.data.get("paths", {}).get(b)
        if not pa or not pb or not pa.get("n") or pa.get("n") != pb.get("n"):
            return None
        r = [x / y for x, y in zip(pa["values"], pb["values"]) if y]
        return statistics.median(r) if r else None

    def targets(self) -> list[dict]:
        """The issue's targets in each placement measured: ratio of medians and the median of
        per-round ratios, and whether the target is met (by the per-round ratios, measured
        seconds apart in the same round, so the machine's drift cancels; by the ratio of
        medians when there are none)."""
        out = []
        for label, a, b, target in TARGETS:
            for suffix, pl in (("@rx", "split"), ("@1cpu", "shared")):
                r = self.ratio(a + suffix, b + suffix)
                if r is None:
                    continue
                paired = self.paired(a + suffix, b + suffix)
                out.append({"target": label, "placement": pl, "ratio": r, "paired": paired,
                            "goal": target, "met": (paired if paired is not None else r) >= target})
        return out

    def table(self) -> str:
        m = self.data.get("meta", {})
        out = [f"xdplab bench — kernel {m.get('kernel')}, {m.get('cpus')} CPUs, "
               f"load average {m.get('loadavg_before')} -> {m.get('loadavg_after')}, "
               f"{m.get('rounds')} interleaved rounds of {m.get('seconds')} s per path (+1 warm-up)"]
        if self.data.get("paths"):
            out.append(f"\n{'path':28} {'Mpps':>6} {'min-max':>11} {'rx busy':>7} {'wall':>6}  what the frame goes through")
            stats_rounds = 0
            for k, v in self.data["paths"].items():
                if not v.get("n"):
                    out.append(f"{k:28} {'-':>6} {'':11}  skipped: {v.get('skipped')}")
                    continue
                stats_rounds += sum(v.get("stats_on") or [])
                busy = f"{v['busy']:6.0%}" if v.get("busy") is not None else "     -"
                flag = " [BPF stats on]" if any(v.get("stats_on") or []) else ""
                out.append(f"{k:28} {v['median'] / 1e6:6.2f} {v['min'] / 1e6:5.2f}-{v['max'] / 1e6:<5.2f} {busy:>7} "
                           f"{v.get('wall_pps', 0) / 1e6:6.2f}  {v.get('path', '')}{flag}")
            out.append("placements: @rx = " + PLACEMENTS["split"] + ";\n            @Ncpu = " + PLACEMENTS["shared"]
                       + ".\n'rx busy': the receive thread's share of its CPU (< ~90 %: the generator did not keep "
                         "it busy, wake-ups are in its cost); 'wall': frames/s by the clock on the wall")
            if stats_rounds:
                out.append(f"WARNING: BPF run-time stats were ON in {stats_rounds} measurements (another process "
                           "holds BPF_ENABLE_STATS, or sysctl kernel.bpf_stats_enabled=1): every BPF program "
                           "run then pays two clock reads; the XDP paths look slower than they are")
        if self.data.get("programs"):
            out.append(f"\n{'program (BPF_PROG_RUN, 64 B UDP frame)':56} {'ns/pkt':>7} {'min-max':>13} {'- hook':>7}")
            hook = self.data.get("hook_ns")
            for k, v in self.data["programs"].items():
                if not v.get("n"):
                    out.append(f"{k:56} skipped: {v.get('skipped')}")
                    continue
                net = f"{v['median'] - hook:7.1f}" if hook is not None else ""
                out.append(f"{k:56} {v['median']:7.1f} {v['min']:6.1f}-{v['max']:<6.1f} {net}")
            on = [k for k, v in self.data["programs"].items() if any(v.get("stats_on") or [])]
            if on:
                out.append(f"WARNING: BPF run-time stats were ON while {len(on)} programs were measured (another "
                           "process holds BPF_ENABLE_STATS): every run paid two clock reads; the '- hook' column "
                           "cancels them")
            out.append(f"hook cost (empty XDP_PASS program): {hook:.1f} ns/packet "
                       f"(paper: {PAPER_HOOK_NS} ns, another machine)" if hook is not None else "")
        if self.data.get("cpu_cost"):
            out.append("\nreceive CPU utilisation (its NAPI thread) at fixed offered rates (split placement)")
            for case, rows in self.data["cpu_cost"].items():
                out.append(f"  {case:16} " + "  ".join(f"{r['offered'] / 1e6:.2f} Mpps: {r['receive_cpu']:.0%}"
                                                          for r in rows))
        t = self.targets()
        if t:
            out.append(f"\n{'target (ratios in this run)':46} {'placement':9} {'ratio':>6} {'paired':>6}  goal")
            for x in t:
                pr = f"{x['paired']:6.2f}" if x["paired"] is not None else "     -"
                out.append(f"{x['target']:46} {x['placement']:9} {x['ratio']:6.2f} {pr}  >= {x['goal']}"
                           f"  {'met' if x['met'] else 'NOT met'}")
        if m.get("lacks"):
            out.append("this machine lacks: " + "; ".join(m["lacks"]))
        return "\n".join(out)

    __str__ = table

    def __repr__(self):
        return (f"<bench Results: {len(self.data.get('paths', {}))} paths, "
                f"{len(self.data.get('programs', {}))} programs>")

    def chart(self):
        """Bokeh bars: our medians (with min-max whiskers) beside the paper's figures."""
        from bokeh.models import ColumnDataSource, Whisker
        from bokeh.plotting import figure
        pts = self.data.get("paths", {})
        suffix = "@rx" if any(k.endswith("@rx") for k in pts) else "@1cpu"
        ours = [(k, v) for k, v in pts.items() if v.get("n") and k.endswith(suffix)]
        names = [k.replace(suffix, "") for k, _ in ours]
        cats = [f"{n} (this VM, veth)" for n in names]
        paper = [(f"{lab} (paper: mlx5, other machine)", mpps) for k, (lab, mpps) in PAPER.items()]
        p = figure(y_range=cats + [c for c, _ in paper], height=30 * (len(cats) + len(paper)) + 80,
                   width=760, x_axis_label="Mpps per receive CPU (64 B frames)",
                   title="xdplab bench: this VM on veth (blue) vs the XDP paper, CoNEXT 2018 (grey): "
                         "another machine, another NIC")
        src = ColumnDataSource({"y": cats, "x": [v["median"] / 1e6 for _, v in ours],
                                "lo": [v["min"] / 1e6 for _, v in ours], "hi": [v["max"] / 1e6 for _, v in ours]})
        p.hbar(y="y", right="x", height=0.7, source=src, color="#1f77b4")
        p.add_layout(Whisker(source=src, base="y", lower="lo", upper="hi", dimension="width"))
        p.hbar(y=[c for c, _ in paper], right=[m for _, m in paper], height=0.7, color="#aaaaaa")
        return p

    def save_chart(self, path) -> Path:
        from bokeh.embed import file_html
        from bokeh.resources import INLINE
        Path(path).write_text(file_html(self.chart(), INLINE, "xdplab bench"))
        return Path(path)


def load(path) -> Results:
    try:
        return Results(json.loads(Path(path).read_text()))
    except FileNotFoundError:
        raise UsageError(f"baseline {str(path)!r} does not exist",
                         hint="make one with `xdplab bench --json FILE`") from None
    except ValueError as e:
        raise UsageError(f"baseline {str(path)!r} is not JSON from `xdplab bench --json`: {e}") from None


# --- per-program cost (BPF_PROG_RUN repeat) ------------------------------------------------

REF = "hook: empty XDP_PASS"            # every program's cost is judged relative to it


def shipped_programs() -> dict:
    """name -> {"hook", "source", "load": source -> loaded program} for every program the
    labs and the library ship (the source is what a baseline stores, to be built again
    beside the current one by ``compare``)."""
    out = {}
    for path in sorted((BPF / "solutions").rglob("*.c")) + sorted((BPF / "metadata").glob("*.c")):
        rel = str(path.relative_to(BPF))
        text = path.read_text()
        hook = "tc" if "__sk_buff" in text else "xdp"
        out[rel] = {"hook": hook, "source": text,
                    "load": lambda src, p=path, h=hook: program.Program(src, hook=h, origin=str(p), stats=False).load()}
    out["library: traffic generator"] = {"hook": "xdp", "source": traffic.generator_source(
        test_frame(), {"sport": range(1024, 65536)}), "load": lambda src: program.load(src, count=False)}
    out["library: generator receiver (XDP_PASS)"] = {
        "hook": "xdp", "source": "int xdplab_rx_pass(struct xdp_md *ctx) { return XDP_PASS; }", "load": program.load}
    return out


SHORT_PROGRAMS = ("solutions/13-performance/port_filter.c", "library: generator receiver (XDP_PASS)")


def program_costs(*, rounds: int = 7, repeat: int = 200_000, only=None, progress: bool = True,
                  baseline: dict | None = None, copies_each: int = progcost.AB_COPIES) -> tuple[dict, float]:
    """Every shipped program's ns/packet (``only``: those names) and the hook's own cost
    (empty XDP_PASS). Each entry keeps the program's source (a baseline's, for ``compare``).
    ``baseline`` (a results dict): a program whose baseline entry has its source is also
    measured side by side with that build (``progcost.measure_ab``; entry ``"ab"``)."""
    loaded, skipped = {}, {}
    items = {f"{k} [{v['hook']}]": v for k, v in shipped_programs().items() if only is None or k in only}
    bar = _bar(progress, len(items) + 1, "loading programs")
    try:
        loaded[REF] = program.load(HOOK_C, count=False)
        if bar is not None:
            bar.update()
        for name, it in items.items():
            try:
                loaded[name] = it["load"](it["source"])
            except XDPLabError as e:
                skipped[name] = str(e).splitlines()[0][:120]
            if bar is not None:
                bar.update()
    finally:
        if bar is not None:
            bar.close()
    res = measure_programs(loaded, rounds=rounds, repeat=repeat, progress=progress)
    hook = res[REF]["median"]
    for p in loaded.values():
        p.close()
    for k, it in items.items():
        if k in res:
            res[k].update(source=it["source"], hook=it["hook"])
    res.update({k: {"n": 0, "skipped": v} for k, v in skipped.items()})
    base = (baseline or {}).get("programs", {})
    todo = [k for k in items if k in res and res[k].get("n") and base.get(k, {}).get("source")]
    bar = _bar(progress and bool(todo), len(todo), "side by side with the baseline")
    for k in todo:
        load, src = items[k]["load"], items[k]["source"]
        try:
            res[k]["ab"] = measure_ab(functools.partial(load, base[k]["source"]), functools.partial(load, src),
                                      copies_each=copies_each, hook=items[k]["hook"])
        except XDPLabError as e:
            res[k]["ab_skipped"] = str(e).splitlines()[0][:160]
        if bar is not None:
            bar.update()
    if bar is not None:
        bar.close()
    return res, hook


# --- the lab link ----------------------------------------------------------------------

def _sh(*cmd, netns=None, check=True) -> str:
    full = (["ip", "netns", "exec", netns] if netns else []) + [str(c) for c in cmd]
    r = subprocess.run(full, capture_output=True, text=True)
    if check and r.returncode:
        raise XDPLabError(f"`{' '.join(full)}` failed: {(r.stderr or r.stdout).strip()[:300]}")
    return r.stdout


class BenchLink:
    """``<prefix>b<pid>-g`` (g0, s1) <-veth-> ``<prefix>b<pid>-r`` (r0, r1); ``queues`` RX/TX queues each."""

    def __init__(self, queues: int | None = None, tag: str | None = None):
        self.queues = queues or os.cpu_count()
        tag = tag or f"{paths.DEFAULT_PREFIX}b{os.getpid() % 100000}"     # `xdplab down --all` removes it
        self.g, self.r = f"{tag}-g", f"{tag}-r"
        self.up_ = False

    def up(self) -> "BenchLink":
        try:
            for ns in (self.g, self.r):
                _sh("ip", "netns", "add", ns)
            q = ["numtxqueues", self.queues, "numrxqueues", self.queues]
            # ifindexes of our own: a veth's peer is found by ifindex across namespaces
            # (xdplab.traffic.find_peer), and two bench links must not look alike
            i = 100_000 + (os.getpid() % 100_000) * 4
            _sh("ip", "link", "add", "g0", "index", i, *q, "type", "veth", "peer", "name", "r0",
                "index", i + 1, "netns", self.r, *q, netns=self.g)
            _sh("ip", "link", "add", "s1", "index", i + 2, *q, "type", "veth", "peer", "name", "r1",
                "index", i + 3, "netns", self.r, *q, netns=self.g)
            for ns, dev, addr in ((self.g, "g0", "10.250.0.1/24"), (self.r, "r0", "10.250.0.2/24"),
                                  (self.g, "s1", "10.250.1.1/24"), (self.r, "r1", "10.250.1.2/24")):
                _sh("ip", "addr", "add", addr, "dev", dev, netns=ns)
                _sh("ip", "link", "set", dev, "up", netns=ns)
            _sh("ip", "link", "set", "lo", "up", netns=self.r)
            self.up_ = True
        except BaseException:
            self.down()
            raise
        return self

    def mac(self, ns, dev) -> str:
        return re.search(r"link/ether (\S+)", _sh("ip", "link", "show", dev, netns=ns)).group(1)

    def down(self) -> None:
        for ns in (self.g, self.r):
            if os.path.exists(f"/run/netns/{ns}"):
                _sh("ip", "netns", "del", ns, check=False)
        self.up_ = False

    def __enter__(self):
        return self.up()

    def __exit__(self, *exc):
        self.down()


def _counter_ipt(ns, table, chain) -> int:
    out = _sh("iptables", "-t", table, "-L", chain, "-v", "-x", "-n", netns=ns)
    rows = [l.split() for l in out.splitlines()[2:] if l.strip()]
    return sum(int(r[0]) for r in rows)


def _counter_nft(ns) -> int:
    out = _sh("nft", "list", "chain", "netdev", "xdplab_bench", "in", netns=ns)
    return sum(int(x) for x in re.findall(r"counter packets (\d+)", out))


# --- the paths -------------------------------------------------------------------------

DROP_C = "int xdp_drop(struct xdp_md *ctx) { return XDP_DROP; }"
PASS_C = "int xdp_pass(struct xdp_md *ctx) { return XDP_PASS; }"
TC_DROP_C = ("BPF_PERCPU_ARRAY(tc_seen, u64, 1);\n"
             "int tc_drop(struct __sk_buff *skb) { u32 k = 0; u64 *n = tc_seen.lookup(&k);\n"
             "    if (n) *n += 1; return TC_ACT_SHOT; }")
TX_C = ('#include "xdplab_redirect.h"\n'
        "int xdp_tx(struct xdp_md *ctx) {\n"
        "    struct ethhdr *eth = (void *)(long)ctx->data;\n"
        "    if ((void *)(eth + 1) > (void *)(long)ctx->data_end) return XDP_DROP;\n"
        "    xdplab_swap_macs(eth);\n    return XDP_TX;\n}\n")

PATHS = {
    "xdp_drop": "veth NAPI -> XDP (native) DROP, bare program (counted by veth's rx xdp_drops): no sk_buff",
    "xdp_drop_dashboard": "as xdp_drop, the program in xdplab's counting wrapper (per-CPU counters) with a "
                          "live chart (LivePlot) polling it at 4 Hz",
    "xdp_drop_detector": "as xdp_drop, xdplab's drop detector on (xdp tracepoints: on this path only the "
                         "generator's xdp_devmap_xmit fires, once per flush of up to 16 frames)",
    "xdp_drop_generic": "veth NAPI (GRO on, no native prog) -> sk_buff -> generic XDP DROP",
    "tc_drop": "veth NAPI (XDP_PASS prog) -> sk_buff -> tcx ingress TC_ACT_SHOT",
    "nft_drop": "veth NAPI (XDP_PASS prog) -> sk_buff -> nftables netdev ingress drop",
    "ipt_raw_drop": "veth NAPI (bare XDP_PASS prog, as in the issue's hand measurement) -> sk_buff -> GRO "
                    "-> iptables raw PREROUTING DROP",
    "ipt_raw_drop_gro": "veth NAPI (GRO on, no XDP prog) -> sk_buff -> GRO -> iptables raw PREROUTING DROP",
    "conntrack_drop": "veth NAPI (XDP_PASS prog) -> sk_buff -> conntrack (new entry per frame) "
                      "-> routing -> iptables filter INPUT ctstate NEW DROP",
    "xdp_tx": "veth NAPI -> XDP_TX (MACs swapped) -> back into g0 -> g0's XDP DROP",
    "devmap": "veth NAPI -> XDP redirect via devmap -> r1 -> s1's XDP DROP",
    "cpumap": "veth NAPI -> XDP redirect via cpumap to the other CPU (counted at the redirect; "
              "the other CPU builds the sk_buff, raw DROP)",
}

#: where the generator and the receiver run (``PLACEMENTS[p]``); a path's key is ``case@rx``
#: (split) or ``case@Ncpu`` (shared, N CPUs)
PLACEMENTS = {
    "split": "the paper's: the generator on the other CPU(s), the receiver (r0's NAPI, made threaded) "
             "pinned to the last CPU; rate = frames handled per second of the receiver thread's CPU time",
    "shared": "the issue's by-hand method: generator and receiver NAPI on the same CPU(s) (veth runs the "
              "NAPI on the sending CPU); rate = frames per second of the generator's CPU time (the kernel's "
              "timer, which includes the receive softirq run after each batch)",
}
SPLIT_BATCH = traffic.MAX_BATCH        # 256
TARGET_CASES = ["xdp_drop", "xdp_drop_dashboard", "xdp_drop_detector", "tc_drop", "ipt_raw_drop",
                "ipt_raw_drop_gro"]


def _veth_xdp_drops(ns, dev) -> int:
    st = kernel.run_in_netns(ns, kernel.ethtool_stats, dev)
    return sum(v for k, v in st.items() if k.startswith("rx_queue_") and k.endswith("_xdp_drops"))


def _napi_threads(dev: str) -> dict:
    """tid -> comm of the kernel's threaded-NAPI threads of devices named ``dev``."""
    out = {}
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            comm = (p / "comm").read_text().strip()
        except OSError:
            continue
        if comm.startswith(f"napi/{dev}-"):
            out[int(p.name)] = comm
    return out


def _runtime_ns(tids) -> int:
    """CPU time (ns) the threads ``tids`` have run (``/proc/<tid>/schedstat``)."""
    total = 0
    for t in tids:
        try:
            total += int(Path(f"/proc/{t}/schedstat").read_text().split()[0])
        except (OSError, ValueError):
            pass
    return total


RETRIES = []


class _Bench:
    """Holds the programs and the link; each case: setup() -> (counter fn), teardown."""

    def __init__(self, link: BenchLink):
        self.link = link
        self.load = program.load
        self.p = {}
        self.gen = None
        self.frame = None
        self._probe = None
        self._det = None

    def prog(self, name, src, **kw):
        if name not in self.p:
            self.p[name] = self.load(src, **kw)
        return self.p[name]

    def run_in(self, ns, fn, *a):
        return kernel.run_in_netns(ns, fn, *a)

    def attach_in(self, ns, prog, dev, mode="native"):
        for i in range(20):      # right after a detach under traffic veth may still refuse (EINVAL)
            try:
                return self.run_in(ns, lambda: prog.attach(dev, mode))
            except AttachError as e:
                RETRIES.append(str(e)[:100])
                if i == 19:
                    raise
                time.sleep(0.05 * (i + 1))

    def gro(self, on: bool):
        _sh("ethtool", "-K", "r0", "gro", "on" if on else "off", netns=self.link.r)

    def stats_on(self) -> bool:
        """Is BPF run-time accounting on (BPF_ENABLE_STATS, held by ANY process, or the
        sysctl)? Then every BPF program run pays two clock reads (in this VM ~100 ns)."""
        if self._probe is None:
            self._probe = self.load("int xdplab_stats_probe(struct xdp_md *ctx) { return XDP_PASS; }",
                                    count=False)
        before = kernel.prog_stats(self._probe.fd)["run_cnt"]
        kernel.prog_test_run(self._probe.fd, b"\0" * 64, repeat=1)
        return kernel.prog_stats(self._probe.fd)["run_cnt"] > before

    def receiver(self, placement: str, cpu: int) -> list[int]:
        """Make r0's NAPI threaded and pin its thread(s) to ``cpu`` (split), or make it run
        in softirq on the sending CPU (shared). Call after the case attached what it needs
        (the NAPI exists only while a native XDP program or GRO is on). Returns the tids."""
        path = "/sys/class/net/r0/threaded"
        _sh("sh", "-c", f"echo 0 > {path}", netns=self.link.r)
        if placement != "split":
            return []
        before = set(_napi_threads("r0"))
        _sh("sh", "-c", f"echo 1 > {path}", netns=self.link.r)
        tids = [t for t in _napi_threads("r0") if t not in before]
        if not tids:
            raise XDPLabError("r0's NAPI did not become threaded (/sys/class/net/r0/threaded)")
        for t in tids:
            os.sched_setaffinity(t, {cpu})
        return tids

    def detector(self):
        """The drop detector, compiled once; its probes attached only while a case uses it."""
        if self._det is None:
            self._det = DropDetector().start()
            self._det.attach_probes(False)
        return self._det

    def start(self):
        from scapy.all import IP, UDP, Ether
        L = self.link
        self.gmac, self.rmac = L.mac(L.g, "g0"), L.mac(L.r, "r0")
        self.s1mac, self.r1mac = L.mac(L.g, "s1"), L.mac(L.r, "r1")
        self.frame = bytes(Ether(src=self.gmac, dst=self.rmac) / IP(src="10.250.0.1", dst="10.250.0.2")
                           / UDP(sport=1024, dport=9) / (b"x" * 18))
        rx = self.prog("pass", PASS_C)
        link = self.attach_in(L.r, rx, "r0")
        try:
            self.gen = Generator(self.frame, "g0", netns=L.g, vary={"sport": range(1024, 65536)})
        finally:
            link.detach()

    # each returns (counter(): int, cleanup())
    def case(self, name: str, cpus: list[int]):
        L, r = self.link, self.link.r
        links, undo = [], []

        def att(ns, prog, dev, mode="native"):
            links.append(self.attach_in(ns, prog, dev, mode))

        def ipt(table, chain, *rule):
            _sh("iptables", "-t", table, "-A", chain, *rule, netns=r)
            undo.append(lambda: _sh("iptables", "-t", table, "-F", chain, netns=r, check=False))

        def cleanup():
            for l in links:
                l.detach()
            for u in reversed(undo):
                u()

        try:
            if name in ("xdp_drop", "xdp_drop_detector", "xdp_drop_dashboard"):
                if name == "xdp_drop_dashboard":         # the counting wrapper + a live chart
                    d = self.prog("drop", DROP_C)
                    att(r, d, "r0")
                    counter = lambda: d.counters()["DROP"]
                    chart = LivePlot(d, hz=4)
                    chart.sampler.start()
                    undo.append(chart.stop)
                else:                                    # bare: veth counts its XDP drops
                    d = self.prog("bare_drop", DROP_C, count=False)
                    att(r, d, "r0")
                    counter = lambda: _veth_xdp_drops(r, "r0")
                if name == "xdp_drop_detector":
                    self.detector()
                    self._det.attach_probes(True)
                    undo.append(lambda: self._det.attach_probes(False))
            elif name == "xdp_drop_generic":
                d = self.prog("drop", DROP_C)
                self.gro(True)
                undo.append(lambda: self.gro(False))
                att(r, d, "r0", "generic")
                counter = lambda: d.counters()["DROP"]
            elif name in ("tc_drop", "nft_drop", "ipt_raw_drop", "conntrack_drop"):
                att(r, self.prog("bare_pass", PASS_C, count=False), "r0")
                if name == "tc_drop":
                    t = self.prog("tcdrop", TC_DROP_C, hook="tc")
                    att(r, t, "r0", "ingress")
                    counter = lambda: int(sum(t["tc_seen"].to_numpy().ravel()))
                elif name == "nft_drop":
                    _sh("nft", "add", "table", "netdev", "xdplab_bench", netns=r)
                    _sh("nft", "add chain netdev xdplab_bench in { type filter hook ingress device r0 "
                        "priority 0 ; }", netns=r)
                    _sh("nft", "add", "rule", "netdev", "xdplab_bench", "in", "counter", "drop", netns=r)
                    undo.append(lambda: _sh("nft", "delete", "table", "netdev", "xdplab_bench", netns=r,
                                            check=False))
                    counter = lambda: _counter_nft(r)
                elif name == "ipt_raw_drop":
                    ipt("raw", "PREROUTING", "-i", "r0", "-j", "DROP")
                    counter = lambda: _counter_ipt(r, "raw", "PREROUTING")
                else:
                    ipt("filter", "INPUT", "-i", "r0", "-m", "conntrack", "--ctstate", "NEW", "-j", "DROP")
                    counter = lambda: _counter_ipt(r, "filter", "INPUT")
            elif name == "ipt_raw_drop_gro":
                self.gro(True)
                undo.append(lambda: self.gro(False))
                ipt("raw", "PREROUTING", "-i", "r0", "-j", "DROP")
                counter = lambda: _counter_ipt(r, "raw", "PREROUTING")
            elif name == "xdp_tx":
                g = self.prog("gdrop", DROP_C)
                att(L.g, g, "g0")
                att(r, self.prog("tx", TX_C), "r0")
                counter = lambda: g.counters()["DROP"]
            elif name == "devmap":
                dv = self.prog("devmap", (BPF / "solutions/06-redirect/devmap_fwd.c").read_text())
                dv["macs"][0] = redirect.mac_u64(self.s1mac)
                dv["macs"][1] = redirect.mac_u64(self.r1mac)
                # the kernel resolves a devmap's ifindex in the netns of the process updating it
                self.run_in(r, lambda: redirect.devmap_set(dv["tx_port"], 0, "r1", check=False))
                s = self.prog("sdrop", DROP_C)
                att(L.g, s, "s1")
                att(r, dv, "r0")
                counter = lambda: s.counters()["DROP"]
            elif name == "cpumap":
                other = [c for c in sorted(os.sched_getaffinity(0)) if c not in cpus]
                if not other:
                    raise _Skip("needs a CPU the generators do not use")
                cm = self.prog("cpumap", (BPF / "solutions/06-redirect/cpumap.c").read_text())
                cm["target_cpu"][0] = other[0]
                redirect.cpumap_set(cm["cpu_map"], other[0], qsize=2048)
                ipt("raw", "PREROUTING", "-i", "r0", "-j", "DROP")
                att(r, cm, "r0")
                counter = lambda: cm.counters()["REDIRECT"]
            else:
                raise UsageError(f"unknown bench case {name!r}; one of {', '.join(PATHS)}")
        except BaseException:
            cleanup()
            raise
        return counter, cleanup

    def close(self):
        if self._det is not None:
            self._det.close()
        if self.gen is not None:
            self.gen.close()
        for p in self.p.values():
            p.close()
        if self._probe is not None:
            self._probe.close()


class _Skip(Exception):
    pass


def _rate(counted: int, r, ncpus: int) -> float:
    """Packets/s per the CPU time the kernel measured (bpf_test_timer leaves out the time the
    generator was scheduled away; the receive NAPI runs inside it, at local_bh_enable after
    each batch): on a shared machine wall-clock rates measure the other users. ``ncpus``
    generators run in parallel, each on its own CPU."""
    if not r.sent or not r.ns_per_packet:
        return 0.0
    cpu_seconds = r.sent * r.ns_per_packet / 1e9
    return counted / cpu_seconds * ncpus


def _plan(cases, placements, cpu_counts, allowed) -> list[tuple[str, str, list[int], list[int]]]:
    """(case, key, generator CPUs, receive CPUs) for every measurement of a round."""
    plan = []
    for pl in placements:
        if pl == "split":
            if len(allowed) < 2:
                continue
            plan += [(c, f"{c}@rx", allowed[:-1], allowed[-1:]) for c in cases
                     if not (c == "cpumap" and len(allowed) < 3)]
        else:
            for n in cpu_counts:
                plan += [(c, f"{c}@{n}cpu", allowed[-n:], allowed[-n:]) for c in cases
                         if not (c == "cpumap" and n == len(allowed))]
    return plan


def measure_paths(cases=None, *, cpu_counts=None, rounds: int = 5, seconds: float = 0.5, cpu_seconds: float = 2.0,
                  placements=("split", "shared"), cpu_rates=(), cpu_cost_cases=("xdp_drop", "ipt_raw_drop"),
                  batch_size: int = 64, progress: bool = True, link: BenchLink | None = None) -> dict:
    """Packets/s each path drops or forwards: medians of ``rounds`` interleaved rounds (after
    a warm-up round) of ``seconds`` of live frames per path, in each placement (``PLACEMENTS``);
    and the receive CPU's utilisation at fixed offered rates (``cpu_rates``, packets/s, for
    ``cpu_seconds`` each; split placement)."""
    traffic.require_live_frames()
    cases = list(cases or PATHS)
    allowed = sorted(os.sched_getaffinity(0))
    cpu_counts = cpu_counts or list(range(1, len(allowed) + 1))
    own = link is None
    link = link or BenchLink(queues=len(allowed))
    if own:
        link.up()
    b = _Bench(link)
    out, cpu_cost = {}, {}
    try:
        b.start()
        plan = _plan(cases, placements, cpu_counts, allowed)
        vals = {k: [] for _, k, _, _ in plan}
        extra = {k: {"counted_of_sent": [], "busy": [], "wall_pps": [], "stats_on": []} for k in vals}
        skipped = {}
        bar = _bar(progress, (rounds + 1) * len(plan), "paths (live frames)")
        for rnd in range(rounds + 1):              # round 0: warm-up, not recorded
            for c, key, gen_cpus, rx_cpus in plan:
                if key in skipped:
                    bar and bar.update()
                    continue
                try:
                    counter, cleanup = b.case(c, rx_cpus)
                except _Skip as e:
                    skipped[key] = str(e)
                    bar and bar.update()
                    continue
                try:
                    tids = b.receiver("split" if key.endswith("@rx") else "shared", rx_cpus[-1])
                    st = b.stats_on()
                    c0, rt0 = counter(), _runtime_ns(tids)
                    # split: the largest batch (one flush, one wake-up of the receive thread per
                    # 256 frames); shared: the generator's default, as by hand
                    r = b.gen.run(duration=seconds, cpus=gen_cpus, progress=False,
                                  batch_size=SPLIT_BATCH if tids else batch_size)
                    got = counter() - c0
                    rx_ns = _runtime_ns(tids) - rt0
                    st = st or b.stats_on()
                finally:
                    cleanup()
                if rnd:
                    if tids:
                        vals[key].append(got / (rx_ns / 1e9) if rx_ns else 0.0)
                        extra[key]["busy"].append(rx_ns / 1e9 / max(r.seconds, 1e-9))
                    else:
                        vals[key].append(_rate(got, r, len(gen_cpus)))
                    extra[key]["counted_of_sent"].append(got / max(r.sent, 1))
                    extra[key]["wall_pps"].append(got / max(r.seconds, 1e-9))
                    extra[key]["stats_on"].append(st)
                bar and bar.update()
        bar and bar.close()
        for c, key, gen_cpus, rx_cpus in plan:
            pl = "split" if key.endswith("@rx") else "shared"
            if key in skipped:
                out[key] = {"n": 0, "skipped": skipped[key], "path": PATHS[c], "placement": pl}
                continue
            e = extra[key]
            out[key] = {**summary(vals[key]), "unit": "pps", "path": PATHS[c], "placement": pl,
                        "generator_cpus": gen_cpus, "receive_cpus": rx_cpus,
                        "counted_of_sent": statistics.median(e["counted_of_sent"]),
                        "wall_pps": statistics.median(e["wall_pps"]),
                        "busy": statistics.median(e["busy"]) if e["busy"] else None,
                        "stats_on": e["stats_on"]}
        # the paper's CPU-usage figure: the receive CPU's utilisation at fixed offered rates
        if cpu_rates and len(allowed) >= 2:
            bar = _bar(progress, len(cpu_rates) * len(cpu_cost_cases), "CPU cost")
            for c in cpu_cost_cases:
                rows = []
                for rate in cpu_rates:
                    counter, cleanup = b.case(c, allowed[-1:])
                    try:
                        tids = b.receiver("split", allowed[-1])
                        n0, rt0, t0 = counter(), _runtime_ns(tids), time.perf_counter()
                        r = b.gen.run(duration=cpu_seconds, rate=rate, cpus=allowed[:-1], progress=False)
                        rt, wall = _runtime_ns(tids) - rt0, time.perf_counter() - t0
                        got = counter() - n0
                    finally:
                        cleanup()
                    rows.append({"offered": rate, "achieved": got / r.seconds, "loadavg": os.getloadavg()[0],
                                 "receive_cpu": rt / 1e9 / wall})
                    bar and bar.update()
                cpu_cost[c] = rows
            bar and bar.close()
    finally:
        b.close()
        if own:
            link.down()
    return {"paths": out, "cpu_cost": cpu_cost}


def generator_alone(*, rounds: int = 5, repeat: int = 200_000) -> dict:
    """ns per frame of the live-frames machinery alone: BPF_PROG_RUN live frames with a
    program that drops at once (page pool, frame copy, batch loop; nothing transmitted).
    What a path costs the receiver is roughly its ns/frame minus this."""
    traffic.require_live_frames()
    frame = test_frame()
    d = program.load(DROP_C, count=False)
    ctx = struct.pack("=6I", 0, len(frame), 0, 1, 0, 0)          # "received" on lo
    vals = []
    try:
        cpu = sorted(os.sched_getaffinity(0))[-1]
        old = os.sched_getaffinity(0)
        os.sched_setaffinity(0, {cpu})
        try:
            for i in range(rounds + 1):
                _, _, ns = kernel.prog_test_run(d.fd, frame, repeat=repeat, ctx=ctx,
                                                 flags=kernel.BPF_F_TEST_XDP_LIVE_FRAMES, batch_size=64)
                if i:
                    vals.append(float(ns))
        finally:
            os.sched_setaffinity(0, old)
    finally:
        d.close()
    return {**summary(vals), "unit": "ns"}


# --- one whole run ---------------------------------------------------------------------

def lacks() -> list[str]:
    n = len(os.sched_getaffinity(0))
    out = ["a real NIC: veth has no DMA, no hardware RX queues or RSS; its NAPI runs on the sending CPU "
           "unless made threaded (the split placement does), and a frame's page comes from the generator's "
           "page pool on the other CPU",
           "DPDK (the paper's 43.5 Mpps reference): not installed",
           "a generator machine: the generator runs on this machine's other CPU(s)" if n >= 2 else
           "a second CPU: generator and receiver share the only one (no split placement)"]
    if n < 8:
        out.append(f"more than {n} CPUs: the paper scales to 6 cores")
    return [x for x in out if x]


def run(*, short: bool = False, targets: bool = False, rounds: int | None = None, seconds: float | None = None,
        paths=None, programs: bool | None = None, cpu_counts=None, cpu_rates=None, placements=("split", "shared"),
        progress: bool = True, baseline=None) -> Results:
    """A whole bench run: paths over live frames (both placements), every shipped program's
    cost, the receive CPU's cost at fixed rates.
    ``short``: 3 rounds of 0.2 s, 3 paths, one CPU, a few programs, no CPU cost (CI and the lab).
    ``targets``: only what the issue's targets need, 21 rounds of 0.25 s, no programs (~3 min).
    ``baseline`` (``Results`` or its dict): every program whose source the baseline stored is
    also measured side by side with that build, for ``compare``."""
    if targets:
        rounds, seconds = rounds or 21, seconds or 0.25
        paths, cpu_counts = paths or TARGET_CASES, cpu_counts or [1]
        cpu_rates = () if cpu_rates is None else cpu_rates
        programs = False if programs is None else programs
    rounds = rounds or (3 if short else 5)
    seconds = seconds or (0.2 if short else 0.5)
    if short:
        paths = paths or ["xdp_drop", "tc_drop", "ipt_raw_drop"]
        cpu_counts = cpu_counts or [1]
        cpu_rates = () if cpu_rates is None else cpu_rates
    elif cpu_rates is None:
        cpu_rates = (100_000, 300_000, 1_000_000, 2_000_000)
    programs = True if programs is None else programs
    meta = {"kernel": os.uname().release, "cpus": os.cpu_count(), "allowed_cpus": sorted(os.sched_getaffinity(0)),
            "loadavg_before": [round(x, 2) for x in os.getloadavg()], "rounds": rounds, "seconds": seconds,
            "frame_bytes": FRAME_LEN + 4, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "placements": {p: PLACEMENTS[p] for p in placements},
            "batch_size": {"split": SPLIT_BATCH, "shared": 64},
            "lacks": lacks(), "paper": {k: v for k, v in PAPER.items()}, "paper_hook_ns": PAPER_HOOK_NS}
    data = {"meta": meta}
    t0 = time.monotonic()
    if programs:
        data["programs"], data["hook_ns"] = program_costs(
            rounds=9 if short else 15, repeat=60_000 if short else 200_000, only=SHORT_PROGRAMS if short else None,
            progress=progress, baseline=baseline.data if isinstance(baseline, Results) else baseline)
    if paths != []:
        if "shared" in placements:
            data["generator_alone"] = generator_alone(rounds=rounds)
        data.update(measure_paths(paths, cpu_counts=cpu_counts, rounds=rounds, seconds=seconds,
                                  placements=placements, cpu_rates=cpu_rates, progress=progress))
    meta["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    meta["wall_seconds"] = round(time.monotonic() - t0, 1)
    return Results(data)


# --- a deliberately slowed program (to prove the harness) ----------------------------------

_WORK_HEAD = r"""
/* A UDP parser, then a chain of multiplications the compiler must keep (inline asm: it
 * cannot fold them), one per line: a later build with more of them is slower by exactly
 * that many instructions, straight-line code (no loop whose alignment moves its cost). */
int xdp_work(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    struct iphdr *ip = data + sizeof(*eth);
    struct udphdr *udp = (void *)(ip + 1);

    if ((void *)(udp + 1) > end || eth->h_proto != htons(ETH_P_IP) || ip->protocol != IPPROTO_UDP)
        return XDP_PASS;
    u64 x = udp->source;
"""
_WORK_STEP = '    asm volatile("%0 *= 3" : "+r"(x));\n'
_WORK_TAIL = "    return x == 12345 ? XDP_DROP : XDP_PASS;\n}\n"


def work_source(steps: int) -> str:
    """A parser plus ``steps`` dependent multiplications (about 1.1 ns each here)."""
    return _WORK_HEAD + _WORK_STEP * int(steps) + _WORK_TAIL


def work_program(steps: int):
    return program.load(work_source(steps), count=False)


def slowed_pair(slowdown: float = 0.10, *, target_ns: float = 100.0, rounds: int = 9, repeat: int = 100_000):
    """(base source, slowed source, info): a program that costs about ``target_ns`` per packet
    (as BPF_PROG_RUN reports it, the hook included) and a later build of it with enough
    extra straight-line work to cost ``slowdown`` more. The cost of a step is measured here
    (0 and 200 steps), then the pair is measured side by side once (``info['measured_change']``)."""
    a, b = work_program(0), work_program(200)
    try:
        m = measure_programs({"a": a, "b": b}, rounds=rounds, repeat=repeat, progress=False)
    finally:
        a.close()
        b.close()
    c0, c200 = m["a"]["median"], m["b"]["median"]
    per_step = max((c200 - c0) / 200, 0.05)
    base_steps = max(0, round((target_ns - c0) / per_step))
    extra = max(1, round(slowdown * target_ns / per_step))
    base = work_source(base_steps)
    for attempt in range(2):         # side by side; once more when it landed off the aim by over 20 %
        slow = work_source(base_steps + extra)
        j = judge_ab(measure_ab(base, slow))
        if attempt or abs(j["change"] - slowdown) <= 0.2 * slowdown or j["change"] <= 0.005:
            break
        extra = max(1, round(extra * slowdown / j["change"]))
    return base, slow, {"empty_ns": c0, "ns_per_step": per_step, "base_steps": base_steps, "extra_steps": extra,
                        "base_ns": j.get("base_ns"), "measured_change": j["change"]}


# --- the command ------------------------------------------------------------------------

def add_arguments(p):
    p.add_argument("--short", action="store_true", help="3 rounds of 0.2 s, 3 paths, one CPU, 2 programs (CI, the lab)")
    p.add_argument("--targets", action="store_true",
                   help="only the issue's targets (XDP vs iptables raw / tc, dashboard and drop detector cost), "
                        "both placements, 21 rounds of 0.25 s (about 3 minutes)")
    p.add_argument("--rounds", type=int, help="interleaved rounds per case (after one warm-up)")
    p.add_argument("--seconds", type=float, help="seconds of traffic per path and round")
    p.add_argument("--placement", choices=["split", "shared", "both"], default="both",
                   help="split: generator and receiver on different CPUs (the paper's); shared: on one CPU "
                        "(the issue's by-hand method); default both")
    p.add_argument("--paths", help=f"comma-separated, of: {', '.join(PATHS)} ('none': no live traffic)")
    p.add_argument("--cpus", help="receive CPU counts, e.g. 1,2 (default 1..N)")
    p.add_argument("--no-programs", action="store_true", help="skip the per-program BPF_PROG_RUN costs")
    p.add_argument("--json", metavar="FILE", help="write the results (a baseline for --compare)")
    p.add_argument("--html", metavar="FILE", help="write the bokeh chart (ours beside the paper's)")
    p.add_argument("--compare", metavar="BASELINE", help="flag what slowed beyond the measured noise")
    p.add_argument("--report-only", action="store_true", help="with --compare: print, exit 0 even if flagged")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def _positive(name, v):
    if v is not None and (v < 1):
        raise UsageError(f"--{name} {v}: give a whole number >= 1")
    return v


def main(args) -> int:
    """``xdplab bench``: exit 1 when --compare flags something (unless --report-only)."""
    baseline = load(args.compare) if args.compare else None          # refuse before measuring
    paths = None
    if args.paths:
        paths = [] if args.paths == "none" else [x.strip() for x in args.paths.split(",") if x.strip()]
        bad = [x for x in paths if x not in PATHS]
        if bad:
            raise UsageError(f"--paths: unknown {', '.join(bad)}; accepted: {', '.join(PATHS)} or none")
    cpus = None
    if args.cpus:
        try:
            cpus = [int(x) for x in args.cpus.split(",")]
        except ValueError:
            raise UsageError(f"--cpus {args.cpus!r}: give counts like 1,2") from None
        n = len(os.sched_getaffinity(0))
        if any(not 1 <= c <= n for c in cpus):
            raise UsageError(f"--cpus {args.cpus!r}: this machine has {n} CPUs for us (1..{n})")
    if args.seconds is not None and not 0.05 <= args.seconds <= 60:
        raise UsageError(f"--seconds {args.seconds}: give 0.05..60 seconds of traffic per path and round")
    res = run(short=args.short, targets=args.targets, rounds=_positive("rounds", args.rounds), seconds=args.seconds,
              paths=paths, programs=False if args.no_programs else None, cpu_counts=cpus,
              placements=("split", "shared") if args.placement == "both" else (args.placement,),
              progress=not args.quiet, baseline=baseline)
    print(res.table())
    if args.json:
        print(f"results: {res.save(args.json)}")
    if args.html:
        print(f"chart: {res.save_chart(args.html)}")
    if baseline is not None:
        cmp = compare(baseline, res)
        print("\n" + cmp.table())
        if cmp.flagged and not args.report_only:
            return 1
    return 0


def batching(batch_sizes=(1, 4, 16, 64, 256), *, frames: int = 100_000, rounds: int = 3,
             case: str = "xdp_drop", progress: bool = True) -> dict:
    """Packets/s of ``case`` when the generator hands frames over in batches of each size
    (BPF_PROG_RUN live frames: one flush, hence one NAPI run of the receiver, per batch)."""
    with BenchLink(queues=1) as link:
        b = _Bench(link)
        vals = {n: [] for n in batch_sizes}
        bar = _bar(progress, (rounds + 1) * len(batch_sizes), "batching")
        try:
            b.start()
            counter, cleanup = b.case(case, [])
            try:
                cpu = sorted(os.sched_getaffinity(0))[-1]
                for rnd in range(rounds + 1):
                    for n in batch_sizes:
                        c0 = counter()
                        r = b.gen.run(count=frames, cpus=[cpu], batch_size=n, progress=False)
                        if rnd:
                            vals[n].append(_rate(counter() - c0, r, 1))
                        bar and bar.update()
            finally:
                cleanup()
        finally:
            bar and bar.close()
            b.close()
    return {n: {**summary(v), "unit": "pps"} for n, v in vals.items()}
