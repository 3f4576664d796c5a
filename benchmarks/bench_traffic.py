"""Traffic generator vs scapy: packets per second from ONE core into a lab host's veth.

    python benchmarks/bench_traffic.py [--rounds 5] [--count 2000000]

Both send 60-byte UDP frames out of lab host h1's veth0 (inside its netns) to the
root-side veth, where lab 05's filter (drop UDP to port 9) counts and drops them (native mode: veth runs NAPI
for its peer's ndo_xdp_xmit). The benchmark process is pinned to one CPU; the receiving
NAPI poll runs on that same CPU (veth schedules it where the frames were sent), so "one
core" pays for sending AND receiving. Every round checks the receiver counted every frame.
"""
from __future__ import annotations

import argparse
import errno
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import xdplab                                      # noqa: E402
from xdplab import kernel                # noqa: E402
from xdplab.net import traffic
from xdplab.net.topology import Topology               # noqa: E402

RX = "05-testing-and-traffic/drop_discard.c"      # the program under test: drops UDP to port 9


def scapy_round(h, frame, n: int, raw: bool = False) -> float:
    """scapy ``sendp`` of the packet (what the lab would write), or -- the fastest Python
    can do per packet -- ``L2socket.send`` of the pre-built bytes."""
    from scapy.all import conf, sendp
    sock = kernel.run_in_netns(h.netns, conf.L2socket, iface=h.inside)
    try:
        data = bytes(frame)
        t0 = time.perf_counter()
        if raw:
            sent = 0
            while sent < n:
                try:
                    sock.send(data)
                    sent += 1
                except OSError as e:          # ENOBUFS: the socket's send queue is full; retry
                    if e.errno != errno.ENOBUFS:
                        raise
        else:
            sendp(frame, count=n, socket=sock, verbose=False)
        return n / (time.perf_counter() - t0)
    finally:
        sock.close()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--count", type=int, default=2_000_000, help="frames per generator round")
    ap.add_argument("--scapy-count", type=int, default=5_000, help="frames per scapy sendp round "
                    "(10x that for raw socket sends)")
    ap.add_argument("--cpu", type=int, default=max(os.sched_getaffinity(0)))
    args = ap.parse_args(argv)
    if not traffic.supported():
        print("BPF_PROG_RUN live frames are not supported here (needs Linux >= 5.18)")
        return 2
    os.sched_setaffinity(0, {args.cpu})
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether
    from scapy.packet import Raw
    topo = Topology(hosts=("h1",), prefix=f"xb{os.getpid() % 100}-", net=240).up()
    h = topo["h1"]
    frame = Ether(src=h.mac, dst=h.gw_mac) / IP(src=h.ipv4, dst=h.gw4) / UDP(sport=1024, dport=9) / Raw(b"x" * 18)
    try:
        with xdplab.Program.from_file(xdplab.paths.lab_file("solutions") / RX).load() as rx:
            rx.attach(h.outside)
            gen = {64: [], 256: []}
            kns = {64: [], 256: []}
            with traffic.Generator(frame, via=h, vary={"sport": range(1024, 65536)}) as g:
                g.run(count=100_000, cpus=[args.cpu], progress=False)                 # warm up
                for _ in range(args.rounds):
                    for bs in gen:
                        before = rx.counters()["DROP"]
                        r = g.run(count=args.count, cpus=[args.cpu], batch_size=bs, progress=False)
                        got = rx.counters()["DROP"] - before
                        if got != r.sent - (r.xmit_errors or 0):
                            print(f"  note: batch {bs}: sent {r.sent:,}, refused {r.xmit_errors}, "
                                  f"received {got:,}")
                        gen[bs].append(r.pps)
                        kns[bs].append(r.ns_per_packet)
            sc, raw = [], []
            for _ in range(args.rounds):
                for out, is_raw, n in ((sc, False, args.scapy_count), (raw, True, 10 * args.scapy_count)):
                    before = rx.counters()["DROP"]
                    out.append(scapy_round(h, frame, n, is_raw))
                    time.sleep(0.05)
                    assert rx.counters()["DROP"] - before == n
    finally:
        xdplab.detach_all()
        topo.down()
    rows = {f"xdplab generator, batch {bs}": v for bs, v in gen.items()}
    rows["scapy sendp(pkt)"] = sc
    rows["python L2socket.send(bytes)"] = raw
    med = {k: statistics.median(v) for k, v in rows.items()}
    best = max(v for k, v in med.items() if k.startswith("xdplab"))
    print(f"kernel {os.uname().release}, 1 CPU (cpu {args.cpu}), 60 B frames, {args.rounds} rounds, "
          f"load average {os.getloadavg()[0]:.1f}")
    for name, v in med.items():
        print(f"  {name:30} median {v / 1e6:8.4f} Mpps   rounds: "
              + ", ".join(f"{x / 1e6:.4f}" for x in rows[name]))
    for bs, v in kns.items():
        print(f"  batch {bs}: kernel-timed {statistics.median(v):.0f} ns/packet (bpf_test_timer; excludes time the "
              f"thread was preempted and receive work deferred to ksoftirqd) -> {1e3 / statistics.median(v):.2f} Mpps upper bound")
    ratio, ratio_raw = best / med["scapy sendp(pkt)"], best / med["python L2socket.send(bytes)"]
    print(f"  generator / scapy sendp: {ratio:,.0f}x   generator / raw socket sends: {ratio_raw:,.1f}x")
    print(f"  targets: >= 3.5 Mpps on one core: {'met' if best >= 3.5e6 else 'NOT met'}; "
          f">= 100x scapy: {'met' if ratio >= 100 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
