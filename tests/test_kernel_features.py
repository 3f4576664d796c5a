"""The kernel feature registry (xdplab.kernel.features): probed on this kernel, cached, and
the NotSupported it raises names the feature and the minimum version; doctor, the smoke
suite and the labs' graders read the same table."""
import pytest

from xdplab.errors import NotSupported
from xdplab.kernel import features
from xdplab.ui import doctor


def test_every_feature_has_a_version_a_title_and_a_way_to_probe():
    for f in features.FEATURES.values():
        assert f.title and f.how
        assert tuple(map(int, f.min_kernel.split("."))) > (3, 0), f.name
        if f.probe_name:
            assert f.probe_name in features.PROBES, f"{f.name}: probe {f.probe_name!r} not registered"


def test_probes_answer_on_this_kernel_and_are_cached(monkeypatch):
    features.clear_cache()
    rows = {r["feature"]: r for r in features.table()}
    # this machine (6.18): everything the lab uses is here
    for name in ("bpf_link_xdp", "live_frames", "netdev_genl", "tcx", "afxdp", "xdp_tracepoints",
                 "printk_event", "enable_stats"):
        assert rows[name]["present"], rows[name]
    calls = []
    monkeypatch.setitem(features.PROBES, "live_frames", lambda: calls.append(1) or "no")
    assert features.have("live_frames") and not calls          # cached: the probe does not run again
    features.clear_cache()
    assert not features.have("live_frames") and calls == [1]
    features.clear_cache()


def test_require_raises_not_supported_with_the_version(monkeypatch):
    monkeypatch.setitem(features.PROBES, "live_frames", lambda: "this kernel is 5.10")
    features.clear_cache()
    try:
        with pytest.raises(NotSupported) as e:
            features.require("live_frames")
        assert e.value.min_kernel == "5.18" and "needs Linux >= 5.18" in str(e.value)
        assert "this kernel is 5.10" in str(e.value) and e.value.hint     # the advice
        assert features.skip_message("live_frames").startswith("needs Linux >= 5.18")
        # the code that needs it asks the registry: the traffic generator refuses the same way
        from xdplab.net import traffic
        with pytest.raises(NotSupported, match="5.18"):
            traffic.require_live_frames()
        assert not traffic.supported()
    finally:
        features.clear_cache()


def test_version_features_compare_the_release(monkeypatch):
    monkeypatch.setattr(features, "kernel_release", lambda: (6, 1))
    features.clear_cache()
    try:
        assert not features.have("tcx") and features.have("bpf_link_xdp")
        assert "needs Linux >= 6.6" in features.skip_message("tcx")
    finally:
        features.clear_cache()


def test_doctor_reports_the_registry(monkeypatch):
    features.clear_cache()
    assert doctor.check_kernel_features().status == doctor.PASS
    monkeypatch.setattr(features, "kernel_release", lambda: (6, 1))
    features.clear_cache()
    try:
        c = doctor.check_kernel_features()
        assert c.status == doctor.WARN and "tcx needs Linux >= 6.6" in c.detail
    finally:
        features.clear_cache()


def test_unknown_feature_is_a_key_error_listing_the_known_ones():
    with pytest.raises(KeyError, match="live_frames"):
        features.require("warp_drive")
