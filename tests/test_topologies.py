"""RouterTopology (a router netns between hosts) and tbf shaping, on the real kernel."""
from __future__ import annotations

import pytest

from xdplab.net import topology
from xdplab.net.router_topology import RouterTopology, parse_rate, parse_size

from .routing_fixtures import router_factory  # noqa: F401  (fixture)


def _root_forwarding():
    return [open(f"/proc/sys/net/{p}").read() for p in
            ("ipv4/ip_forward", "ipv4/conf/all/forwarding", "ipv6/conf/all/forwarding")]


def test_hosts_reach_each_other_through_the_kernel_router(router_factory):
    before = _root_forwarding()
    t = router_factory()
    h1, h2, h3 = t["h1"], t["h2"], t["h3"]
    fwd0 = t.snmp()["ForwDatagrams"]
    assert h1.ping(h3.ipv4, count=2) == 2
    assert h3.ping(h2.ipv4, count=2) == 2
    assert h1.ping(h2.ipv6, count=2) == 2
    assert t.snmp()["ForwDatagrams"] - fwd0 >= 8          # both directions, IPv4 only
    # the router is a netns of its own: nothing of it in the root namespace
    assert topology.leftovers(t.prefix)["links"] == []
    assert _root_forwarding() == before
    assert all(h.ifindex for h in t) and t.is_up()


def test_forwarding_is_the_routers_switch(router_factory):
    t = router_factory(hosts=("h1", "h2"))
    t.forwarding(False)
    assert not t.forwarding()
    assert t["h1"].ping(t["h2"].ipv4, count=1, timeout=0.5) == 0
    assert t["h1"].ping(t["h1"].gw4, count=1) == 1           # the router itself still answers
    t.forwarding(True)
    assert t["h1"].ping(t["h2"].ipv4, count=1) == 1


def test_up_is_idempotent_and_down_removes_everything(router_factory):
    t = router_factory(hosts=("h1", "h2"))
    ifindexes = [h.ifindex for h in t]
    t.up()
    assert [h.ifindex for h in t] == ifindexes               # nothing rebuilt
    removed = t.down()
    assert f"netns {t.router}" in removed
    assert topology.leftovers(t.prefix) == {"netns": [], "links": []}
    assert not t.is_up()


def test_shaped_link_queues_and_drops_the_kernel_path(router_factory):
    from scapy.layers.inet import IP, UDP
    from xdplab.tools import fib_router
    t = router_factory(hosts=("h1", "h2"))
    st0 = t.shape("h2", "10mbit", burst="10kb", latency_ms=5)
    assert st0["kind"] == "tbf"
    h1, h2 = t["h1"], t["h2"]
    passer = fib_router.load(fib_router.PASS_SOURCE)
    t.attach(passer, "h1")                        # the generator's frames need XDP on the peer
    n = 3000                                      # 3 MB at line rate into a 10 Mbit/s link
    with fib_router.generator(IP(src=h1.ipv4, dst=h2.ipv4) / UDP(dport=9) / (b"x" * 972), h1) as g:
        g.run(n, progress=False)
    st = {k: v - st0[k] if k != "kind" else v for k, v in t.qdisc_stats("h2").items()}
    assert st["drops"] > 0, st                    # tbf limit: 10 kB + 5 ms x 10 Mbit/s
    assert st["packets"] < n
    assert st["packets"] + st["drops"] + st["qlen"] >= n    # every frame met the qdisc
    t.unshape("h2")
    assert t.qdisc_stats("h2")["kind"] != "tbf"


def test_units():
    assert parse_rate("10mbit") == 10_000_000
    assert parse_rate("1.5gbit") == 1_500_000_000
    assert parse_rate("1mbps") == 8_000_000                   # tc: bps = bytes per second
    assert parse_rate(2e6) == 2_000_000
    assert parse_size("16kb") == 16384 and parse_size(1500) == 1500
    with pytest.raises(Exception):
        parse_rate("fast")


def test_names_fit_ifnamsiz():
    with pytest.raises(Exception):
        RouterTopology(prefix="x" * 14)


def test_attach_inside_namespaces_with_equal_ifindexes(router_factory):
    """Every host's veth0 has the same ifindex (each in its own netns): the process's
    link table must tell them apart (it is keyed by netns too)."""
    import xdplab
    from xdplab import kernel
    t = router_factory(hosts=("h1", "h2"))
    idx = [kernel.run_in_netns(h.netns, kernel.ifindex, h.inside) for h in t]
    prog = xdplab.load("int xdp_pass(struct xdp_md *ctx) { return XDP_PASS; }")
    links = [t.attach_host(prog, h) for h in t.hosts]
    assert links[0] is not links[1] and all(l.attached for l in links), (idx, links)
    for h in t:
        assert kernel.run_in_netns(h.netns, kernel.xdp_state, h.inside) == {"native": prog.id}
    assert t.detach() >= 2
    assert all(not kernel.run_in_netns(h.netns, kernel.xdp_state, h.inside) for h in t)
    prog.close()


def test_router_topology_keeps_apart_from_the_default_lab():
    from xdplab.net.topology import DEFAULT_PREFIX, Topology
    r, d = RouterTopology(), Topology()
    assert r.prefix == f"{DEFAULT_PREFIX}r" and r.router == f"{DEFAULT_PREFIX}rrt"
    assert not {h.netns for h in r} & {h.netns for h in d}
    assert r.state_file != d.state_file
