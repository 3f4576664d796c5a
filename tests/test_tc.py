"""TC programs (hook="tc", xdplab.programs.tc) on the real kernel: tcx links, XDP metadata read
in TC, the swap on re-run, and refusals."""
from __future__ import annotations

import pytest

import xdplab
from xdplab import AttachError, CompileError
from xdplab import kernel
from xdplab.dev.smoke import META_TC as COUNT_TC, META_XDP as STAMP_XDP      # the matrix runs them too


def test_tc_sees_the_metadata_xdp_wrote(topo):
    h = topo["h1"]
    with xdplab.load(COUNT_TC, hook="tc") as tc:
        link = tc.attach(h.outside, "ingress")
        assert link.mode == "tc-ingress" and tc.attached and "tc-ingress" in repr(tc)
        assert list(tc.maps) == ["seen"]                  # no XDP action counter in TC
        s0 = tc["seen"].to_dict()
        assert h.ping(h.gw4, count=3, interval=0.05) == 3
        s1 = tc["seen"].to_dict()
        assert s1[0] - s0.get(0, 0) >= 3 and s1.get(1, 0) == 0   # no XDP program: no metadata
        with xdplab.load(STAMP_XDP) as xdp:
            xdp.attach(h.outside)
            s1, c0 = tc["seen"].to_dict(), xdp.counters()
            assert h.ping(h.gw4, count=5, interval=0.05) == 5
            passed = (xdp.counters() - c0)["PASS"]
            s2 = tc["seen"].to_dict()
        # with XDP stamping, every skb TC saw carried the metadata: the pings, and any
        # IPv6 control frame that came by meanwhile
        assert s2[1] - s1.get(1, 0) == s2[0] - s1[0] >= 5 and passed >= 5
    assert kernel.xdp_state(h.outside) == {}


def test_rerun_swaps_in_one_link_and_close_detaches(topo):
    h = topo["h1"]
    a = xdplab.load(COUNT_TC, hook="tc")
    b = xdplab.load(COUNT_TC, hook="tc")
    try:
        la = a.attach(h.outside)
        lb = b.attach(h.outside)                          # what a re-run cell does
        assert lb is la and lb.program is b and not a.attached and b.attached
        seen_a = a["seen"].to_dict()[0]                   # (an IPv6 frame may have come by)
        h.ping(h.gw4, count=2, interval=0.05)
        assert b["seen"].to_dict()[0] >= 2 and a["seen"].to_dict()[0] == seen_a
        b.close()
        assert not lb.attached
        h.ping(h.gw4, count=2, interval=0.05)
        assert a["seen"].to_dict()[0] == seen_a            # nothing attached any more
    finally:
        a.close()
        b.close()


def test_tc_errors_are_clear():
    with pytest.raises(CompileError, match="no TC function") as e:
        xdplab.load("int f(struct xdp_md *ctx) { return 2; }", hook="tc")
    assert "__sk_buff" in e.value.hint
    with pytest.raises(CompileError) as e:
        xdplab.load("int f(struct __sk_buff *skb)\n{\n    return nope;\n}", hook="tc")
    assert e.value.line == 3
    with pytest.raises(xdplab.XDPLabError, match="unknown hook"):
        xdplab.load(COUNT_TC, hook="egress")
    with xdplab.load(COUNT_TC, hook="tc") as tc:
        with pytest.raises(AttachError, match="direction"):
            tc.attach("lo", "sideways")
        with pytest.raises(AttachError, match="no interface"):
            tc.attach("xdplab-nope")
        route = sorted(kernel.default_route_ifnames())
        if route:
            with pytest.raises(AttachError, match="default route"):
                tc.attach(route[0])
        assert not tc.attached
