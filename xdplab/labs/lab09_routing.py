"""Lab 09 exercise: the forwarding step of a bpf_fib_lookup router."""
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, Ether

from .grading import exercise
from ..net.router_topology import DEFAULT_NET, DEFAULT_PREFIX, RouterTopology
from ..programs.prog_run import run

ex = exercise("09", "routing", solution="09-routing/xdp_router.c", func="xdp_router",
              title="forward with bpf_fib_lookup: TTL - 1 (incremental checksum), MACs, redirect")


def grader_router_topology():
    """The grader's router topology (not brought up): the FIB the lookups run against."""
    return RouterTopology(hosts=("h1", "h3"), prefix=f"{DEFAULT_PREFIX}g", net=(DEFAULT_NET + 150) % 250 + 1)


def _grader_router():
    """A router topology of the grader's own, up (kept up for the next check)."""
    t = grader_router_topology()
    return t if t.is_up() else t.up()


def _csum_ok(p) -> bool:
    ip = p[IP].copy()
    want = ip.chksum
    del ip.chksum
    return IP(bytes(ip)).chksum == want


@ex.unit
def crafted(c):
    t = _grader_router()
    h1, h3 = t["h1"], t["h3"]
    eth = Ether(src=h1.mac, dst=h1.gw_mac)

    def send(name, pkt, expect, output=None, hint=""):
        # BPF_PROG_RUN in the router's netns, "received" on its port towards h1: the
        # lookup sees the router's FIB and neighbours (a redirect has no effect here)
        r = t.in_router(run, c.prog, pkt, ifname=h1.outside)
        ok = r.action == expect and (output is None or output(r.packet))
        c.that(name, expect, r.action + ("" if ok or r.action != expect else f" but {r.packet.summary()}"),
               ok=ok, hint=hint, kind="packet")
        return r

    send("IPv4 h1 -> h3 is redirected", eth / IP(src=h1.ipv4, dst=h3.ipv4, ttl=64) / UDP(dport=9),
         "XDP_REDIRECT", hint="on BPF_FIB_LKUP_RET_SUCCESS return bpf_redirect(fib.ifindex, 0)")
    send("... with TTL 63", eth / IP(src=h1.ipv4, dst=h3.ipv4, ttl=64) / UDP(dport=9), "XDP_REDIRECT",
         output=lambda p: p[IP].ttl == 63, hint="the router decrements the TTL")
    send("... and a correct IPv4 checksum", eth / IP(src=h1.ipv4, dst=h3.ipv4, ttl=64, tos=0x10) / UDP(dport=9),
         "XDP_REDIRECT", output=_csum_ok,
         hint="TTL is the high byte of a 16-bit word: check += htons(0x0100), then fold the carry")
    send("... from the router's MAC to h3's", eth / IP(src=h1.ipv4, dst=h3.ipv4) / UDP(dport=9), "XDP_REDIRECT",
         output=lambda p: (p[Ether].src, p[Ether].dst) == (h3.gw_mac, h3.mac),
         hint="copy fib.dmac to eth->h_dest and fib.smac to eth->h_source (ETH_ALEN bytes)")
    send("IPv6 h1 -> h3: redirected, hop limit 63, MACs rewritten",
         eth / IPv6(src=h1.ipv6, dst=h3.ipv6, hlim=64) / UDP(dport=9), "XDP_REDIRECT",
         output=lambda p: p[IPv6].hlim == 63 and p[Ether].dst == h3.mac,
         hint="IPv6: ip6h->hop_limit-- (no header checksum)")
    send("TTL 1 goes to the kernel (it sends ICMP time exceeded)",
         eth / IP(src=h1.ipv4, dst=h3.ipv4, ttl=1) / UDP(dport=9), "XDP_PASS",
         output=lambda p: p[IP].ttl == 1)
    send("packets for the router itself go to the kernel",
         eth / IP(src=h1.ipv4, dst=h1.gw4) / UDP(dport=9), "XDP_PASS")
    send("ARP goes to the kernel", Ether(src=h1.mac, dst="ff:ff:ff:ff:ff:ff") /
         ARP(hwsrc=h1.mac, psrc=h1.ipv4, pdst=h1.gw4), "XDP_PASS")
