"""xdplab bench's regression rule on recorded numbers (no speed is ever asserted), and the
command's refusals. The real runs are in tests/test_benchmarks.py (report-only)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from xdplab.tools import bench
from xdplab.errors import UsageError

ROOT = Path(__file__).resolve().parent.parent
REC = json.loads((ROOT / "tests/data/bench_recorded.json").read_text())


def entry(values, unit="ns"):
    return {"values": list(values), "unit": unit}


def verdicts(kind: str, pool: int = 1) -> list[str]:
    """The harness's decision for each recorded run of ``kind`` against the recorded baseline
    (each run carries the hook's own cost measured in the same rounds); ``pool`` consecutive
    runs taken together as one longer run."""
    base, base_ref = REC["baseline"]
    runs = REC[kind]
    runs = [[sum((r[0] for r in runs[i:i + pool]), []), sum((r[1] for r in runs[i:i + pool]), [])]
            for i in range(0, len(runs), pool)]
    return [bench.judge(entry(base), entry(v), base_ref=entry(base_ref), cur_ref=entry(ref))["verdict"]
            for v, ref in runs]


def test_recording_is_what_the_tests_claim():
    assert len(REC["reruns"]) == 20 and len(REC["slowed"]) == 20
    assert REC["info"]["loops"] >= 1 and len(REC["baseline"][0]) >= bench.MIN_N


def test_reruns_of_the_same_program_are_not_flagged():
    v = verdicts("reruns")
    assert v.count("SLOWER") <= 1, v


def test_the_program_slowed_by_10_percent_is_flagged():
    """Recorded on the shared 2-CPU VM at load average 9-20: a run of 9 rounds flags the
    slowed program most of the time (13 of 20) and never calls it faster; 4 runs taken
    together (36 rounds) flag it every time, and still never a rerun of the same program."""
    v = verdicts("slowed")
    assert v.count("SLOWER") > len(v) // 2, v
    assert "faster" not in v
    assert set(verdicts("slowed", pool=4)) == {"SLOWER"}
    assert "SLOWER" not in verdicts("reruns", pool=4)


def test_the_same_rule_sees_the_slowdown_in_the_numbers():
    """The recording's slowed runs really cost more (what the flag rests on)."""
    import statistics
    base = statistics.median(x / r for x, r in zip(*REC["baseline"]))
    slow = statistics.median(statistics.median(x / r for x, r in zip(*run)) for run in REC["slowed"])
    assert slow > base


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
            "paths": {"xdp_drop@1cpu": entry([5e6, 5.1e6, 4.9e6, 5e6, 5e6], "pps")}}
    # the whole machine 20 % slower (hook too): not a regression of a.c; b.c slowed on top
    cur = {"programs": {bench.REF: {"values": [120, 121, 119, 120, 120]},
                        "a.c": {"values": [180, 181, 179, 180, 180]}, "b.c": {"values": [210, 211, 209, 210, 210]}},
           "paths": {"xdp_drop@1cpu": entry([4e6, 4.1e6, 3.9e6, 4e6, 4e6], "pps")}}
    c = bench.compare(base, cur)
    assert c.flagged == ["paths/xdp_drop@1cpu", "programs/hook: empty XDP_PASS", "programs/b.c"]
    assert "flagged: paths/xdp_drop@1cpu" in c.table()


def test_results_round_trip_and_ratios(tmp_path):
    r = bench.Results({"meta": {}, "paths": {"xdp_drop@1cpu": {**bench.summary([6e6, 6e6, 6e6]), "unit": "pps"},
                                              "ipt_raw_drop@1cpu": {**bench.summary([1e6, 1e6, 1e6]), "unit": "pps"}}})
    p = r.save(tmp_path / "b.json")
    assert bench.load(p).ratio("xdp_drop@1cpu", "ipt_raw_drop@1cpu") == 6.0
    assert bench.load(p).targets()["XDP_DROP / tc drop (target >= 2)"] is None


@pytest.mark.parametrize("argv,says", [
    (["--compare", "/nonexistent/base.json"], "does not exist"),
    (["--paths", "xdp_drop,warp"], "unknown warp"),
    (["--cpus", "1,99"], "--cpus"),
    (["--rounds", "0"], "--rounds 0"),
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
    """CI's short run: every path and program measured against the stored baseline
    (benchmarks/baseline-ci.json, recorded on the 2-CPU CI VM), report-only; prints the
    table. Asserts that it ran and cleaned up, never a speed."""
    from xdplab.net import topology
    before = set(topology.leftovers("xb")["netns"])
    out = tmp_path / "now.json"
    r = subprocess.run([sys.executable, "-m", "xdplab", "bench", "--short", "--quiet", "--json", str(out),
                        "--compare", str(ROOT / "benchmarks/baseline-ci.json"), "--report-only"],
                       capture_output=True, text=True, cwd=ROOT, timeout=900)
    print(r.stdout)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    assert "flagged:" in r.stdout and "xdp_drop@1cpu" in r.stdout
    data = json.loads(out.read_text())
    assert data["meta"]["loadavg_after"] and data["programs"][bench.REF]["n"] >= bench.MIN_N
    assert set(topology.leftovers("xb")["netns"]) <= before
