"""Driver XDP features from the netdev genetlink family, checked against what veth, tun
and tap are known to declare (drivers/net/veth.c, drivers/net/tun.c) on the real kernel."""
from __future__ import annotations

import os

import pytest

import xdplab
from xdplab import kernel
from xdplab.net import drivers
from xdplab.net import redirect
from xdplab.errors import NotSupported


@pytest.fixture(autouse=True)
def needs_netdev_family():
    try:
        kernel.netdev_dev_get(1)
    except NotSupported as e:
        pytest.skip(str(e))          # names Linux >= 6.3


def test_veth_flags_both_ends(topo):
    h1 = topo["h1"]
    t = drivers.table([h1])
    outside, inside = t.rows
    assert (outside.ifname, outside.netns) == (h1.outside, None)
    assert (inside.ifname, inside.netns) == (h1.inside, h1.netns)
    for f in (outside, inside):
        assert f.driver == "veth" and f.kind == "veth"
        assert f.basic and f.redirect and f.rx_sg          # veth_set_xdp_features()
        assert not f.xsk_zerocopy and f.has("hw-offload") is False
        assert f.ndo_xmit is False and f.ndo_xmit_sg is False  # no program on either end
        assert {"hash", "timestamp", "vlan-tag"} <= f.rx_metadata
        assert f.rx_queues >= 1 and f.tx_queues >= 1
    html = t._repr_html_()
    assert html.count("<tr>") >= 3 and "\u2714" in html and "\u2718" in html
    assert 'title="ndo-xmit missing: ' in html                 # the tooltip says what to do
    with pytest.raises(KeyError):
        outside.has("warp-drive")


def test_ndo_xmit_follows_the_peer_program(topo):
    h2 = topo["h2"]
    t = redirect.peer_program_effect(h2)
    without, with_peer = t.rows
    assert without.ndo_xmit is False and with_peer.ndo_xmit is True
    assert with_peer.ndo_xmit_sg is True
    assert 'background:#fff3b0' in t._repr_html_()           # the change is highlighted
    assert redirect.peer_programs(h2) == {}                  # removed again
    assert drivers.query(h2).ndo_xmit is False
    # and the redirect check agrees with the flag
    assert "PEER" in redirect.check_target(h2)[0]
    with redirect.ensure_peer_program(h2):
        assert drivers.query(h2).ndo_xmit and redirect.check_target(h2) == []


def test_tun_and_tap():
    tag = f"xt{os.getpid() % 100:02d}"
    with drivers.tuntap(f"{tag}-tap", "tap") as tap, drivers.tuntap(f"{tag}-tun", "tun") as tun:
        ftap, ftun = drivers.query(tap), drivers.query(tun)
        assert ftap.driver == ftun.driver == "tun" and ftap.kind == "tun"
        # tun.c: only IFF_TAP devices declare BASIC | REDIRECT | NDO_XMIT
        assert ftap.xdp == {"basic", "redirect", "ndo-xmit"}
        assert ftun.xdp == frozenset() and ftun.missing()[0].name == "basic"
        # the fallback probe agrees with the flags
        assert drivers.probe_native(tap) is True
        assert drivers.probe_native(tun) is False
        assert kernel.xdp_state(tap) == {} and kernel.xdp_state(tun) == {}
    assert not kernel.ifindex(tap) and not kernel.ifindex(tun)


def test_default_route_device_is_read_only():
    uplinks = sorted(kernel.default_route_ifnames())
    if not uplinks:
        pytest.skip("no interface with a default route here")
    dev = uplinks[0]
    before = kernel.xdp_state(dev)
    f = drivers.query(dev)
    assert f.xdp is not None and f.driver
    assert drivers.probe_native(dev) is None                 # never attached to
    assert kernel.xdp_state(dev) == before
    if f.driver == "virtio_net":
        # virtio_net: native XDP, redirect and multi-buffer RX; ndo-xmit only while a
        # program is attached (its XDP TX queues exist only then)
        assert f.basic and f.redirect and f.rx_sg
        assert f.ndo_xmit == bool(before)


def test_legend_covers_every_flag():
    df = drivers.legend()
    assert set(df.index) == set(drivers.ALL_FLAGS)
    assert all(df.loc[f.name, "when missing"] for f in drivers.XDP_FLAGS)


def test_missing_family_raises_not_supported_naming_the_kernel():
    # a family this kernel does not have: the same path as 'netdev' on Linux < 6.3
    with pytest.raises(NotSupported, match=r"needs Linux >= 6\.3"):
        kernel.netdev_dev_get(1, family="xdplab-nonexistent")


def test_unknown_flags_render_as_unknown():
    msg = "the netdev generic netlink family (XDP feature flags) is not supported here (needs Linux >= 6.3)"
    f = drivers.Features("old0", None, 7, "e1000e", "-", 1, 1, xdp=None, error=msg,
                          probed={"basic": True})
    assert f.has("ndo-xmit") is None and f.basic is True      # the probe filled in 'basic'
    html = drivers.FeatureTable([f])._repr_html_()
    assert "needs Linux &gt;= 6.3" in html and ">?<" in html
    assert "unknown" in repr(f)


def test_tuntap_refuses_an_existing_name(topo):
    with pytest.raises(xdplab.XDPLabError, match="exists already"):
        with drivers.tuntap(topo["h1"].outside):
            pass
    assert topo["h1"].ifindex                                  # still there
