"""Lab 12 exercise: a multi-buffer program that drops marked jumbo frames."""
import time

from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from .grading import exercise
from ..tools import memory

ex = exercise("12", "memory-and-multibuffer", solution="12-memory-and-multibuffer/jumbo_guard.c",
              title="drop frames over 4000 B whose byte 5000 is 0xEE (xdp.frags), pass the rest")

MARK_OFF, MARK = 5000, 0xEE


def frame(size: int, mark: bool, src="10.0.0.2", dst="10.0.0.1", mac=None, gw_mac=None):
    """An Ethernet/IPv4/UDP frame of ``size`` bytes; byte MARK_OFF is MARK when ``mark``."""
    head = Ether(**({"src": mac, "dst": gw_mac} if mac else {})) / IP(src=src, dst=dst) / UDP(sport=9, dport=9)
    pad = bytearray(max(0, size - len(head)))
    if mark and size > MARK_OFF:
        pad[MARK_OFF - len(head)] = MARK
    return head / Raw(bytes(pad))


@ex.unit
def crafted(c):
    frags = getattr(c.prog, "frags", False)
    c.that("loaded as a multi-buffer program (SEC(\"xdp.frags\"))", True, frags,
           hint="without xdp.frags the kernel refuses the program on a jumbo-MTU device, and it sees only the first buffer")
    c.packet("a 9000 B frame with 0xEE at byte 5000 is dropped", frame(9000, True), "XDP_DROP",
             hint="the frame is longer than ctx->data_end - ctx->data: use bpf_xdp_get_buff_len and "
                  "bpf_xdp_load_bytes(ctx, 5000, &b, 1)")
    c.packet("a 9000 B frame without the mark passes", frame(9000, False), "XDP_PASS")
    c.packet("a 6000 B frame with the mark is dropped", frame(6000, True), "XDP_DROP")
    c.packet("a 3000 B frame passes (not a jumbo frame)", frame(3000, False), "XDP_PASS")
    c.packet("a 60 B frame passes", frame(60, False), "XDP_PASS",
             hint="bpf_xdp_load_bytes fails past the end of the frame: pass it then")


@ex.live
def live(c, host):
    try:
        memory.set_mtu(host, 9000)
    except Exception as e:
        c.that("the grader host takes MTU 9000 with your program attached", "ok", str(e).splitlines()[0],
               hint="a program without xdp.frags keeps the MTU below a page")
        return
    try:
        before = c.prog.counters()
        memory.send(host, frame(8000, True, host.ipv4, host.gw4, host.mac, host.gw_mac), count=4)
        memory.send(host, frame(8000, False, host.ipv4, host.gw4, host.mac, host.gw_mac), count=3)
        time.sleep(0.2)
        d = c.prog.counters() - before
    finally:
        memory.set_mtu(host, 1500)             # the grader host is shared by later checks
    c.that("4 marked 8000 B frames from the grader host were dropped", 4, d["DROP"],
           hint="veth hands XDP a multi-buffer frame: the first page, then fragments")
    c.that("at least 3 unmarked 8000 B frames passed", ">= 3", d["PASS"], ok=d["PASS"] >= 3)
