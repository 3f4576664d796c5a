"""Failure knowledge in one shape (xdplab.failures): verifier/compile explanations, attach
hints, drop causes, missing kernel and driver features are registered rows, found the same
way, and the code that explains a failure asks the table."""
import errno

import pytest

import xdplab
from xdplab import failures
from xdplab.errors import AttachError
from xdplab.kernel import features
from xdplab.net import drivers
from xdplab.programs import explain
from xdplab.tools import drops


def test_every_kind_has_rows_and_each_row_is_registered_once():
    kinds = {r.kind for r in failures.rows()}
    assert {"verifier", "compile", "attach", "drop", "kernel-feature", "driver-feature"} <= kinds
    assert len({id(r) for r in failures.rows()}) == len(failures.rows())
    for r in failures.rows():
        assert r.what or r.fix, f"{r.kind}/{r.key} says nothing"


def test_verifier_rows_are_the_explanation_table():
    assert explain.explain("R1 invalid mem access 'map_value_or_null'").key == "null-map-value"
    assert explain.by_key("packet-bounds") is failures.by_key("packet-bounds", "verifier")
    assert all(any(r is e for r in failures.rows(e.kind)) for e in explain.EXPLANATIONS)
    assert {e.kind for e in explain.EXPLANATIONS} <= {"verifier", "compile"}


def test_drop_causes_are_rows_matched_by_tracepoint_and_errno():
    why = drops.reason("xdp_redirect_err", "REDIRECT", -errno.ENOENT, 0, 0)
    assert why == failures.by_key("redirect-empty-entry", "drop").what
    assert "XDP_ABORTED" in drops.reason("xdp_exception", "ABORTED", 0, 0, 0)
    assert drops.reason("xdp_cpumap_enqueue", "REDIRECT", 0, 0, 3).startswith("cpumap: CPU 3's queue")
    row = failures.find("drop", tp="xdp_bulk_tx", errno=errno.ENXIO, target_kind="veth")
    assert row.key == "veth-peer-no-xdp" and "ensure_peer_program" in row.fix
    assert failures.find("drop", tp="xdp_bulk_tx", errno=errno.ENXIO, target_kind="virtio").key == "no-xdp-ring"


def test_missing_features_advise_from_rows():
    assert failures.find("kernel-feature", feature="live_frames").fix == features.get("live_frames").advice
    assert features.get("live_frames").error().hint.startswith("send with scapy")
    assert "give the PEER an XDP program" in drivers.if_missing("ndo-xmit")


def test_attach_hints_are_rows(topo_factory):
    """The kernel refuses a native attach in the other mode's presence (EEXIST/EBUSY): the hint
    comes from the 'attach' rows."""
    t = topo_factory()
    a = xdplab.load("int pa(struct xdp_md *ctx) { return XDP_PASS; }")
    b = xdplab.load("int pb(struct xdp_md *ctx) { return XDP_PASS; }")
    try:
        a.attach(t["h1"], "generic")
        with pytest.raises(AttachError) as e:
            b.attach(t["h1"].outside, "native", replace=False)
        assert e.value.hint
    finally:
        a.close()
        b.close()
    assert failures.find("attach", errno=errno.EOPNOTSUPP, mode="native").key == "no-native-xdp"
    assert failures.find("attach", errno=errno.EOPNOTSUPP, mode="generic") is None
