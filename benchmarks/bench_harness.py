"""The regression harness on real runs: a program vs itself (20 reruns) and vs a copy
slowed by a calibrated loop (+10 % per packet). Prints how many reruns were flagged
(at most 1 of 20 allowed) and whether the slowed one was.

    python benchmarks/bench_harness.py [--reruns 20] [--rounds 7] [--repeat 100000] [--record FILE]

``--record`` writes the measured numbers (tests/data/bench_recorded.json is one such
recording; tests/test_bench.py replays the harness's decisions on it).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import xdplab  # noqa: E402
from xdplab.tools import bench  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reruns", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--repeat", type=int, default=100_000)
    ap.add_argument("--slowdown", type=float, default=0.10)
    ap.add_argument("--record")
    a = ap.parse_args()
    base, slow, info = bench.slowed_pair(a.slowdown, rounds=a.rounds, repeat=a.repeat)
    hook = xdplab.load(bench.HOOK_C, count=False)
    try:
        def one(prog):       # the program and the hook's own cost, interleaved
            m = bench.measure_programs({"hook": hook, "work": prog}, rounds=a.rounds, repeat=a.repeat,
                                       progress=False)
            return {**m["work"], "ref": m["hook"]}
        baseline = one(base)
        reruns, slowed = [], []
        for _ in range(a.reruns):              # interleaved: a rerun of the same program, then the slow one
            reruns.append(one(base))
            slowed.append(one(slow))
    finally:
        base.close()
        slow.close()
        hook.close()
    judged = [bench.judge(baseline, r, base_ref=baseline["ref"], cur_ref=r["ref"]) for r in reruns]
    judged_slow = [bench.judge(baseline, s, base_ref=baseline["ref"], cur_ref=s["ref"]) for s in slowed]
    false_alarms = sum(j["verdict"] == "SLOWER" for j in judged)
    caught = sum(j["verdict"] == "SLOWER" for j in judged_slow)
    print(f"base program {info['base_ns']:.1f} ns/packet; slowed by {info['loops']} loop iterations "
          f"({info['ns_per_iteration']:.2f} ns each) for +{a.slowdown:.0%}; load average {os.getloadavg()[0]:.2f}")
    print(f"measured slowdown (median of {a.reruns}): "
          f"{sorted(j['change'] for j in judged_slow)[a.reruns // 2]:+.1%}; thresholds "
          f"{min(j['threshold'] for j in judged):.1%}..{max(j['threshold'] for j in judged):.1%}")
    print(f"reruns of the same program flagged: {false_alarms} of {a.reruns}")
    print(f"slowed program flagged: {caught} of {a.reruns}")
    if a.record:
        Path(a.record).write_text(json.dumps({
            "info": info, "rounds": a.rounds, "repeat": a.repeat, "loadavg": os.getloadavg(),
            "baseline": [baseline["values"], baseline["ref"]["values"]],
            "reruns": [[r["values"], r["ref"]["values"]] for r in reruns],
            "slowed": [[s["values"], s["ref"]["values"]] for s in slowed]}, indent=1))


if __name__ == "__main__":
    main()
