"""Lab 11 exercise: stamp each frame's L4 protocol into the XDP metadata for TC to read."""
import socket
import struct
import time

from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import ICMPv6EchoRequest, IPv6
from scapy.layers.l2 import ARP, Ether

from .grading import exercise, udp_delivered
from ..programs.program import Program


ex = exercise("11", "metadata", solution="11-metadata/stamp_proto.c",
              title="stamp the frame's L4 protocol into the metadata, pass every frame")

A4, B4, A6, B6 = "10.0.0.2", "10.0.0.1", "fc00::2", "fc00::1"
MAGIC = 0x584C4D44                       # XDPLAB_META_MAGIC in bpf/include/xdplab_meta.h
META = struct.Struct("=IIIIQ")           # struct xdplab_meta: magic, proto, cpu, pad, ts
READER = "metadata/read_meta.c"          # the lab's TC program (under bpf/)


def stamped_proto(meta: bytes):
    """meta->proto of a run's metadata, or why there is none."""
    if len(meta) < META.size:
        return f"no metadata ({len(meta)} bytes)"
    magic, proto, *_ = META.unpack_from(meta, len(meta) - META.size)
    return proto if magic == MAGIC else f"magic {magic:#x}, not XDPLAB_META_MAGIC"


@ex.unit
def crafted(c):
    cases = (("IPv4 ICMP echo request", IP(src=A4, dst=B4) / ICMP(), 1),
             ("IPv4 TCP", IP(src=A4, dst=B4) / TCP(dport=80), 6),
             ("IPv4 UDP", IP(src=A4, dst=B4) / UDP(dport=53), 17),
             ("IPv6 UDP", IPv6(src=A6, dst=B6) / UDP(dport=53), 17),
             ("IPv6 ICMPv6 echo request", IPv6(src=A6, dst=B6) / ICMPv6EchoRequest(), 58),
             ("ARP (neither IPv4 nor IPv6)", Ether(dst="ff:ff:ff:ff:ff:ff") / ARP(pdst=B4), 0))
    for name, pkt, proto in cases:
        r = c.packet(f"{name} passes", pkt, "XDP_PASS", hint="stamp the metadata, then return XDP_PASS")
        if r is not None:
            c.that(f"... stamped with meta->proto = {proto}", proto, stamped_proto(r.meta),
                   hint="after bpf_xdp_adjust_meta, read ctx->data/data_end again; IPv4: ip->protocol, "
                        "IPv6: ip6->nexthdr, anything else 0")
    c.packet("a frame cut after the Ethernet header passes", bytes(Ether() / IP(src=A4, dst=B4))[:14],
             "XDP_PASS", hint="check `(void *)(ip + 1) > data_end` before reading the IPv4 header")


@ex.live
def live(c, host):
    if not c.needs("tcx", "TC reads your metadata from the sk_buff"):
        return
    tc = Program.from_file(READER, hook="tc").load()
    try:
        tc.attach(host.outside, "ingress")
        host.ping(host.gw4, count=3, interval=0.05)
        udp_delivered(host, count=4)
        t = host.socket(socket.AF_INET, socket.SOCK_STREAM, timeout=1)
        try:
            t.connect((host.gw4, 9))            # closed port: one SYN in, one RST out
        except OSError:
            pass
        t.close()
        time.sleep(0.1)
        got = tc["by_proto"].to_dict()
    finally:
        tc.close()
    hint = "TC reads meta->proto from the sk_buff of every frame your program passed"
    c.that("TC counted 3 echo requests as protocol 1 (ICMP)", 3, got.get(1, 0), hint=hint)
    c.that("TC counted 1 SYN as protocol 6 (TCP)", 1, got.get(6, 0), hint=hint)
    c.that("TC counted 4 datagrams as protocol 17 (UDP)", 4, got.get(17, 0), hint=hint)
