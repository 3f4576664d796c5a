"""The regression harness on real runs: a ~100 ns program vs itself (20 reruns) and vs a
copy slowed by a calibrated loop (+10 % of its own cost per packet, measured). Prints how
many reruns were flagged (at most 1 of 20 allowed) and how often the slowed one was.

    python benchmarks/bench_harness.py [--reruns 20] [--rounds 15] [--repeat 60000] [--record FILE]

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
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--repeat", type=int, default=60_000)
    ap.add_argument("--slowdown", type=float, default=0.10)
    ap.add_argument("--record")
    a = ap.parse_args()
    import time
    t0 = time.monotonic()
    base, slow, info = bench.slowed_pair(a.slowdown, rounds=max(a.rounds, 9), repeat=max(a.repeat, 60_000))
    print(f"calibrated in {time.monotonic() - t0:.0f} s", flush=True)
    t0 = time.monotonic()
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
    print(f"measured in {time.monotonic() - t0:.0f} s", flush=True)
    judged = [bench.judge(baseline, r, base_ref=baseline["ref"], cur_ref=r["ref"]) for r in reruns]
    judged_slow = [bench.judge(baseline, s, base_ref=baseline["ref"], cur_ref=s["ref"]) for s in slowed]
    false_alarms = sum(j["verdict"] == "SLOWER" for j in judged)
    caught = sum(j["verdict"] == "SLOWER" for j in judged_slow)
    print(f"base program {info['base_ns']:.1f} ns/packet of its own (net of the hook); slowed by {info['loops']} "
          f"loop iterations ({info['ns_per_iteration']:.2f} ns each) for +{a.slowdown:.0%}: calibration measured "
          f"{info['measured_change']:+.1%}; load average {os.getloadavg()[0]:.2f}")
    print(f"measured slowdown (median of {a.reruns}): "
          f"{sorted(j['change'] for j in judged_slow)[a.reruns // 2]:+.1%}; thresholds "
          f"{min(j['threshold'] for j in judged):.1%}..{max(j['threshold'] for j in judged):.1%}")
    print(f"reruns of the same program flagged: {false_alarms} of {a.reruns}")
    print(f"slowed program flagged: {caught} of {a.reruns}")
    if a.record:
        Path(a.record).write_text(json.dumps({
            "info": info, "rounds": a.rounds, "repeat": a.repeat, "loadavg": os.getloadavg(),
            # per run: [program ns per round, hook ns per round, BPF stats on per round (both)]
            "baseline": [baseline["values"], baseline["ref"]["values"], baseline["stats_on"], baseline["ref"]["stats_on"]],
            "reruns": [[r["values"], r["ref"]["values"], r["stats_on"], r["ref"]["stats_on"]] for r in reruns],
            "slowed": [[s["values"], s["ref"]["values"], s["stats_on"], s["ref"]["stats_on"]] for s in slowed]},
            indent=1))


if __name__ == "__main__":
    main()
