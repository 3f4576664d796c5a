"""Lab 01 exercise: drop ICMP echo requests over IPv4 and IPv6, pass everything else."""
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import ICMPv6EchoReply, ICMPv6EchoRequest, ICMPv6ND_NS, IPv6
from scapy.layers.l2 import ARP, Ether

from .grading import exercise, udp_delivered

ex = exercise("01", "hello-xdp", solution="01-hello-xdp/drop_icmp_echo.c",
              title="drop ICMP echo requests (IPv4 and IPv6), pass the rest")

A4, B4, A6, B6 = "10.0.0.2", "10.0.0.1", "fc00::2", "fc00::1"


@ex.unit
def crafted(c):
    nd = "neighbour discovery is ICMPv6 too: only the echo request type (128) may be dropped"
    c.packet("IPv4 echo request (ping) is dropped", IP(src=A4, dst=B4) / ICMP(type=8), "XDP_DROP",
             hint="parse Ethernet, then IPv4: protocol == IPPROTO_ICMP and icmp->type == ICMP_ECHO")
    c.packet("IPv6 echo request (ping -6) is dropped", IPv6(src=A6, dst=B6) / ICMPv6EchoRequest(),
             "XDP_DROP", hint="eth->h_proto == htons(ETH_P_IPV6), nexthdr == IPPROTO_ICMPV6, "
                              "icmp6_type == ICMPV6_ECHO_REQUEST")
    c.packet("IPv4 echo reply passes", IP(src=A4, dst=B4) / ICMP(type=0), "XDP_PASS",
             hint="drop only type 8 (echo request)")
    c.packet("IPv4 destination unreachable passes", IP(src=A4, dst=B4) / ICMP(type=3, code=3), "XDP_PASS",
             hint="drop only echo requests: errors must still reach the sender's stack")
    c.packet("IPv6 echo reply passes", IPv6(src=A6, dst=B6) / ICMPv6EchoReply(), "XDP_PASS", hint=nd)
    c.packet("IPv6 neighbour solicitation passes", IPv6(src=A6, dst="ff02::1:ff00:1") / ICMPv6ND_NS(tgt=B6),
             "XDP_PASS", hint=nd)
    c.packet("UDP passes", IP(src=A4, dst=B4) / UDP(dport=53), "XDP_PASS")
    c.packet("TCP over IPv6 passes", IPv6(src=A6, dst=B6) / TCP(dport=80), "XDP_PASS")
    c.packet("ARP passes", Ether(dst="ff:ff:ff:ff:ff:ff") / ARP(pdst=B4), "XDP_PASS",
             hint="without ARP the hosts cannot find each other")
    c.packet("a frame cut after the IPv4 header passes", bytes(Ether() / IP(src=A4, dst=B4, proto=1))[:34],
             "XDP_PASS", hint="check `(void *)(icmp + 1) > data_end` before reading the ICMP header")


@ex.live
def live(c, host):
    c.that("ping from a lab host gets no reply", 0, host.ping(host.gw4, count=3, interval=0.05, timeout=0.3),
           hint="the program is attached in native mode to the host's root-side veth")
    c.that("ping -6 gets no reply", 0, host.ping(host.gw6, count=3, interval=0.05, timeout=0.3))
    c.that("UDP datagrams still arrive", 3, udp_delivered(host, count=3))
