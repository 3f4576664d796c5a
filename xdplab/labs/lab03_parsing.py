"""Lab 03 exercise: drop TCP to port 23 over IPv4 (with options) and IPv6, behind 0-2 VLAN tags."""
from scapy.layers.inet import IP, TCP, UDP, IPOption_RR
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Dot1AD, Dot1Q, Ether

from .grading import exercise

ex = exercise("03", "parsing", solution="03-parsing/drop_telnet.c",
              title="drop TCP to port 23 over IPv4 and IPv6, with or without VLAN tags")

V4, V6 = IP(src="10.0.0.2", dst="10.0.0.1"), IPv6(src="fc00::2", dst="fc00::1")
ETH = Ether(src="02:00:00:00:00:02", dst="02:00:00:00:00:01")


@ex.unit
def crafted(c):
    hint_l3 = "parse both ETH_P_IP and ETH_P_IPV6 after the Ethernet (and VLAN) headers"
    c.packet("IPv4 TCP to 23 is dropped", V4 / TCP(dport=23), "XDP_DROP")
    c.packet("IPv6 TCP to 23 is dropped", V6 / TCP(dport=23), "XDP_DROP", hint=hint_l3)
    c.packet("IPv4 with options (ihl=6), TCP to 23, is dropped", IP(dst="10.0.0.1", options=[IPOption_RR()]) / TCP(dport=23),
             "XDP_DROP", hint="the IPv4 header is ihl*4 bytes long, not sizeof(struct iphdr)")
    c.packet("802.1Q-tagged IPv4 TCP to 23 is dropped", ETH / Dot1Q(vlan=5) / V4 / TCP(dport=23), "XDP_DROP",
             hint="skip struct vlan_hdr when h_proto is ETH_P_8021Q")
    c.packet("QinQ (802.1ad + 802.1Q) IPv6 TCP to 23 is dropped",
             ETH / Dot1AD(vlan=7) / Dot1Q(vlan=5) / V6 / TCP(dport=23), "XDP_DROP",
             hint="loop over up to two tags (#pragma unroll), ETH_P_8021AD then ETH_P_8021Q")
    c.packet("TCP to 22 passes", V4 / TCP(dport=22), "XDP_PASS")
    c.packet("UDP to 23 passes", V4 / UDP(dport=23), "XDP_PASS", hint="only TCP (protocol 6) is dropped")
    c.packet("a frame cut inside the TCP header passes", bytes(ETH / V4 / TCP(dport=23))[:40], "XDP_PASS",
             hint="check (void *)(tcp + 1) > data_end before reading tcp->dest")
