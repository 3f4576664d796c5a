"""The bpf_fib_lookup XDP router (bpf/solutions/09-routing) on a RouterTopology."""
from __future__ import annotations

import time

import pytest

from xdplab.tools import fib_router
from xdplab.net.redirect import ensure_peer_program

from .routing_fixtures import router_factory, router_factory_module  # noqa: F401  (fixtures)


@pytest.fixture(scope="module")
def _routed(router_factory_module):
    t = router_factory_module()
    r = fib_router.load()
    fib_router.install(t, r)
    return t, r


@pytest.fixture
def routed(_routed):
    """h1, h2, h3 behind the XDP router, counters zeroed, forwarding and neighbours as built."""
    t, r = _routed
    for m in ("fib_results", "xdplab_actions"):
        r.maps[m].clear()
    yield t, r
    t.forwarding(True)
    for h in t:
        t.run(f"ip neigh replace {h.ipv4} lladdr {h.mac} dev {h.outside} nud permanent")


def test_h1_reaches_h3_through_xdp_not_through_the_kernel(routed):
    t, r = routed
    h1, h3 = t["h1"], t["h3"]
    fwd0 = t.snmp()["ForwDatagrams"]
    assert h1.ping(h3.ipv4, count=3) == 3
    assert h1.ping(h3.ipv6, count=3) == 3
    c = r.counters()
    assert c["REDIRECT"] >= 12                       # 6 requests + 6 replies, v4 and v6
    assert fib_router.fib_results(r)["SUCCESS"] == c["REDIRECT"]
    assert t.snmp()["ForwDatagrams"] == fwd0         # the kernel forwarded none of them


def test_ttl_decremented_macs_rewritten_checksum_right(routed):
    from scapy.layers.inet import ICMP, IP, UDP
    from scapy.layers.l2 import Ether
    t, _ = routed
    h1, h3 = t["h1"], t["h3"]
    sn = h3.sniffer(lfilter=lambda p: p.haslayer(UDP) and not p.haslayer(ICMP) and p[UDP].dport == 7777)
    time.sleep(0.3)
    h1.send(IP(src=h1.ipv4, dst=h3.ipv4, ttl=17) / UDP(sport=1, dport=7777) / b"hi", count=3)
    time.sleep(0.5)
    got = sn.stop()
    assert len(got) == 3
    p = got[0]
    assert p[IP].ttl == 16
    assert p[Ether].src == h3.gw_mac and p[Ether].dst == h3.mac
    sent_csum = p[IP].chksum
    del p[IP].chksum
    assert IP(bytes(p[IP]))[IP].chksum == sent_csum  # the incremental update is exact


def test_without_the_peer_program_redirected_frames_vanish(router_factory):
    t = router_factory(hosts=("h1", "h2"))
    r = fib_router.load()
    fib_router.install(t, r, peers=False)                 # no XDP on the hosts' veth0
    assert t["h1"].ping(t["h2"].ipv4, count=2, timeout=0.5) == 0
    assert r.counters()["REDIRECT"] >= 2              # the program did its part
    ensure_peer_program(t["h2"])
    ensure_peer_program(t["h1"])
    assert t["h1"].ping(t["h2"].ipv4, count=2) == 2


def test_no_neighbour_falls_back_to_the_kernel(routed):
    t, r = routed
    h1, h3 = t["h1"], t["h3"]
    t.run(f"ip neigh del {h3.ipv4} dev {h3.outside}")
    assert h1.ping(h3.ipv4, count=3) >= 2             # the first one waits for ARP
    res = fib_router.fib_results(r)
    assert res.get("NO_NEIGH", 0) >= 1                # ... passed up, the kernel resolved it
    assert res["SUCCESS"] >= 3                        # later ones took the fast path
    assert h3.mac in t.run(f"ip neigh show {h3.ipv4}").stdout   # learnt by ARP again


def test_forwarding_off_means_fib_lookup_refuses(routed):
    t, r = routed
    t.forwarding(False)
    assert t["h1"].ping(t["h2"].ipv4, count=1, timeout=0.5) == 0
    assert fib_router.fib_results(r).get("FWD_DISABLED", 0) >= 1
    assert r.counters()["REDIRECT"] == 0


def test_expiring_ttl_goes_to_the_kernel(routed):
    from scapy.layers.inet import ICMP, IP, UDP
    t, r = routed
    h1, h3 = t["h1"], t["h3"]
    sn = h1.sniffer(lfilter=lambda p: p.haslayer(ICMP))
    time.sleep(0.3)
    h1.send(IP(src=h1.ipv4, dst=h3.ipv4, ttl=1) / UDP(dport=7777))
    time.sleep(0.5)
    got = sn.stop()
    assert any(p.haslayer(ICMP) and p[ICMP].type == 11 for p in got)   # time exceeded
    assert r.counters()["PASS"] >= 1
