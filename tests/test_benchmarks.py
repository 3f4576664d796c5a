"""Every benchmark runs, with its smallest settings, and cleans up after itself.

Only that: the numbers are the benchmarks' to print (run them as the README says), never
asserted here. A benchmark that no longer runs, or whose result line changed shape, fails."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from xdplab.net import topology

ROOT = Path(__file__).resolve().parent.parent

SMALLEST = [  # (script and arguments, a line the result must contain)
    (["bench_attach.py", "2"], "ratio %%xdp / bare"),
    (["bench_traffic.py", "--rounds", "1", "--count", "100000", "--scapy-count", "200"],
     "generator / scapy sendp"),
    (["bench_debug.py", "--rounds", "1", "--seconds", "0.2"], "ratio on/off"),
    (["bench_redirect.py", "--frames", "10000", "--trials", "1"], "cpumap"),
    (["bench_router.py", "--rounds", "1", "--seconds", "0.3"], "ratio XDP / kernel"),
    (["bench_afxdp.py", "--seconds", "0.2", "--trials", "1"], "ratio af_xdp batch "),
    (["bench_prelude.py", "--runs", "1"], "lab program, prelude without the socket guard"),
    (["bench_libbpf.py", "1"], "ratio libbpf / bcc"),
    (["bench_harness.py", "--reruns", "2", "--rounds", "4", "--copies", "3"],
     "reruns of the same program flagged"),
]


def _state() -> tuple:
    left = topology.leftovers("x")
    return set(left["netns"]), set(left["links"])


@pytest.mark.parametrize("args,expect", SMALLEST, ids=[a[0][:-3] for a, _ in SMALLEST])
def test_benchmark_runs_and_cleans_up(args, expect):
    before = _state()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / args[0]), *args[1:]],
                       capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    assert expect in r.stdout, r.stdout[-2000:]
    netns, links = _state()
    assert netns <= before[0] and links <= before[1], (netns - before[0], links - before[1])
