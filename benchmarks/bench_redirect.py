"""What sending costs: XDP_DROP vs XDP_TX vs devmap redirect vs cpumap redirect.

    python benchmarks/bench_redirect.py [--frames 200000] [--trials 5]

One run, one 2-host topology of its own. Frames are injected with BPF_PROG_RUN in
live-frames mode (BPF_F_TEST_XDP_LIVE_FRAMES) as if received on h1's root-side veth, so
each verdict really happens: XDP_TX goes back to h1's veth0 (its peer has an XDP_PASS
program, else veth drops it), the devmap variant rewrites the MACs and sends to h2's
veth (peer program on h2), the cpumap variant queues the frame to the other CPU, where
the sk_buff is built (that CPU's work is not in the sender's time). XDP_DROP is the
baseline. Prints medians (ns per frame on the injecting CPU, Mpps) and ratios to DROP.

Read the numbers as "cost to the receiving CPU": a veth target is served by NAPI on the
same CPU, so XDP_TX and devmap include the target's XDP_PASS and its stack (h1 drops the
bounced frames as not-for-me; h2 takes the UDP datagram and answers port-unreachable,
rate-limited). cpumap moves exactly that work off the CPU — which is the point of it.
Measured once on this 2-vCPU VM under load (100k frames x 3, 60-byte frames):
DROP 1.0, cpumap ~2x, XDP_TX ~5x, devmap ~15x.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scapy.all import IP, UDP, Ether  # noqa: E402
from tqdm import tqdm  # noqa: E402

import xdplab  # noqa: E402
from xdplab import kernel  # noqa: E402
from xdplab.net import redirect
from xdplab.kernel import xdp_md  # noqa: E402

SOL = xdplab.paths.LAB_BPF / "solutions/06-redirect"


def variants(h1, h2):
    cpu = os.cpu_count() - 1
    drop = xdplab.load("int drop(struct xdp_md *ctx) { return XDP_DROP; }")
    tx = xdplab.load('#include "xdplab_redirect.h"\n'
                     "int tx(struct xdp_md *ctx) {\n"
                     "    struct ethhdr *eth = (void *)(long)ctx->data;\n"
                     "    if ((void *)(eth + 1) > (void *)(long)ctx->data_end) return XDP_DROP;\n"
                     "    xdplab_swap_macs(eth);\n    return XDP_TX;\n}\n")
    dev = xdplab.Program.from_file(SOL / "devmap_fwd.c").load()
    dev["macs"][0] = redirect.mac_u64(h2.mac)
    dev["macs"][1] = redirect.mac_u64(h2.gw_mac)
    redirect.devmap_set(dev["tx_port"], 0, h2)
    cpumap = xdplab.Program.from_file(SOL / "cpumap.c").load()
    cpumap["target_cpu"][0] = cpu
    redirect.cpumap_set(cpumap["cpu_map"], cpu, qsize=2048)
    return {"XDP_DROP": drop, "XDP_TX": tx, "devmap": dev, f"cpumap->cpu{cpu}": cpumap}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=200_000)
    ap.add_argument("--trials", type=int, default=5)
    args = ap.parse_args()
    topo = xdplab.Topology(prefix=f"xb{os.getpid() % 1000}-", net=240).up()
    h1, h2 = topo["h1"], topo["h2"]
    try:
        redirect.ensure_peer_program(h1)
        redirect.ensure_peer_program(h2)
        progs = variants(h1, h2)
        frame = bytes(Ether(src=h1.mac, dst=h1.gw_mac) / IP(src=h1.ipv4, dst=h2.ipv4)
                      / UDP(sport=4242, dport=9) / (b"x" * 18))
        ctx = xdp_md(len(frame), h1.ifindex)
        times = {name: [] for name in progs}
        with tqdm(total=args.trials * len(progs), desc="trials", unit="run") as bar:
            for _ in range(args.trials):
                for name, prog in progs.items():      # interleaved: drift hits all alike
                    before = prog.counters().total
                    t0 = time.perf_counter_ns()
                    kernel.prog_test_run(prog.fd, frame, repeat=args.frames, ctx=ctx,
                                          flags=kernel.BPF_F_TEST_XDP_LIVE_FRAMES, batch_size=64)
                    times[name].append((time.perf_counter_ns() - t0) / args.frames)
                    assert prog.counters().total - before == args.frames, name
                    bar.update()
        base = statistics.median(times["XDP_DROP"])
        print(f"\n{'variant':18} {'ns/frame':>9} {'Mpps':>7} {'x DROP':>7}   ({args.trials} trials of "
              f"{args.frames} frames, {len(frame)} B, medians)")
        for name, ts in times.items():
            m = statistics.median(ts)
            print(f"{name:18} {m:9.1f} {1e3 / m:7.2f} {m / base:7.2f}")
        arrived = redirect.delivered(h2)
        print(f"\nh2's veth0 received {arrived} frames (devmap variant: {args.trials * args.frames} sent)")
    finally:
        xdplab.detach_all()
        redirect.cleanup()
        topo.down()


if __name__ == "__main__":
    main()
