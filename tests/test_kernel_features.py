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
        if f.kind == "kernel":          # the others (system, driver, limit) have no release
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


# --- every NotSupported comes from the registry (a scan of the source) ---------------------

import ast
from pathlib import Path

import xdplab  # noqa: F401  (the floors above the kernel register their features at import)

PKG = Path(xdplab.__file__).resolve().parent
#: calls that name a feature: features.require("x"), kernel.features.error("x"), c.needs("x", ...),
#: memory.require("x") and the test helpers' skip_message("x")
_NAMING = {"require", "have", "missing", "error", "skip_message", "get", "needs"}


def _feature_calls():
    """(file, line, what) for every NotSupported(...) built outside the registry and every
    call naming a feature that is not registered."""
    bad, named = [], []
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG.parent)
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Call):
                continue
            f = node.func
            name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""
            if name == "NotSupported" and rel.as_posix() != "xdplab/kernel/features.py":
                bad.append(f"{rel}:{node.lineno} builds NotSupported itself")
            if name not in _NAMING or not isinstance(f, ast.Attribute) or not node.args:
                continue
            owner = ast.unparse(f.value)
            first = node.args[0]
            if not (isinstance(first, ast.Constant) and isinstance(first.value, str)):
                continue
            if owner.endswith("features") or (name == "needs") or (owner == "memory" and name == "require"):
                named.append((f"{rel}:{node.lineno}", first.value))
    return bad, named


def test_every_not_supported_comes_from_the_feature_registry():
    bad, named = _feature_calls()
    assert not bad, "\n".join(bad)
    unknown = [f"{where} names {n!r}" for where, n in named if n not in features.FEATURES]
    assert not unknown, "\n".join(unknown)
    # the scan sees the raise sites (not a vacuous pass): kernel, programs, net and tools floors
    floors = {where.split("/")[1] for where, _ in named}
    assert {"kernel", "programs", "net", "tools", "labs"} <= floors, floors
    assert len(named) >= 20, named


def test_every_feature_says_what_it_needs_and_what_to_do():
    for f in features.FEATURES.values():
        assert f.kind in ("kernel", "system", "driver", "limit"), f.name
        if f.kind == "kernel":
            assert f.min_kernel, f.name
        err = f.error("why", what=f"{f.title} here")
        assert isinstance(err, NotSupported) and err.feature_name == f.name
        assert str(err).startswith(f"{f.title} here is not supported here")
        if f.min_kernel:
            assert f"needs Linux >= {f.min_kernel}" in str(err)
    assert features.get("xskmap_reads").error().hint.startswith("set entries")


def test_table_and_doctor_list_only_what_can_be_probed_here():
    names = {r["feature"] for r in features.table()}
    assert {"libbpf", "afxdp_rings", "page_pool_netlink", "xdp_frags"} <= names     # system + kernel
    assert not names & {"afxdp_zerocopy", "xskmap_reads", "libbpf_hooks"}            # per device / never
    assert not features.have("xskmap_reads")


def test_probes_of_this_machine():
    """The real probes: libbpf.so.1 (./lab setup), x86 rings, page pools over netlink (6.8+);
    page-pool stats need CONFIG_PAGE_POOL_STATS, which Debian's kernel leaves out: doctor
    says so without a warning."""
    features.clear_cache()
    try:
        assert features.have("libbpf") and features.have("afxdp_rings")
        assert features.have("page_pool_netlink")            # 6.18
        stats = features.missing("page_pool_stats")
        from xdplab.kernel import core
        if stats is None:
            core.page_pool_dump(stats=True)
        else:
            assert "CONFIG_PAGE_POOL_STATS" in stats
            with pytest.raises(NotSupported, match="CONFIG_PAGE_POOL_STATS") as e:
                core.page_pool_dump(stats=True)
            assert e.value.feature_name == "page_pool_stats"
            c = doctor.check_kernel_features()
            assert c.status == doctor.PASS and "page_pool_stats: CONFIG_PAGE_POOL_STATS" in c.detail
    finally:
        features.clear_cache()


def test_a_driver_feature_raises_from_the_registry(topo):
    """AF_XDP zero-copy on a veth (its driver has none): the registry's row, with the device."""
    from xdplab.net import afxdp
    with pytest.raises(NotSupported, match="AF_XDP zero-copy on .*veth") as e:
        afxdp.XSK(topo["h1"].outside, 0, mode="zerocopy")
    assert e.value.feature_name == "afxdp_zerocopy" and "mode='copy'" in e.value.hint


def test_no_kernel_version_is_written_inline_in_a_message():
    """Versions live in the registry: no string (docstrings and comments aside) outside it says
    'needs >= 6.8' or 'Linux >= 5.18' by itself."""
    import re
    pat = re.compile(r"(Linux|needs|kernel)\s*>=?\s*\d+\.\d+")
    bad = []
    for path in sorted(PKG.rglob("*.py")):
        if path.name == "features.py" and path.parent.name == "kernel":
            continue
        tree = ast.parse(path.read_text())
        docs = {id(n.body[0].value) for n in ast.walk(tree)
                if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                and n.body and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
        for n in ast.walk(tree):
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docs and pat.search(n.value):
                bad.append(f"{path.relative_to(PKG.parent)}:{n.lineno}: {n.value[:80]!r}")
    assert not bad, "\n".join(bad)
