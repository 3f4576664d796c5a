"""The drop detector reports silent XDP losses with the right tracepoint, errno and cause."""
from __future__ import annotations

import errno
import time

import pytest
from scapy.all import IP, UDP

import xdplab
from xdplab.tools.drops import DropDetector, available


@pytest.fixture(scope="module")
def detector():
    with DropDetector() as dd:
        yield dd


def _udp(h, n=3):
    h.send(IP(src=h.ipv4, dst=h.gw4) / UDP(sport=1234, dport=9) / (b"x" * 32), count=n)


def _agreed(detector, prog, h, action):
    """(the detector's row for ``h``, the program's ``action`` count), read until they agree:
    a stray frame (IPv6 ND, MLD) can come in between reading one and the other."""
    end = time.monotonic() + 2
    while True:
        n = prog.counters()[action]
        (row,) = [r for r in detector.losses() if r.ifindex == h.ifindex]
        if row.drops == n or time.monotonic() > end:
            return row, n
        time.sleep(0.05)


def test_reads_this_kernels_tracepoints():
    tps = available()
    assert "xdp_exception" in tps and "xdp_bulk_tx" in tps
    assert {"ifindex", "drops", "err", "act"} <= tps["xdp_bulk_tx"]


def test_xdp_tx_into_veth_without_peer_program(topo, detector):
    """Native XDP_TX on the root-side veth: the netns peer has no XDP program, so
    veth_xdp_xmit() has no ring to put the frames in and xdp_bulk_tx reports -ENXIO."""
    h = topo["h1"]
    prog = xdplab.load("int bounce(struct xdp_md *ctx) { return XDP_TX; }")
    prog.attach(h.outside)
    detector.clear()
    _udp(h, 3)
    rows = [r for r in detector.wait(timeout=1.0, min_drops=3) if r.ifindex == h.ifindex]
    assert rows, "silent drop not reported within 1 s"
    (row,) = rows
    assert (row.tracepoint, row.action, row.err) == ("xdp_bulk_tx", "TX", -errno.ENXIO)
    assert "peer has no XDP program" in row.reason
    # the program said TX for every frame (3 UDP, maybe IPv6 ND too): all were lost after it.
    row, tx = _agreed(detector, prog, h, "TX")
    assert row.drops == tx >= 3
    df = detector.summary()
    assert (df[df.ifname == h.outside].errno == "ENXIO").all()
    ev = [e for e in detector.events() if e["ifname"] == h.outside]
    assert ev and ev[-1]["tracepoint"] == "xdp_bulk_tx"
    prog.close()


def test_peer_program_makes_tx_deliver(topo, detector):
    """The fix the detector suggests works: with XDP_PASS on the peer, XDP_TX delivers
    (the peer's program sees the bounced frames) and no loss is reported. Those flushes took
    the detector's cheap way (counted by device address, per CPU), and
    ``losses(all_events=True)`` still names the interface, with the frames sent from every
    CPU (each CPU's counter reads the ifindex itself)."""
    import os
    from xdplab.net import redirect
    h = topo["h1"]
    prog = xdplab.load("int bounce(struct xdp_md *ctx) { return XDP_TX; }")
    prog.attach(h.outside)
    peer = redirect.ensure_peer_program(h)
    cpus, old = sorted(os.sched_getaffinity(0)), os.sched_getaffinity(0)
    try:
        detector.clear()
        before = peer.counters()["PASS"]
        for cpu in cpus:                     # each CPU flushes (veth runs NAPI on the sender's)
            os.sched_setaffinity(0, {cpu})
            _udp(h, 2)
        os.sched_setaffinity(0, old)
        deadline = time.monotonic() + 1
        while peer.counters()["PASS"] - before < 2 * len(cpus) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert peer.counters()["PASS"] - before >= 2 * len(cpus)
        assert [r for r in detector.losses() if r.ifindex == h.ifindex] == []
        rows = detector.losses(all_events=True)
        (row,) = [r for r in rows if r.ifindex == h.ifindex]
        assert (row.tracepoint, row.action, row.drops, row.err) == ("xdp_bulk_tx", "TX", 0, 0)
        assert row.sent >= 2 * len(cpus) and row.events >= len(cpus)
        assert not [r for r in rows if r.tracepoint == "xdp_bulk_tx" and r.ifindex == 0], rows
    finally:
        peer.close()
        prog.close()


def test_aborted_and_empty_devmap_slot(topo, detector):
    h = topo["h1"]
    prog = xdplab.load("BPF_DEVMAP(out, 4);\n"
                       "int redir(struct xdp_md *ctx) { return out.redirect_map(2, 0); }")
    prog.attach(h.outside)
    detector.clear()
    _udp(h, 2)
    rows = [r for r in detector.wait(timeout=1.0, min_drops=2) if r.ifindex == h.ifindex]
    assert [(r.tracepoint, r.action, r.prog_id) for r in rows] == [("xdp_exception", "ABORTED", prog.id)]
    row, aborted = _agreed(detector, prog, h, "ABORTED")
    assert row.drops == aborted >= 2
    assert "bpf_redirect_map" in rows[0].reason
    prog.close()


def test_redirect_into_veth_without_peer_program(topo, detector):
    h1, h2 = topo["h1"], topo["h2"]
    prog = xdplab.load(f"int fwd(struct xdp_md *ctx) {{ return bpf_redirect({h2.ifindex}, 0); }}")
    prog.attach(h1.outside)
    detector.clear()
    _udp(h1, 2)
    rows = [r for r in detector.wait(timeout=1.0, min_drops=2) if r.ifindex == h1.ifindex]
    assert [(r.tracepoint, r.err, r.to) for r in rows] == [("xdp_redirect_err", -errno.EOPNOTSUPP, h2.ifindex)]
    assert "NDO_XMIT" in rows[0].reason
    prog.close()


def test_widget_html_lists_the_loss(topo, detector):
    h = topo["h1"]
    prog = xdplab.load("int bounce(struct xdp_md *ctx) { return XDP_TX; }")
    prog.attach(h.outside)
    detector.programs = [prog]
    detector.clear()
    _udp(h, 1)
    detector.wait(timeout=1.0)
    html = detector._repr_html_()
    assert h.outside in html and "ENXIO" in html and "XDP_TX" in html and "bounce" in html
    detector.programs = []
    prog.close()


def test_program_named_reason_whole_and_event_kept_after_clear(topo, detector):
    """Issue 14: xdp_bulk_tx carries no prog_id; the program attached where the frame came
    in is named (name#id) in summary() and the widget; the notebook view of summary()
    shows the whole reason; after clear() the widget still shows the loss event, timed."""
    import re
    h = topo["h1"]
    prog = xdplab.load("int bouncer(struct xdp_md *ctx) { return XDP_TX; }")
    prog.attach(h.outside)
    detector.clear()
    _udp(h, 2)
    detector.wait(timeout=1.0, min_drops=2)
    df = detector.summary()
    row = df[df.ifname == h.outside]
    assert list(row.program) == [f"bouncer#{prog.id}"], row
    html = df._repr_html_()
    assert row.reason.iloc[0].split(".")[0] in html.replace("&#x27;", "'"), "the reason is cut"
    assert "..." not in html and "…" not in html
    detector.clear()
    html = detector._repr_html_()
    assert "no drops reported since" in html
    kept = html.split("recent loss events", 1)[1]
    assert h.outside in kept and f"bouncer#{prog.id}" in kept and "ENXIO" in kept
    assert re.search(r"\d\d:\d\d:\d\d\.\d{3}", kept), "each kept event shows its time"
    prog.close()


def test_flush_tracepoints_are_probed_raw_where_btf_shows_their_prototype(detector):
    """On this kernel the two flush tracepoints (hit once per bulk of frames sent, lost or
    not) are raw tracepoint probes, with ``ifindex``'s offset in ``struct net_device`` read
    from BTF; the rare ones keep their format files."""
    from xdplab.tools import drops
    assert detector.raw == {"xdp_devmap_xmit", "xdp_bulk_tx"} & set(detector.tracepoints)
    raw, off = drops.raw_capable(list(detector.tracepoints))
    assert raw == detector.raw and off and off % 4 == 0
    assert "xdp_exception" not in detector.raw


def test_a_prototype_btf_does_not_show_keeps_the_format_file(topo, monkeypatch):
    """A kernel whose flush tracepoint has another prototype (older ones had the devmap's map
    first) gets the format-file probe, and the detector reports the same loss through it."""
    from xdplab.tools import drops
    monkeypatch.setitem(drops.RAW_PROTOTYPES, "xdp_bulk_tx",
                        (("struct bpf_map *", "int"), drops.RAW_PROTOTYPES["xdp_bulk_tx"][1]))
    h = topo["h1"]
    prog = xdplab.load("int bounce(struct xdp_md *ctx) { return XDP_TX; }")
    try:
        with DropDetector() as dd:
            assert "xdp_bulk_tx" not in dd.raw and "xdp_bulk_tx" in dd.tracepoints
            prog.attach(h.outside)
            _udp(h, 3)
            rows = [r for r in dd.wait(timeout=1.0, min_drops=3) if r.ifindex == h.ifindex]
            assert [(r.tracepoint, r.err) for r in rows] == [("xdp_bulk_tx", -errno.ENXIO)]
    finally:
        prog.close()
