"""AF_XDP vs AF_PACKET: how many packets per second reach *Python*.

    python benchmarks/bench_afxdp.py [--seconds 1] [--trials 5]

One run, one veth, one sender. The sender is BPF_PROG_RUN in live-frames mode
(BPF_F_TEST_XDP_LIVE_FRAMES), run by a child process inside the lab host's netns on its veth0: a program
returning XDP_TX turns every injected frame into an ndo_xdp_xmit on veth0, which lands on
the root-side veth (host.outside). There the same XSKMAP program runs for every
variant: frames to UDP 4242 go to the XSK when one is in the map, else XDP_PASS to the
stack (where the AF_PACKET socket sees them). The frame's destination MAC is nobody's,
so the IP layer drops it right after AF_PACKET took its copy (no ICMP replies).

Receivers (each its own trials, same sender flooding as fast as it can):
  af_xdp batch   XSK.recv_batch(4096): descriptors and lengths as numpy, frames returned
                 to the fill ring in one vectorised put
  af_xdp per-pkt XSK.packets(): one bytes object per frame
  af_packet      socket(AF_PACKET, SOCK_RAW).recv_into() loop, one syscall per frame
Prints medians side by side and the ratios; offered = frames the XDP program saw;
pkts/CPU-second = received / CPU time of the receiving thread (what Python could take
with a core to itself).
The veth NAPI work (XDP program, copy into the UMEM, sk_buffs for AF_PACKET) runs in
softirq on the sender's CPU and is not in that figure.
"""
from __future__ import annotations

import argparse
import os
import socket
import statistics
import struct
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tqdm import tqdm  # noqa: E402

import xdplab  # noqa: E402
from xdplab import _kernel  # noqa: E402
from xdplab.afxdp import XSK, redirect_program  # noqa: E402

PORT = 4242
ETH_P_ALL = 0x0003


class LiveSender:
    """A child process inside ``host``'s netns running an XDP_TX program on veth0 in
    live-frames mode while ``with sender:`` is active. A process, not a thread: the
    receiving Python loop holds the GIL, and a sender waiting for it would measure the
    GIL instead of the receivers."""

    def __init__(self, host, frame: bytes, repeat: int = 20_000):
        import multiprocessing as mp
        self.prog = xdplab.load("int tx(struct xdp_md *ctx) { return XDP_TX; }", count=False)
        self.host, self.frame, self.repeat = host, frame, repeat
        self.ifindex = _kernel.run_in_netns(host.netns, socket.if_nametoindex, host.inside)
        ctx = mp.get_context("fork")            # the child inherits the program fd
        self.go, self.idle, self.quit = ctx.Event(), ctx.Event(), ctx.Event()
        self.errors = ctx.Queue()
        self.proc = ctx.Process(target=self._run, daemon=True)
        self.proc.start()

    def _run(self):
        # struct xdp_md {data, data_end (must be the frame size), data_meta, ingress_ifindex, ...}
        ctx = struct.pack("=IIIIII", 0, len(self.frame), 0, self.ifindex, 0, 0)
        try:
            with _kernel.in_netns(self.host.netns):
                while not self.quit.is_set():
                    self.idle.set()
                    if not self.go.wait(0.1):
                        continue
                    self.idle.clear()
                    while self.go.is_set():
                        _kernel.prog_test_run(self.prog.fd, self.frame, repeat=self.repeat, ctx=ctx,
                                              flags=_kernel.BPF_F_TEST_XDP_LIVE_FRAMES, batch_size=64)
        except Exception as e:
            self.errors.put(repr(e))
            self.idle.set()

    def __enter__(self):
        self.idle.wait(5)
        self.go.set()
        return self

    def __exit__(self, *exc):
        self.go.clear()
        self.idle.wait(5)
        if not self.errors.empty():
            raise RuntimeError(f"sender failed: {self.errors.get()}")

    def close(self):
        self.quit.set()
        self.go.clear()
        self.proc.join(5)
        if self.proc.is_alive():
            self.proc.kill()
        self.prog.close()


def rx_afxdp_batch(xsk: XSK, seconds: float) -> int:
    n, end = 0, time.monotonic() + seconds
    while time.monotonic() < end:
        n += len(xsk.recv_batch(4096, timeout=0.01))
    xsk.recv_batch(0)                                # give the last batch back
    return n


def rx_afxdp_packets(xsk: XSK, seconds: float) -> int:
    n, end = 0, time.monotonic() + seconds
    for _ in xsk.packets(timeout=0.1):
        n += 1
        if not n & 255 and time.monotonic() >= end:
            break
    return n


def rx_afpacket(sock: socket.socket, seconds: float) -> int:
    buf = bytearray(2048)
    n, end = 0, time.monotonic() + seconds
    recv_into = sock.recv_into
    while True:
        try:
            recv_into(buf)
        except BlockingIOError:
            if time.monotonic() >= end:
                break
            continue
        n += 1
        if not n & 255 and time.monotonic() >= end:
            break
    return n


def drain_afpacket(sock):
    try:
        while True:
            sock.recv(2048, socket.MSG_DONTWAIT)
    except BlockingIOError:
        pass


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=1.0, help="length of one trial")
    ap.add_argument("--trials", type=int, default=5)
    a = ap.parse_args(argv)
    from scapy.all import IP, UDP, Ether, raw

    topo = xdplab.Topology(hosts=("h1",), prefix=f"xsk{os.getpid() % 1000}-",
                           net=250 + os.getpid() % 5).up()   # test subnets stop at 249
    h = topo["h1"]
    frame = raw(Ether(src=h.mac, dst="02:00:00:00:00:99") / IP(src=h.ipv4, dst=h.gw4)
                / UDP(sport=1234, dport=PORT) / (b"x" * 18))            # 60 bytes
    results = {"af_xdp batch": [], "af_xdp per-pkt": [], "af_packet": []}
    offered = {k: [] for k in results}
    per_cpu = {k: [] for k in results}       # packets per CPU-second of the receiving thread
    prog = sender = None
    try:
        prog = redirect_program(udp_port=PORT)
        sender = LiveSender(h, frame)
        prog.attach(h.outside, "native")             # the same program for every variant
        ap_sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        ap_sock.setsockopt(socket.SOL_SOCKET, 33, 64 << 20)          # SO_RCVBUFFORCE
        ap_sock.bind((h.outside, 0))
        # block in recv() for at most 10 ms (SO_RCVTIMEO: no extra poll() per packet, and no
        # busy spinning that would count against AF_PACKET's CPU time when it keeps up)
        ap_sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("=qq", 0, 10_000))
        try:
            with XSK(h.outside, 0, ring_size=8192, num_frames=16384) as xsk:
                xsk.redirect(program=prog)
                for _ in tqdm(range(a.trials), desc="trials", unit="trial"):
                    for name, fn in (("af_xdp batch", rx_afxdp_batch),
                                     ("af_xdp per-pkt", rx_afxdp_packets)):
                        xsk.recv_batch(1 << 20)                      # start from an empty ring
                        c0 = prog.counters()
                        with sender:
                            t0, c0t = time.monotonic(), time.thread_time()
                            n = fn(xsk, a.seconds)
                            dt, cpu = time.monotonic() - t0, time.thread_time() - c0t
                            seen = (prog.counters() - c0).total
                        results[name].append(n / dt)
                        per_cpu[name].append(n / cpu)
                        offered[name].append(seen / dt)
                    xsk_stats = xsk.stats()
            # closing the socket detached the program and emptied its map slot: attached
            # again, the same program returns XDP_PASS and the frames reach AF_PACKET
            prog.attach(h.outside, "native")
            for _ in tqdm(range(a.trials), desc="af_packet", unit="trial"):
                drain_afpacket(ap_sock)
                c0 = prog.counters()
                with sender:
                    t0, c0t = time.monotonic(), time.thread_time()
                    n = rx_afpacket(ap_sock, a.seconds)
                    dt, cpu = time.monotonic() - t0, time.thread_time() - c0t
                    seen = (prog.counters() - c0).total
                results["af_packet"].append(n / dt)
                per_cpu["af_packet"].append(n / cpu)
                offered["af_packet"].append(seen / dt)
        finally:
            ap_sock.close()
    finally:
        for obj in (sender, prog):
            if obj is not None:
                obj.close()
        topo.down()

    med = {k: statistics.median(v) for k, v in results.items()}
    off = {k: statistics.median(v) for k, v in offered.items()}
    cpu = {k: statistics.median(v) for k, v in per_cpu.items()}
    print(f"\n{os.uname().release}, {os.cpu_count()} CPUs, 60-byte UDP frames, "
          f"{a.trials} trials x {a.seconds:.1f}s, medians (copy mode on veth)")
    print(f"{'receiver':16}{'pps to Python':>16}{'offered pps':>16}{'pkts/CPU-second':>18}")
    for k in results:
        print(f"{k:16}{med[k]:16,.0f}{off[k]:16,.0f}{cpu[k]:18,.0f}")
    print(f"ratio af_xdp batch / af_packet   = {med['af_xdp batch'] / med['af_packet']:.2f}x")
    print(f"ratio af_xdp per-pkt / af_packet = {med['af_xdp per-pkt'] / med['af_packet']:.2f}x")
    print(f"per CPU-second of the receiving thread: af_xdp batch / af_packet = "
          f"{cpu['af_xdp batch'] / cpu['af_packet']:.2f}x")
    for k in results:
        if med[k] > 0.9 * off[k]:
            print(f"note: {k} kept up with the sender ({med[k]:,.0f} of {off[k]:,.0f} pps): its "
                  "wall-clock rate is the sender's, compare pkts/CPU-second instead")
    print(f"load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"XSK statistics after the AF_XDP trials: {xsk_stats}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
