"""xdplab bench's regression rule on recorded numbers (no speed is ever asserted), and the
command's refusals. The real runs are in tests/test_benchmarks.py (report-only)."""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from xdplab.tools import bench, progcost
from xdplab.errors import UsageError

ROOT = Path(__file__).resolve().parent.parent
REC = json.loads((ROOT / "tests/data/bench_recorded.json").read_text())


def entry(values, unit="ns", stats=None):
    e = {"values": list(values), "unit": unit}
    if stats is not None:
        e["stats_on"] = list(stats)
    return e


def _run(r):
    """A recorded run: [program ns per round, hook ns per round(, stats on per round, hook's)]."""
    st = r[2:4] if len(r) >= 4 else (None, None)
    return entry(r[0], stats=st[0]), entry(r[1], stats=st[1])


def verdicts(kind: str, pool: int = 1, add: float = 0.0) -> list[str]:
    """The harness's decision for each recorded run of ``kind`` against the recorded baseline
    (each run carries the hook's own cost measured in the same rounds, and whether BPF stats
    were on); ``pool`` consecutive runs taken together as one longer run; ``add`` ns added to
    every one of the program's rounds (a program that much slower, on the recorded noise)."""
    base, base_ref = _run(REC["baseline"])
    out = []
    for i in range(0, len(REC[kind]), pool):
        runs = [_run(r) for r in REC[kind][i:i + pool]]
        cur = {"values": sum(([x + add for x in r[0]["values"]] for r in runs), []), "unit": "ns",
               "stats_on": sum((r[0].get("stats_on") or [False] * len(r[0]["values"]) for r in runs), [])}
        ref = {"values": sum((r[1]["values"] for r in runs), []), "unit": "ns",
               "stats_on": sum((r[1].get("stats_on") or [False] * len(r[1]["values"]) for r in runs), [])}
        out.append(bench.judge(base, cur, base_ref=base_ref, cur_ref=ref)["verdict"])
    return out


def own_cost() -> float:
    return bench.quantile(bench.net(*_run(REC["baseline"])))


def test_recording_is_what_the_tests_claim():
    """tests/data/bench_recorded.json: `benchmarks/bench_harness.py --record` on the shared
    2-CPU VM (load average 2.8-5): a ~100 ns program (97.5 ns of its own) 20 times against its
    baseline, and a slowed copy 20 times, 15 rounds each, BPF stats on in many rounds (another
    process held BPF_ENABLE_STATS)."""
    assert len(REC["reruns"]) == 20 and len(REC["slowed"]) == 20
    assert REC["info"]["loops"] >= 1 and len(REC["baseline"][0]) >= bench.MIN_N
    assert 80 < own_cost() < 120
    assert any(any(r[2]) for r in REC["reruns"]), "the recording has rounds with BPF stats on"


def test_reruns_of_the_same_program_are_not_flagged():
    v = verdicts("reruns")
    assert v.count("SLOWER") <= 1, v          # recorded: 0 of 20


def test_the_slowed_program_is_flagged():
    """The recording's slowed copy (calibration aimed at +10 %; that run's loop landed on
    +44 %: see info) is flagged in every run and never called faster."""
    v = verdicts("slowed")
    assert v.count("SLOWER") >= 19, v
    assert "faster" not in v


def test_a_10_percent_slower_program_is_flagged_on_the_recorded_noise():
    """+10 % of the program's own cost added to every round of the 20 recorded reruns: one
    run of 15 rounds flags it 13 times in 20 on this noise, never calls it faster; two runs
    taken together (30 rounds) flag it more often than not, and the unchanged reruns taken
    together are still never flagged."""
    add = 0.10 * own_cost()
    v = verdicts("reruns", add=add)
    assert v.count("SLOWER") > len(v) // 2, v
    assert "faster" not in v
    assert "SLOWER" not in verdicts("reruns", pool=2)


def test_the_same_rule_sees_the_slowdown_in_the_numbers():
    """The recording's slowed runs really cost more (what the flag rests on) and its reruns do not."""
    import statistics
    base = own_cost()
    slow = statistics.median(bench.quantile(bench.net(*_run(r))) for r in REC["slowed"])
    same = statistics.median(bench.quantile(bench.net(*_run(r))) for r in REC["reruns"])
    assert slow / base - 1 > 0.1, (base, slow)
    assert abs(same / base - 1) < 0.05, (base, same)


def test_stats_switched_on_by_another_process_cancel_or_are_left_out():
    """BPF run-time stats (any process's BPF_ENABLE_STATS) add ~100 ns to every program run:
    a ratio to the hook would call that a change; the net cost does not, and rounds where
    only one of the pair had stats on are left out."""
    base, base_ref = entry([130] * 7), entry([30] * 7)
    on, on_ref = entry([230] * 7, stats=[True] * 7), entry([130] * 7, stats=[True] * 7)
    assert bench.judge(base, on, base_ref=base_ref, cur_ref=on_ref)["verdict"] == "same"
    # rounds where stats switched between the hook's run and the program's are left out
    mixed = entry([230, 130, 230, 130, 131, 129, 130], stats=[True, False, True, False, False, False, False])
    mixed_ref = entry([30, 130, 30, 130, 30, 30, 30], stats=[False, True, False, True, False, False, False])
    assert bench.net(mixed, mixed_ref) == [101, 99, 100]
    assert bench.judge(base, mixed, base_ref=base_ref, cur_ref=mixed_ref)["verdict"] == "same"
    # a path's rounds with stats on are left out when enough are off
    assert bench.costs(entry([10e6, 10e6, 10e6, 5e6], "pps", stats=[False, False, False, True])) == [100.0] * 3


def test_threshold_follows_the_noise():
    quiet = entry([100, 101, 100, 99, 100, 101, 100])
    noisy = entry([100, 130, 85, 115, 95, 125, 90])
    up = entry([112, 113, 112, 111, 112, 113, 112])
    assert bench.judge(quiet, up)["verdict"] == "SLOWER"
    assert bench.judge(noisy, up)["verdict"] == "same"
    assert bench.judge(noisy, up)["threshold"] > bench.judge(quiet, up)["threshold"] >= bench.FLOOR


def test_floor_keeps_tiny_noise_from_flagging_drift():
    assert bench.judge(entry([100] * 7), entry([102] * 7))["verdict"] == "same"
    assert bench.judge(entry([100] * 7), entry([104] * 7))["verdict"] == "SLOWER"


def test_rates_are_costs_inverted():
    base = entry([10e6, 10.1e6, 9.9e6, 10e6, 10e6], "pps")
    assert bench.judge(base, entry([8e6, 8.1e6, 7.9e6, 8e6, 8e6], "pps"))["verdict"] == "SLOWER"
    assert bench.judge(base, entry([12e6, 12.1e6, 11.9e6, 12e6, 12e6], "pps"))["verdict"] == "faster"


def test_too_few_runs_are_reported_never_flagged():
    j = bench.judge(entry([100]), entry([300]))
    assert j["verdict"] == "too few runs" and j["change"] == pytest.approx(2.0)


def test_compare_names_what_slowed_and_uses_the_hook_as_reference():
    hook = [100, 101, 99, 100, 100]
    base = {"programs": {bench.REF: {"values": hook, "unit": "ns"}, "a.c": {"values": [150, 151, 149, 150, 150]},
                         "b.c": {"values": [150, 151, 149, 150, 150]}},
            "paths": {"xdp_drop@rx": entry([5e6, 5.1e6, 4.9e6, 5e6, 5e6], "pps")}}
    # every program run 100 ns dearer (the hook too: e.g. BPF stats switched on by another
    # process): not a regression of a.c; b.c slowed by 20 ns on top
    cur = {"programs": {bench.REF: {"values": [200, 201, 199, 200, 200]},
                        "a.c": {"values": [250, 251, 249, 250, 250]}, "b.c": {"values": [270, 271, 269, 270, 270]}},
           "paths": {"xdp_drop@rx": entry([4e6, 4.1e6, 3.9e6, 4e6, 4e6], "pps")}}
    c = bench.compare(base, cur)
    assert c.flagged == ["paths/xdp_drop@rx", "programs/hook: empty XDP_PASS", "programs/b.c"]
    assert {r["case"]: round(r["change"], 2) for r in c.rows}["b.c"] == 0.4      # 50 -> 70 ns of its own
    assert "flagged: paths/xdp_drop@rx" in c.table()


def test_results_round_trip_and_ratios(tmp_path):
    r = bench.Results({"meta": {}, "paths": {
        "xdp_drop@rx": {**bench.summary([6e6, 6e6, 6e6]), "unit": "pps"},
        "ipt_raw_drop@rx": {**bench.summary([1e6, 1e6, 1e6]), "unit": "pps"},
        "xdp_drop@1cpu": {**bench.summary([3e6, 3.3e6, 3e6]), "unit": "pps"},
        "ipt_raw_drop@1cpu": {**bench.summary([1e6, 1e6, 1.1e6]), "unit": "pps"}}})
    p = r.save(tmp_path / "b.json")
    back = bench.load(p)
    assert back.ratio("xdp_drop@rx", "ipt_raw_drop@rx") == 6.0
    t = {(x["target"], x["placement"]): x for x in back.targets()}
    raw = "XDP_DROP / iptables raw DROP (XDP_PASS on veth)"
    assert t[(raw, "split")]["met"] and t[(raw, "split")]["paired"] == 6.0
    assert not t[(raw, "shared")]["met"] and t[(raw, "shared")]["paired"] == pytest.approx(3.0)
    assert not any(x["target"] == "XDP_DROP / tc drop" for x in back.targets()), "no tc run, no ratio"
    assert "NOT met" in back.table() and "split" in back.table()


@pytest.mark.parametrize("argv,says", [
    (["--compare", "/nonexistent/base.json"], "does not exist"),
    (["--paths", "xdp_drop,warp"], "unknown warp"),
    (["--cpus", "1,99"], "--cpus"),
    (["--rounds", "0"], "--rounds 0"),
    (["--seconds", "0"], "--seconds 0"),
])
def test_command_refuses_bad_arguments_before_measuring(argv, says, tmp_path):
    r = subprocess.run([sys.executable, "-m", "xdplab", "bench", "--json", str(tmp_path / "o.json"), *argv],
                       capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 2 and says in r.stderr, r.stderr
    assert not (tmp_path / "o.json").exists()


def test_not_json_baseline_is_a_usage_error(tmp_path):
    (tmp_path / "b.json").write_text("{nope")
    with pytest.raises(UsageError, match="not JSON"):
        bench.load(tmp_path / "b.json")


def test_ci_short_bench_report_only(tmp_path):
    """CI's short run: every path against the stored baseline (benchmarks/baseline-ci.json,
    recorded on the 2-CPU CI VM), every program side by side with the baseline's build of
    it, report-only; prints the table. Asserts that it ran and cleaned up, never a speed."""
    from xdplab.net import topology
    before = set(topology.leftovers(topology.DEFAULT_PREFIX)["netns"])
    out = tmp_path / "now.json"
    r = subprocess.run([sys.executable, "-m", "xdplab", "bench", "--short", "--quiet", "--json", str(out),
                        "--compare", str(ROOT / "benchmarks/baseline-ci.json"), "--report-only"],
                       capture_output=True, text=True, cwd=ROOT, timeout=900)
    print(r.stdout)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    assert "flagged:" in r.stdout and "xdp_drop@1cpu" in r.stdout and "xdp_drop@rx" in r.stdout
    data = json.loads(out.read_text())
    assert data["meta"]["loadavg_after"] and data["programs"][bench.REF]["n"] >= bench.MIN_N
    for k in ("xdp_drop@rx", "ipt_raw_drop@rx", "xdp_drop@1cpu", "ipt_raw_drop@1cpu"):
        p = data["paths"][k]
        assert p["n"] == 3 and len(p["stats_on"]) == 3 and p["counted_of_sent"] > 0, (k, p)
    assert data["paths"]["xdp_drop@rx"]["busy"] > 0, "the receive thread's CPU time was measured"
    assert set(topology.leftovers(topology.DEFAULT_PREFIX)["netns"]) <= before
    assert "side by side" in r.stdout, "the programs were measured beside the baseline's builds"
    assert all("ab" in data["programs"][k] for k in data["programs"] if k != bench.REF)


def test_bpf_stats_switched_on_are_seen_per_run():
    """BPF_ENABLE_STATS held by any process makes every program run pay two clock reads;
    bench sees it run by run from the program's own run counter. (In a child process: the
    kernel keeps stats on for as long as the enabling process lives.)"""
    out = _in_child("p = xdplab.load(bench.HOOK_C, count=False)\nf = bench.test_frame()\n"
                    "kernel.acquire_stats()\n"
                    "ns, on = bench.prog_ns_stats(p, f, 1000)\n"
                    "m = bench.measure_programs({'hook': p}, rounds=3, repeat=3000, progress=False)\n"
                    "print('RESULT', on, m['hook']['stats_on'])\n")
    assert "RESULT True [True, True, True]" in out, out


def _in_child(body: str) -> str:
    """stdout (+ the end of stderr) of ``body`` run in a fresh Python with xdplab, kernel and
    bench imported: BPF stats are held per process."""
    code = "import xdplab\nfrom xdplab import kernel\nfrom xdplab.tools import bench\n" + body
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    return r.stdout + r.stderr[-2000:]


def test_bpf_stats_are_held_only_while_a_program_that_reports_them_lives():
    """xdplab switches BPF run-time stats on for a libbpf program (its statistics) and for a
    BCC program's .stats(), and off again when the last such program is closed: while on,
    every BPF program run on the machine pays two clock reads. ``Program(stats=False)``
    (what bench measures with) never switches them on. (In a child: stats held by this test
    process would not be seen as ours.)"""
    out = _in_child("h = xdplab.load(bench.HOOK_C, count=False)\nf = bench.test_frame()\n"
                    "on = lambda: bench.prog_ns_stats(h, f, 100)[1]\n"
                    "seen = [on()]\n"
                    "p = xdplab.Program.from_file('solutions/13-performance/port_filter.bpf.c').load()\n"
                    "seen.append(on())\n"
                    "b = xdplab.load(bench.HOOK_C, count=False)\nb.stats()\np.close()\nseen.append(on())\n"
                    "b.close()\nseen.append(on())\n"
                    "kernel.features.have('enable_stats')\nseen.append(on())\n"
                    "q = xdplab.Program.from_file('solutions/13-performance/port_filter.bpf.c', stats=False).load()\n"
                    "seen.append(on())\nq.close()\n"
                    "print('RESULT', seen, kernel.stats_held())\n")
    assert "RESULT [False, True, True, False, False, False] False" in out, out


# --- side by side: two builds of a program measured in the same run (progcost) -------------

AB = json.loads((ROOT / "tests/data/bench_ab_recorded.json").read_text())


def ab_verdicts(kind: str, scale: float = 1.0) -> list[dict]:
    """``bench.compare`` of each recorded run of ``kind`` against the recorded baseline, the
    current build's costs multiplied by ``scale`` (a build that much dearer, on the recorded
    noise)."""
    name, = AB["baseline"]["programs"]
    out = []
    for rec in AB[kind]:
        rec = {**rec, "current": [[x * scale for x in copy] for copy in rec["current"]]}
        cur = {"programs": {name: {**AB["baseline"]["programs"][name], "ab": rec}}}
        out.append(bench.compare(AB["baseline"], cur).rows[0])
    return out


def test_ab_recording_is_what_the_tests_claim():
    """tests/data/bench_ab_recorded.json: `benchmarks/bench_harness.py --record` on the shared
    2-CPU VM: a ~100 ns program (its source stored as the baseline) measured side by side with
    a fresh build of the same source 20 times, and with a build calibrated to cost ~10 % more
    20 times; 6 loads of each build, 20 rounds."""
    assert len(AB["reruns"]) == 20 and len(AB["slowed"]) == 20
    rows = ab_verdicts("reruns")
    assert all(r["how"] == "side by side" for r in rows)
    assert 70 < statistics.median(r["base"] for r in rows) < 140
    assert 0.07 < statistics.median(r["change"] for r in ab_verdicts("slowed")) < 0.14
    rec = AB["reruns"][0]
    assert len(rec["base"]) == len(rec["current"]) == 6 and len(rec["hook"]) == 20


def test_ab_reruns_of_the_same_program_are_not_flagged():
    v = [r["verdict"] for r in ab_verdicts("reruns")]
    assert v.count("SLOWER") <= 1, v            # recorded: 0 of 20
    assert v.count("faster") <= 1, v


def test_ab_the_10_percent_slower_build_is_flagged():
    v = [r["verdict"] for r in ab_verdicts("slowed")]
    assert v.count("SLOWER") >= 19, v           # recorded: 20 of 20
    assert "faster" not in v


def test_ab_a_slowdown_added_to_the_recorded_reruns_is_flagged():
    """+10 % on the unchanged reruns' current build, on their recorded noise: flagged every
    time; +1 % (below the 3 % floor) never."""
    assert all(r["verdict"] == "SLOWER" for r in ab_verdicts("reruns", 1.10))
    assert not any(r["verdict"] == "SLOWER" for r in ab_verdicts("reruns", 1.01))


def ab_rec(base, cur, hook=None, stats=None):
    n = len(base[0])
    return {"base": base, "current": cur, "hook": hook or [30.0] * n, "stats_on": stats or [False] * n}


def test_ab_threshold_follows_the_spread_between_loads():
    """Loads of one build that differ (JIT placement) widen the threshold: +6 % is beyond
    the noise of loads that agree, not of loads that differ by 10 %."""
    rounds = [1.0, 1.01, 0.99, 1.0, 1.02]
    agree = [[100 * r for r in rounds] for _ in range(4)]
    differ = [[100 * f * r for r in rounds] for f in (0.9, 1.0, 1.1, 1.0)]
    up = [[106 * r for r in rounds] for _ in range(4)]
    a, d = progcost.judge_ab(ab_rec(agree, up)), progcost.judge_ab(ab_rec(differ, up))
    assert a["verdict"] == "SLOWER" and d["verdict"] == "same", (a, d)
    assert d["threshold"] > a["threshold"] >= progcost.AB_FLOOR


def test_ab_the_machine_s_mood_cancels():
    """A busy spell that makes every program 40 % dearer in some rounds hits both builds in
    those rounds: no change."""
    mood = [1.0, 1.4, 1.4, 1.0, 1.0, 1.4, 1.0]
    b = [[100 * m for m in mood] for _ in range(3)]
    c = [[100.5 * m for m in mood] for _ in range(3)]
    j = progcost.judge_ab(ab_rec(b, c))
    assert j["verdict"] == "same" and abs(j["change"]) < 0.01


def test_ab_stats_on_throughout_is_judged_net_of_the_hook():
    """BPF run-time stats on in every round add ~100 ns to each run: judged on the cost net
    of the hook (measured in the same rounds), so a 10 ns slowdown of a 70 ns program is
    still seen; rounds with stats on are left out when enough are off."""
    hook = [130.0] * 5
    b = [[200.0] * 5 for _ in range(3)]
    c = [[210.0] * 5 for _ in range(3)]
    j = progcost.judge_ab(ab_rec(b, c, hook, [True] * 5))
    assert j["net_of_hook"] and j["change"] == pytest.approx(10 / 70) and j["verdict"] == "SLOWER"
    mixed = [True, False, False, False, True]
    b2 = [[200.0, 100, 100, 100, 200] for _ in range(3)]
    c2 = [[200.0, 100, 100, 100, 200] for _ in range(3)]
    j2 = progcost.judge_ab(ab_rec(b2, c2, hook, mixed))
    assert not j2["net_of_hook"] and j2["rounds"] == 3 and j2["verdict"] == "same"


def test_compare_falls_back_to_stored_numbers_and_says_why():
    """A program the current run could not measure beside its baseline build (that source no
    longer compiles) is judged on the stored numbers, and the table says why."""
    base = {"programs": {"p.c [xdp]": {"values": [100.0] * 5, "source": "int x;"}}}
    cur = {"programs": {"p.c [xdp]": {"values": [101.0] * 5, "ab_skipped": "error: unknown type name"}}}
    (row,) = bench.compare(base, cur).rows
    assert row["how"].startswith("stored numbers (the baseline's build failed: error: unknown type")
    assert row["verdict"] == "same"


def test_ab_too_few_loads_or_rounds_are_reported_never_flagged():
    assert progcost.judge_ab(ab_rec([[100.0] * 5], [[300.0] * 5]))["verdict"] == "too few runs"
    assert progcost.judge_ab(ab_rec([[100.0] * 2] * 3, [[300.0] * 2] * 3))["verdict"] == "too few runs"


def test_ab_real_run_of_two_builds():
    """On the real kernel: the same source twice and a build 3x as dear (huge margins: this
    checks the plumbing, never a speed); the dispatcher holder's namespace is gone after."""
    from xdplab.net import topology
    base = bench.work_source(40)
    same = progcost.judge_ab(progcost.measure_ab(base, base, copies_each=3, rounds=6))
    dear = progcost.judge_ab(progcost.measure_ab(base, bench.work_source(400), copies_each=3, rounds=6))
    assert same["verdict"] != "SLOWER" and abs(same["change"]) < 0.10, same
    assert dear["verdict"] == "SLOWER" and dear["change"] > 1.0, dear
    assert not [n for n in topology.leftovers(topology.DEFAULT_PREFIX)["netns"] if n.startswith(
        f"{topology.DEFAULT_PREFIX}h{os.getpid() % 100000}")]


def test_held_programs_sit_in_a_namespace_of_ours_until_closed():
    """``progcost.Held`` attaches each XDP program to a veth of its own (so BPF_PROG_RUN
    does not re-patch the XDP dispatcher), refuses a non-XDP program, removes its namespace
    on close and refuses use after it."""
    from xdplab.errors import ClosedError
    from xdplab.net import topology
    p = xdplab_load(bench.HOOK_C)
    t = xdplab_load("int c(struct __sk_buff *skb) { return 0; }", hook="tc")
    try:
        with progcost.Held() as held:
            assert held.hold(p) and not held.hold(t)
            assert held.name in topology.leftovers(topology.DEFAULT_PREFIX)["netns"]
            assert "1 programs" in repr(held)
        assert held.name not in topology.leftovers(topology.DEFAULT_PREFIX)["netns"]
        with pytest.raises(ClosedError):
            held.hold(p)
        assert bench.prog_ns(p, bench.test_frame(), 1000) > 0, "the program itself is untouched"
    finally:
        p.close()
        t.close()


def xdplab_load(src, **kw):
    import xdplab
    return xdplab.load(src, count=False, **kw)
