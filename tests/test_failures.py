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
    from xdplab.net import afxdp, traffic  # noqa: F401  (not imported by `import xdplab`)
    kinds = {r.kind for r in failures.rows()}
    assert {"verifier", "compile", "attach", "drop", "kernel-feature", "driver-feature",
            "libbpf-open", "prog-run", "afxdp", "map-update", "redirect-map", "traffic"} <= kinds
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


def test_no_if_chain_of_failure_knowledge_is_left():
    """Hints chosen by errno are rows: no dict keyed by errno values and no function that
    tells three or more errnos apart (the if/elif chains the rows replaced). The one left:
    the AF_XDP kick's set of errnos that mean "try again" (no hint)."""
    import ast
    from pathlib import Path
    allowed = {("kernel/core.py", "xsk_kick")}
    pkg = Path(xdplab.__file__).parent

    def is_errno(n):
        return isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id == "errno"
    bad = []
    for path in pkg.rglob("*.py"):
        rel = path.relative_to(pkg).as_posix()
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Dict) and sum(map(is_errno, node.keys)) >= 2:
                bad.append(f"{rel}:{node.lineno}: a dict of errno hints")
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and (rel, node.name) not in allowed:
                errnos = {ast.unparse(n) for n in ast.walk(node) if is_errno(n)}
                if len(errnos) >= 3:
                    bad.append(f"{rel}: {node.name} tells {sorted(errnos)} apart")
    assert not bad, "\n".join(bad)


def test_prog_run_hints_are_rows(lo_ifindex=1):
    """The kernel refuses BPF_PROG_RUN (EINVAL) for an RX queue lo does not have and for
    metadata that is not a multiple of 4: the hints come from the 'prog-run' rows."""
    from scapy.layers.inet import ICMP, IP
    from scapy.layers.l2 import Ether
    from xdplab.errors import XDPLabError
    from xdplab.programs import prog_run
    with xdplab.load("int pr(struct xdp_md *ctx) { return XDP_PASS; }") as prog:
        with pytest.raises(XDPLabError, match="BPF_PROG_RUN failed") as e:
            prog_run.run(prog, Ether() / IP() / ICMP(), ingress_ifindex=lo_ifindex, rx_queue=99)
        assert e.value.hint == failures.by_key("run-rx-queue", "prog-run").advice(rx_queue=99)
        with pytest.raises(XDPLabError) as e:
            prog_run.run(prog, Ether() / IP() / ICMP(), meta=b"abc")
        assert e.value.hint == failures.by_key("run-metadata", "prog-run").fix


def test_afxdp_failures_are_rows(topo):
    """A second AF_XDP socket on a queue (EBUSY, for real) and zero-copy on a veth: 'afxdp' rows."""
    from xdplab.net.afxdp import XSK, XSKError
    h = topo["h1"]
    with XSK(h.outside, 0):
        with pytest.raises(XSKError, match="already has an AF_XDP socket") as e:
            XSK(h.outside, 0)
        assert e.value.hint == failures.by_key("xsk-queue-taken", "afxdp").fix
    row = failures.find("afxdp", step="bind", errno=errno.EOPNOTSUPP, zc=True)
    assert row.key == "xsk-no-zerocopy"
    assert failures.find("afxdp", step="bind", errno=errno.EOPNOTSUPP, zc=False) is None


def test_libbpf_open_hints_are_rows():
    """(tests/test_published.py loads a real object with legacy maps and checks the hint.)"""
    assert "load its C source instead" in explain.open_hint("libbpf: legacy map definitions in 'maps' section")
    assert explain.open_hint("libbpf: prog 'x': missing BPF prog type") == \
        failures.by_key("unknown-section", "libbpf-open").fix
    assert failures.find("libbpf-open", log="anything else").key == "bad-object"


def test_map_update_and_redirect_hints_are_rows(topo):
    """The kernel refuses for real: a third key in a hash map of two (E2BIG) and a devmap
    key past max_entries (E2BIG): the hints come from the rows."""
    from xdplab.errors import MapError, XDPLabError
    from xdplab.net import redirect
    from xdplab.programs import typedmaps
    src = ("BPF_HASH(h, u32, u32, 2);\nBPF_DEVMAP(dm, 2);\n"
           "int mu(struct xdp_md *ctx) { u32 k = 0; u32 *v = h.lookup(&k); if (v) *v += 1;\n"
           "  return dm.redirect_map(0, 0); }\n")
    with xdplab.load(src) as prog:
        m = typedmaps.open(prog["h"])
        m[1], m[2] = 1, 2
        with pytest.raises(MapError) as e:
            m[3] = 3
        assert e.value.hint == failures.by_key("map-full", "map-update").advice(
            type=typedmaps.MAP_TYPES.get(m.map_type, m.map_type), name=m.name, max_entries=2, kind=m.kind)
        with pytest.raises(XDPLabError) as e:
            redirect.devmap_set(prog["dm"], 7, topo["h1"], check=False)
        assert e.value.hint == failures.by_key("devmap-key-range", "redirect-map").fix
