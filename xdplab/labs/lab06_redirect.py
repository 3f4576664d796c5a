"""Lab 06 exercise: answer ICMPv6 echo requests (ping -6) with XDP_TX, pass the rest."""
from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.inet6 import ICMPv6EchoReply, ICMPv6EchoRequest, ICMPv6ND_NS, IPv6
from scapy.layers.l2 import Ether

from .grading import exercise
from ..net.redirect import ensure_peer_program

ex = exercise("06", "redirect", solution="06-redirect/icmp6_echo.c",
              title="answer ICMPv6 echo requests with XDP_TX, pass everything else")

MAC_A, MAC_B = "02:58:4c:0a:01:02", "02:58:4c:0a:01:01"
A6, B6 = "fc00:dead:cafe:901::2", "fc00:dead:cafe:901::1"
PAYLOAD = b"xdplab echo payload"


def checksum_ok(pkt, layer) -> bool:
    """Is ``layer``'s checksum (chksum/cksum) the one scapy computes for the packet?"""
    field = next(f.name for f in layer.fields_desc if f.name in ("chksum", "cksum"))
    clean = pkt.copy()
    delattr(clean[layer], field)
    return getattr(pkt[layer], field) == getattr(Ether(bytes(clean))[layer], field)


@ex.unit
def crafted(c):
    base = Ether(src=MAC_A, dst=MAC_B) / IPv6(src=A6, dst=B6, hlim=64)
    r = c.packet("an ICMPv6 echo request is answered with XDP_TX",
                 base / ICMPv6EchoRequest(id=0x4242, seq=7, data=PAYLOAD), "XDP_TX",
                 hint="eth->h_proto == htons(ETH_P_IPV6), nexthdr == IPPROTO_ICMPV6, "
                      "icmp6_type == ICMPV6_ECHO_REQUEST -> return XDP_TX")
    if r is not None and r.action == "XDP_TX":
        p = r.packet
        c.that("Ethernet addresses swapped", (MAC_B, MAC_A), (p.src, p.dst),
               hint="the reply goes back where the request came from: xdplab_swap_macs(eth)")
        c.that("IPv6 addresses swapped", (B6, A6), (p[IPv6].src, p[IPv6].dst) if IPv6 in p else None)
        echo = p[ICMPv6EchoReply] if ICMPv6EchoReply in p else None
        c.that("type is echo reply (129)", 129, p[IPv6].payload.type if IPv6 in p else None,
               hint="icmp6->icmp6_type = ICMPV6_ECHO_REPLY")
        if echo is not None:
            c.that("id, sequence and data unchanged", (0x4242, 7, PAYLOAD), (echo.id, echo.seq, echo.data))
            c.that("ICMPv6 checksum valid", True, checksum_ok(p, ICMPv6EchoReply),
                   hint="the type/code word changed: xdplab_csum_replace2(&icmp6->icmp6_cksum, old, new); "
                        "swapping the addresses does not change the pseudo-header sum")
    c.packet("an ICMPv6 echo REPLY passes (answering replies would loop)",
             base / ICMPv6EchoReply(id=1, seq=1), "XDP_PASS")
    c.packet("a neighbour solicitation passes (ND must keep working)", base / ICMPv6ND_NS(tgt=B6), "XDP_PASS",
             hint="only type 128 is answered")
    c.packet("UDP over IPv6 passes", base / UDP(sport=1234, dport=53), "XDP_PASS")
    c.packet("IPv4 ICMP echo passes", Ether(src=MAC_A, dst=MAC_B) / IP(src="10.9.1.2", dst="10.9.1.1") / ICMP(),
             "XDP_PASS")
    c.packet("a frame cut after the IPv6 header passes",
             bytes(Ether(src=MAC_A, dst=MAC_B) / IPv6(src=A6, dst=B6, nh=58))[:54], "XDP_PASS",
             hint="check `(void *)(icmp6 + 1) > data_end` before reading the ICMPv6 header")


@ex.live
def live(c, host):
    peer = ensure_peer_program(host)        # veth XDP_TX needs the peer's NAPI queue
    try:
        before = c.prog.counters()["TX"]
        r = host.run(["ping", "-6", "-n", "-q", "-c", "3", "-i", "0.1", "-W", "1", host.gw6], check=False)
        got = next((int(l.split(",")[1].split()[0]) for l in r.stdout.splitlines() if "received" in l), 0)
        c.that("ping -6 from a lab host is answered", 3, got,
               hint="the program runs natively on the host's root-side veth")
        c.that("... by the program: XDP_TX counted for each request", ">= 3", c.prog.counters()["TX"] - before,
               ok=c.prog.counters()["TX"] - before >= 3,
               hint="XDP_PASS lets the kernel's stack answer instead")
        c.that("ping (IPv4) still answered by the stack", 3, host.ping(host.gw4, count=3, interval=0.1))
    finally:
        if peer is not None:
            peer.close()
