"""The XDP token-bucket policer (bpf/solutions/08-qos) and the fast->slow experiment."""
from __future__ import annotations

import time

import pytest

from xdplab.tools import qos

from .routing_fixtures import router_factory  # noqa: F401  (fixture)


def _pkt(src="10.0.0.1", sport=1000, size=1000):
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether
    p = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / IP(src=src, dst="10.0.0.2") / \
        UDP(sport=sport, dport=9)
    return p / (b"\0" * (size - len(p)))


@pytest.fixture(scope="module")
def policer():
    p = qos.load_policer()
    yield p
    p.close()


@pytest.fixture
def pol(policer):
    qos.reset(policer)
    policer.maps["xdplab_actions"].clear()
    return policer


def test_over_rate_is_dropped_after_the_burst(pol):
    qos.configure(pol, rate="1mbit", burst=10_000)
    r = pol.run(_pkt(), repeat=1000)              # 1000 x 1000 B in well under a millisecond
    c = pol.counters()
    assert r.action == "XDP_DROP"
    assert 10 <= c["PASS"] <= 11                  # the bucket (10 kB) + at most ~100 us of refill
    assert c["DROP"] == 1000 - c["PASS"]
    row = qos.flows(pol).iloc[0]
    assert (row["src"], row["sport"], row["passed"], row["dropped"]) == ("10.0.0.1", 1000, c["PASS"], c["DROP"])


def test_under_rate_passes(pol):
    qos.configure(pol, rate="8mbit", burst=1500)   # 1 MB/s: 10 kB refill per 10 ms
    for _ in range(20):
        assert pol.run(_pkt()).action == "XDP_PASS"
        time.sleep(0.01)                           # sleeping longer only adds tokens
    assert pol.counters()["DROP"] == 0


def test_flows_have_buckets_of_their_own(pol):
    qos.configure(pol, rate="1mbit", burst=3000)
    pol.run(_pkt(sport=1), repeat=100)
    pol.run(_pkt(sport=2), repeat=100)
    pol.run(_pkt(src="10.0.0.9"), repeat=100)
    f = qos.flows(pol)
    assert len(f) == 3 and list(f["passed"]) == [3, 3, 3]


def test_rate_zero_means_off_and_config_reads_back(pol):
    assert qos.configure(pol, rate="20mbit", burst="64kb") == {"rate_bps": 20_000_000, "burst_bytes": 65536}
    qos.configure(pol, rate=0)
    pol.run(_pkt(), repeat=500)
    assert pol.counters()["DROP"] == 0 and len(qos.flows(pol)) == 0


def test_non_ip_passes(pol):
    from scapy.layers.l2 import ARP, Ether
    qos.configure(pol, rate=1, burst=1)
    arp = Ether(src="02:00:00:00:00:01", dst="ff:ff:ff:ff:ff:ff") / ARP(hwsrc="02:00:00:00:00:01", psrc="10.0.0.1", pdst="10.0.0.2")
    assert pol.run(arp, repeat=10).action == "XDP_PASS"


def test_fast_to_slow_tbf_shapes_the_kernel_path_only_the_policer_polices_xdp(router_factory):
    t = router_factory(hosts=("h1", "h2"))
    with qos.FastSlow(t, rate="10mbit", offered="80mbit") as exp:
        kernel = exp.run("kernel", seconds=1)
        xdp = exp.run("xdp", seconds=1)
        policed = exp.run("policed", seconds=1)
    # kernel forwarding: every frame met tbf, which dropped the excess
    assert kernel.qdisc["drops"] > 0 and kernel.delivered_packets < kernel.sent
    # XDP_REDIRECT goes to the driver's ndo_xdp_xmit: no qdisc, nothing shaped, nothing lost.
    # (The router namespace's own stack may still send a stray IPv6 ND/MLD packet through the
    # qdisc meanwhile: "none of the experiment's frames" is < 1% of them, not exactly 0.)
    stray = lambda run: run.sent // 100
    # Those strays are delivered too: every frame is accounted for, exactly.
    passed_tbf = lambda run: run.qdisc["packets"] - run.qdisc["drops"]
    assert xdp.qdisc["packets"] <= stray(xdp) and xdp.qdisc["drops"] == 0
    assert xdp.delivered_packets == xdp.sent + passed_tbf(xdp)
    # the policer drops the excess in XDP, before the redirect
    assert policed.xdp_drops > 0 and policed.qdisc["packets"] <= stray(policed)
    assert policed.delivered_packets + policed.xdp_drops == policed.sent + passed_tbf(policed)
