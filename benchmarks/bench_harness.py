"""The regression harness on real runs: a ~100 ns program against its stored baseline 20
times unchanged and 20 times as a build 10 % slower (extra straight-line work, calibrated
here). Each comparison is what ``xdplab bench --compare`` does for a program: the baseline's
build (its source is in the baseline) and the current build loaded several times each and
measured side by side, judged by ``bench.compare``. Prints how many unchanged reruns were
flagged (at most 1 of 20 allowed) and how many slowed ones.

    python benchmarks/bench_harness.py [--reruns 20] [--slowdown 0.10] [--copies 6] [--rounds 20] [--record FILE]

``--record`` writes every measured record (tests/data/bench_ab_recorded.json is one;
tests/test_bench.py replays the harness's decisions on it).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import xdplab  # noqa: E402
from xdplab.tools import bench, progcost  # noqa: E402

NAME = "work [xdp]"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reruns", type=int, default=20)
    ap.add_argument("--slowdown", type=float, default=0.10)
    ap.add_argument("--target-ns", type=float, default=100.0)
    ap.add_argument("--copies", type=int, default=progcost.AB_COPIES, help="loads of each build")
    ap.add_argument("--rounds", type=int, default=20, help="interleaved rounds per comparison")
    ap.add_argument("--record")
    a = ap.parse_args()
    t0 = time.monotonic()
    base_src, slow_src, info = bench.slowed_pair(a.slowdown, target_ns=a.target_ns)
    print(f"calibrated in {time.monotonic() - t0:.0f} s: {info['base_steps']} steps for the base, "
          f"{info['extra_steps']} more for the slowed build ({info['ns_per_step']:.2f} ns each); "
          f"side by side once: {info['measured_change']:+.1%}", flush=True)
    # the stored baseline: what `xdplab bench --json` keeps for a program (numbers + source)
    p, hook = xdplab.load(base_src, count=False), xdplab.load(bench.HOOK_C, count=False)
    try:
        m = bench.measure_programs({"work": p, "hook": hook}, rounds=9, repeat=100_000, progress=False)
    finally:
        p.close()
        hook.close()
    baseline = {"programs": {NAME: {**m["work"], "source": base_src, "hook": "xdp"}}}
    t0 = time.monotonic()
    reruns, slowed = [], []
    for i in range(a.reruns):                  # interleaved: an unchanged rerun, then the slowed build
        for src, out in ((base_src, reruns), (slow_src, slowed)):
            rec = progcost.measure_ab(base_src, src, copies_each=a.copies, rounds=a.rounds)
            out.append(rec)
        print(f"  {i + 1}/{a.reruns}", end="\r", flush=True)
    print(f"measured in {time.monotonic() - t0:.0f} s ({(time.monotonic() - t0) / 2 / a.reruns:.1f} s per comparison)")

    def verdicts(recs):
        return [bench.compare(baseline, {"programs": {NAME: {**m["work"], "ab": r}}}).rows[0] for r in recs]
    same, slow = verdicts(reruns), verdicts(slowed)
    false_alarms = sum(r["verdict"] == "SLOWER" for r in same)
    caught = sum(r["verdict"] == "SLOWER" for r in slow)
    print(f"base program {statistics.median(r['base'] for r in same):.1f} ns/packet (BPF_PROG_RUN, hook included); "
          f"load average {os.getloadavg()[0]:.2f}")
    print(f"unchanged reruns: changes {min(r['change'] for r in same):+.1%}..{max(r['change'] for r in same):+.1%}, "
          f"thresholds {min(r['threshold'] for r in same):.1%}..{max(r['threshold'] for r in same):.1%}")
    print(f"slowed build:     changes {min(r['change'] for r in slow):+.1%}..{max(r['change'] for r in slow):+.1%} "
          f"(median {statistics.median(r['change'] for r in slow):+.1%})")
    print(f"reruns of the same program flagged: {false_alarms} of {a.reruns}")
    print(f"slowed program flagged: {caught} of {a.reruns}")
    if a.record:
        Path(a.record).write_text(json.dumps({
            "info": info, "loadavg": os.getloadavg(), "baseline": baseline, "reruns": reruns, "slowed": slowed}))
        print(f"recorded: {a.record}")


if __name__ == "__main__":
    main()
