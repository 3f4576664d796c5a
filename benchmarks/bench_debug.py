"""What the debugging tools cost: XDP drop rate with capture on vs off (BPF_PROG_RUN),
and with the drop detector on vs off (live traffic, XDP_ABORTED: one tracepoint hit per
packet, the detector's worst case; and XDP_DROP: no tracepoint hit). Ratios measured in
one run, medians of alternating rounds. The live traffic comes from xdplab.net.traffic (BPF_PROG_RUN
live frames redirected into the veth) on the same 2 CPUs, so the detector's probes on the
generator's flush path (xdp_devmap_xmit, once per bulk) are part of the cost.

    python benchmarks/bench_debug.py [--rounds 5]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from scapy.all import IP, UDP, Ether  # noqa: E402

import xdplab  # noqa: E402
from xdplab import kernel  # noqa: E402
from xdplab.net import traffic
from xdplab.programs.capture import Capture  # noqa: E402
from xdplab.net.topology import Topology  # noqa: E402
from xdplab.tools.drops import DropDetector  # noqa: E402

DROP = "int drop(struct xdp_md *ctx) { return XDP_DROP; }"
ABORT = "int xdp_abort(struct xdp_md *ctx) { return XDP_ABORTED; }"
# the same program libbpf-style: capture is the wrapper spliced in front of its instructions
DROP_LIBBPF = ('#include <linux/bpf.h>\n#include <bpf/bpf_helpers.h>\n'
               'SEC("xdp")\nint drop(struct xdp_md *ctx) { return XDP_DROP; }\n'
               'char _license[] SEC("license") = "GPL";\n')
FRAME = bytes(Ether() / IP(dst="10.0.0.1") / UDP(dport=9) / (b"x" * 22))     # 64 B


def prog_run_mpps(prog, repeat=300_000) -> float:
    _, _, ns = kernel.prog_test_run(prog.fd, FRAME, repeat=repeat)
    return 1e3 / ns if ns else 0.0


def bench_capture(rounds: int, src: str = DROP) -> dict:
    plain = xdplab.load(src)
    capd = xdplab.load(src, capture=Capture(snaplen=64, pages=256))
    filt = xdplab.load(src, capture=Capture(filter="tcp port 80", snaplen=64))   # never matches
    rec = capd.capture()
    res = {"off": [], "on": [], "filter, no match": []}
    lost = []
    for _ in range(rounds):
        res["off"].append(prog_run_mpps(plain))
        rec.clear()
        res["on"].append(prog_run_mpps(capd))
        rec.flush(0.1)
        s = rec.stats()
        lost.append(s["lost"] / max(s["samples"], 1))
        res["filter, no match"].append(prog_run_mpps(filt))
    rec.stop()
    for p in (plain, capd, filt):
        p.close()
    out = {k: statistics.median(v) for k, v in res.items()}
    out["lost fraction (capture on)"] = statistics.median(lost)
    return out


def live_drop_rate(prog, via, seconds: float) -> float:
    before = prog.counters()
    t0 = time.monotonic()
    traffic.blast(FRAME, via=via, duration=seconds, progress=False)
    dt = time.monotonic() - t0
    d = prog.counters() - before
    return (d["DROP"] + d["ABORTED"]) / dt / 1e6


def bench_detector(rounds: int, seconds: float) -> dict:
    topo = Topology(hosts=("h1",), prefix=f"xbd{os.getpid() % 1000}-", net=240).up()
    out = {}
    try:
        h = topo["h1"]
        for name, src in (("XDP_ABORTED (xdp_exception per packet)", ABORT), ("XDP_DROP (no loss tracepoint)", DROP)):
            prog = xdplab.load(src)
            prog.attach(h.outside)
            off, on, caught = [], [], []
            for _ in range(rounds):
                off.append(live_drop_rate(prog, h, seconds))
                with DropDetector() as dd:
                    before = prog.counters()
                    on.append(live_drop_rate(prog, h, seconds))
                    rows = dd.wait(1.0)
                    d = prog.counters() - before
                    caught.append(sum(r.drops for r in rows if r.ifindex == h.ifindex) / max(d["ABORTED"], 1))
            prog.close()
            out[name] = (statistics.median(off), statistics.median(on), statistics.median(caught))
    finally:
        xdplab.detach_all()
        topo.down()
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=1.0)
    ap.add_argument("--capture-only", action="store_true", help="skip the drop detector's live part")
    a = ap.parse_args()
    print(f"bench_debug: {a.rounds} rounds, medians; kernel {os.uname().release}, {os.cpu_count()} CPUs\n")
    # a loaded libbpf program holds BPF_ENABLE_STATS on while it lives (two clock
    # reads per run): on from the start, so that both dialects run under the same cost
    kernel.acquire_stats()
    for dialect, src in (("BCC: compiled-in wrapper", DROP), ("libbpf: spliced wrapper", DROP_LIBBPF)):
        c = bench_capture(a.rounds, src)
        print(f"capture (BPF_PROG_RUN, XDP_DROP, 64 B frames), {dialect}")
        print(f"  {'off':22} {c['off']:8.2f} Mpps")
        print(f"  {'on (entry+exit)':22} {c['on']:8.2f} Mpps   ratio on/off = {c['on'] / c['off']:.3f}"
              f"   (samples lost to a full buffer: {c['lost fraction (capture on)']:.1%})")
        print(f"  {'filter, no match':22} {c['filter, no match']:8.2f} Mpps   ratio = {c['filter, no match'] / c['off']:.3f}")
    if a.capture_only:
        return
    if not traffic.supported():
        print("\ndrop detector: skipped (live frames need Linux >= 5.18)")
        return
    d = bench_detector(a.rounds, a.seconds)
    print("\ndrop detector (live traffic from a lab host's veth, drop rate at the program)")
    for name, (off, on, caught) in d.items():
        extra = f"   detector saw {caught:.1%} of the drops" if "ABORTED" in name else ""
        print(f"  {name:40} off {off:6.2f} Mpps  on {on:6.2f} Mpps  ratio on/off = {on / off:.3f}{extra}")


if __name__ == "__main__":
    main()
