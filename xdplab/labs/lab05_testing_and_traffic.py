"""Lab 05 exercise: drop UDP to port 9 (discard) over IPv4 and IPv6, pass the rest."""
from scapy.layers.inet import ICMP, IP, IPOption_RR, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether

from .grading import exercise, udp_delivered
from ..net.traffic import blast

ex = exercise("05", "testing-and-traffic", solution="05-testing-and-traffic/drop_discard.c",
              title="drop UDP to port 9 (IPv4 and IPv6), pass the rest")

A4, B4, A6, B6 = "10.0.0.2", "10.0.0.1", "fc00::2", "fc00::1"
LIVE_FRAMES = 100_000


@ex.unit
def crafted(c):
    c.packet("UDP to port 9 is dropped", IP(src=A4, dst=B4) / UDP(sport=1234, dport=9), "XDP_DROP",
             hint="IPv4: protocol == IPPROTO_UDP, then udp->dest == htons(9) (network byte order!)")
    c.packet("UDP over IPv6 to port 9 is dropped", IPv6(src=A6, dst=B6) / UDP(sport=1234, dport=9),
             "XDP_DROP", hint="eth->h_proto == htons(ETH_P_IPV6), nexthdr == IPPROTO_UDP")
    c.packet("UDP to port 9 behind IPv4 options is dropped",
             IP(src=A4, dst=B4, options=[IPOption_RR()]) / UDP(dport=9), "XDP_DROP",
             hint="the UDP header starts ihl * 4 bytes after the IPv4 header, not sizeof(struct iphdr)")
    c.packet("UDP to port 53 passes", IP(src=A4, dst=B4) / UDP(dport=53), "XDP_PASS")
    c.packet("UDP *from* port 9 passes", IP(src=A4, dst=B4) / UDP(sport=9, dport=4000), "XDP_PASS",
             hint="compare the destination port (udp->dest), not the source")
    c.packet("TCP to port 9 passes", IP(src=A4, dst=B4) / TCP(dport=9), "XDP_PASS",
             hint="check the IP protocol before reading a UDP header")
    c.packet("ICMP passes", IP(src=A4, dst=B4) / ICMP(), "XDP_PASS")
    c.packet("a frame cut inside the UDP header passes",
             bytes(Ether() / IP(src=A4, dst=B4) / UDP(dport=9))[:38], "XDP_PASS",
             hint="bounds-check the whole UDP header: `(void *)(udp + 1) > data_end`")
    dns = IP(src=A4, dst=B4) / UDP(dport=53)
    c.packet("a passed packet comes back unchanged", dns, "XDP_PASS", output=dns,
             hint="a filter only reads: it must not write to the packet")


@ex.live
def live(c, host):
    if not c.needs("live_frames", "a blast of live frames through your program"):
        return
    from scapy.layers.inet import IP, UDP
    from scapy.packet import Raw
    pkt = IP(src=host.ipv4, dst=host.gw4) / UDP(sport=1024, dport=9) / Raw(b"z" * 18)
    before = c.prog.counters()
    r = blast(pkt, via=host, count=LIVE_FRAMES, vary={"sport": range(1024, 1024 + 4096)}, progress=False)
    arrived = r.sent - (r.xmit_errors or 0)
    dropped = (c.prog.counters() - before)["DROP"]
    c.that(f"{LIVE_FRAMES:,} generated UDP/9 frames are all dropped", arrived, dropped,
           hint="every frame the generator delivered should have been counted as XDP_DROP")
    c.that("UDP to another port still arrives", 3, udp_delivered(host, count=3))
    c.that("ping still works", 3, host.ping(host.gw4, count=3, interval=0.05, timeout=0.5))
