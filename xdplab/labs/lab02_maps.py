"""Lab 02 exercise: packets and bytes per IPv4 protocol in a per-CPU array."""
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, Ether
from scapy.packet import Raw

from ..errors import XDPLabError
from .grading import exercise
from ..programs.prog_run import to_frame

ex = exercise("02", "maps", solution="02-maps/proto_stats.c",
              title="count packets and bytes per IPv4 protocol (per-CPU array)")

MAP = "proto_stats"
NAMES = {1: "ICMP", 6: "TCP", 17: "UDP"}


def _totals(c) -> dict:
    """{protocol: (packets, bytes)} summed over CPUs; a helpful error for other layouts."""
    m = c.map(MAP)
    out = {}
    for k, v in c.map_dict(MAP).items():          # a BCC table or a BTF-typed (libbpf) map
        if not isinstance(v, dict) or not {"packets", "bytes"} <= set(v):
            raise XDPLabError(f"map {m.name}: values are {type(v).__name__}, not "
                              "struct { u64 packets; u64 bytes; }",
                              hint="declare struct pb { u64 packets; u64 bytes; } and "
                                   "BPF_PERCPU_ARRAY(proto_stats, struct pb, 256) (libbpf style: "
                                   "__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY) and __type(value, struct pb) "
                                   "in SEC(\".maps\"))")
        out[k if isinstance(k, int) else next(iter(k.values()))] = (v["packets"], v["bytes"])
    return out


def _delta(after: dict, before: dict) -> dict:
    keys = set(after) | set(before)
    d = {k: tuple(a - b for a, b in zip(after.get(k, (0, 0)), before.get(k, (0, 0)))) for k in keys}
    return {k: v for k, v in d.items() if v != (0, 0)}


def _expect(c, sent: dict, delta: dict, what: str) -> None:
    for proto, (n, size) in sent.items():
        got = delta.get(proto, (0, 0))
        c.that(f"{what}{NAMES[proto]} (protocol {proto}): packets", n, got[0],
               hint="index the array with ip->protocol and add 1 to this CPU's slot")
        c.that(f"{what}{NAMES[proto]} (protocol {proto}): bytes", n * size, got[1],
               hint="add the frame length, data_end - data (Ethernet header included)")
    extra = {NAMES.get(k, k): v for k, v in delta.items() if k not in sent}
    c.that(f"{what}nothing else counted", {}, extra,
           hint="count IPv4 only: check eth->h_proto == htons(ETH_P_IP) first")


@ex.unit
def crafted(c):
    before = _totals(c)
    mix = {1: (3, IP(dst="10.0.0.1") / ICMP()),
           17: (5, IP(dst="10.0.0.1") / UDP(dport=9) / Raw(b"x" * 100)),
           6: (2, IP(dst="10.0.0.1") / TCP(dport=80, flags="S"))}
    for proto, (n, pkt) in mix.items():
        c.packet(f"{NAMES[proto]} passes", pkt, "XDP_PASS", repeat=n)
    for pkt in (IPv6(dst="fc00::1") / UDP(dport=9), Ether(dst="ff:ff:ff:ff:ff:ff") / ARP()):
        c.packet(f"{pkt.lastlayer().name} passes (and is not counted)", pkt, "XDP_PASS", repeat=4)
    sent = {p: (n, len(to_frame(pkt))) for p, (n, pkt) in mix.items()}
    _expect(c, sent, _delta(_totals(c), before), "")


@ex.live
def live(c, host):
    from scapy.layers.inet import IP, UDP
    before = _totals(c)
    host.ping(host.gw4, count=3, interval=0.05)
    udp = IP(src=host.ipv4, dst=host.gw4) / UDP(sport=4242, dport=9) / Raw(b"y" * 50)
    host.send(udp, count=4)
    _expect(c, {1: (3, 98), 17: (4, 14 + len(udp))}, _delta(_totals(c), before), "live: ")
