"""Lab 08 exercise: the token bucket of a per-flow XDP policer."""
import time

from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, Ether

from .grading import exercise
from ..tools.qos import configure, reset
from ..tools.qos import flows

ex = exercise("08", "qos", solution="08-qos/xdp_policer.c", func="xdp_policer",
              title="a per-flow token-bucket policer (rate and burst from policer_config)")


def _pkt(src="10.0.0.1", sport=1000, size=1000):
    p = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / IP(src=src, dst="10.0.0.2") / \
        UDP(sport=sport, dport=9)
    return p / (b"\0" * (size - len(p)))


def _setup(c, rate_bytes, burst):
    configure(c.prog, rate_bytes * 8, burst)
    reset(c.prog)


def _drops(c, fn):
    before = c.prog.counters()
    fn()
    d = c.prog.counters() - before
    return d["PASS"], d["DROP"]


@ex.unit
def crafted(c):
    _setup(c, 125_000, 10_000)                     # 1 Mbit/s, a 10 kB bucket
    passed, dropped = _drops(c, lambda: c.packet("a flood ends in drops", _pkt(), "XDP_DROP", repeat=1000,
                                                 hint="drop when the bucket has fewer tokens than the packet's bytes"))
    c.that("a new flow starts with a full bucket: 10 x 1000 B pass", "10 or 11", passed,
           ok=passed in (10, 11), hint="initialise a new flow's tokens to burst (in your units), last_ns to now")
    c.that("... and the rest of the flood is dropped", "989 or 990", dropped,
           ok=passed in (10, 11) and dropped == 1000 - passed)

    _setup(c, 1_000_000, 1500)                     # 8 Mbit/s: 10 kB of tokens per 10 ms
    ok = 0
    for _ in range(10):
        ok += c.prog.run(_pkt()).action == "XDP_PASS"
        time.sleep(0.01)
    c.that("under the rate (1000 B every 10 ms at 8 Mbit/s): all pass", 10, ok,
           hint="refill: tokens += elapsed_ns * rate, capped at the burst")

    _setup(c, 125_000, 3000)
    for pkt in (_pkt(sport=1), _pkt(sport=2), _pkt(src="10.0.0.9")):
        c.prog.run(pkt, repeat=50)
    f = flows(c.prog)
    c.that("three flows, three buckets of 3 packets each", [3, 3, 3], sorted(f["passed"].tolist()),
           hint="key policer_flows by the 5-tuple (addresses, ports, protocol)")

    _setup(c, 0, 0)
    passed, dropped = _drops(c, lambda: c.prog.run(_pkt(), repeat=200))
    c.that("rate 0 = not configured: everything passes", 0, dropped)
    _setup(c, 1, 1)
    c.packet("ARP is not policed", Ether(src="02:00:00:00:00:01", dst="ff:ff:ff:ff:ff:ff") /
             ARP(hwsrc="02:00:00:00:00:01", psrc="10.0.0.1", pdst="10.0.0.2"), "XDP_PASS", repeat=5)
    c.packet("IPv6 is not policed (this policer is IPv4 only)", IPv6(dst="fc00::1") / UDP(dport=9),
             "XDP_PASS", repeat=5)
