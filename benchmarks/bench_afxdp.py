"""AF_XDP vs AF_PACKET: how many packets per second reach *Python*.

    python benchmarks/bench_afxdp.py [--seconds 1] [--trials 5]

One run, one veth, one sender (xdplab's live-frames generator on the first CPU), the
receivers in turn on the other CPU, all through ``xdplab.tools.receive_paths.compare`` — the same
call lab 10 makes; its docstring says what each receiver does. Prints the medians side
by side and the ratios to AF_PACKET, wall clock and per CPU-second of the receiving thread.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import xdplab  # noqa: E402
from xdplab.tools.receive_paths import AF_XDP, compare  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=1.0, help="length of one trial")
    ap.add_argument("--trials", type=int, default=5)
    a = ap.parse_args(argv)
    topo = xdplab.Topology(hosts=("h1",), prefix=f"xsk{os.getpid() % 1000}-",
                           net=250 + os.getpid() % 5).up()   # test subnets stop at 249
    try:
        r = compare(topo["h1"], a.seconds, a.trials)
    finally:
        topo.down()
    print()
    print(r)
    for k in AF_XDP:
        print(f"ratio {k:18} / af_packet = {r.ratio(k):5.2f}x   per CPU-second "
              f"{r.ratio(k, per_cpu=True):5.2f}x")
    print(f"load average after the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"XSK statistics over the AF_XDP trials: {r.xsk_stats}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
