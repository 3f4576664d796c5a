"""The %%xdp magic in a real IPython shell (in this process)."""
import pytest
from IPython.core.interactiveshell import InteractiveShell

from xdplab import kernel
from xdplab.errors import AttachError, CompileError, VerifierError, XDPLabError

pytestmark = pytest.mark.kernel


@pytest.fixture(scope="module")
def ip():
    shell = InteractiveShell.instance()      # one per process (test_explain uses it too)
    shell.run_line_magic("load_ext", "xdplab")
    yield shell
    shell.run_line_magic("unload_ext", "xdplab")


def cell(ip, line, body):
    res = ip.run_cell(f"%%xdp {line}\n{body}")
    return res.error_in_exec


def test_cell_attaches_and_binds_program_and_rerun_swaps(ip, topo):
    h1 = topo["h1"]
    assert cell(ip, f"--dev {h1.outside}", "int first(struct xdp_md *ctx) { return XDP_PASS; }") is None
    prog = ip.user_ns["first"]
    assert kernel.xdp_state(h1.outside) == {"native": prog.id}
    assert cell(ip, f"--dev {h1.outside} --name first", "int first(struct xdp_md *ctx) { return XDP_DROP; }") is None
    new = ip.user_ns["first"]
    assert new is not prog and prog._closed, "the replaced program is released"
    assert kernel.xdp_state(h1.outside) == {"native": new.id}
    assert h1.ping(h1.gw4, count=2, interval=0.05, timeout=0.3) == 0
    new.close()


def test_generic_mode_and_name(ip, topo):
    h2 = topo["h2"]
    assert cell(ip, f"--dev {h2.outside} --mode generic --name g", "int p(struct xdp_md *ctx) { return XDP_PASS; }") is None
    assert kernel.xdp_state(h2.outside) == {"generic": ip.user_ns["g"].id}
    ip.user_ns["g"].close()


@pytest.mark.parametrize("line,body,exc,text", [
    ("--dev {dev}", "int p(struct xdp_md *ctx) { return oops; }", CompileError, "cell line 2"),
    ("--dev {dev}", "int p(struct xdp_md *ctx) {\n  char *d = (void *)(long)ctx->data;\n  return d[3];\n}",
     VerifierError, "line 4"),
    ("--dev xt-nonexistent", "int p(struct xdp_md *ctx) { return XDP_PASS; }", AttachError, "no interface"),
    ("--dev {dev} --mode fast", "int p(struct xdp_md *ctx) { return XDP_PASS; }", AttachError, "unknown XDP mode"),
    ("--frobnicate", "int p(struct xdp_md *ctx) { return XDP_PASS; }", XDPLabError, "unrecognized"),
    ("", "int p(struct xdp_md *ctx) { return XDP_PASS; }", XDPLabError, "which interface"),
])
def test_bad_input_is_a_short_error_and_leaves_nothing_attached(ip, topo, line, body, exc, text):
    dev = topo["h1"].outside
    err = cell(ip, line.format(dev=dev), body)
    assert isinstance(err, exc) and text in str(err)
    assert len(err._render_traceback_()) == 1, "shown as a message, not a traceback"
    assert kernel.xdp_state(dev) == {}


def test_success_says_what_happened_new_link_then_swap(ip, topo, capsys):
    """Issue 14: a successful cell says dialect, function, verified, where, mode, new link
    or swapped (and from what), maps: one line of text here, a card (HTML) in a notebook."""
    h1 = topo["h1"]
    body = "BPF_ARRAY(hits, u64, 1);\nint seen(struct xdp_md *ctx) { return XDP_PASS; }"
    capsys.readouterr()
    assert cell(ip, f"--dev {h1.outside} --mode generic", body) is None
    first = ip.user_ns["seen"]
    out = capsys.readouterr().out
    link = first.links[0]
    assert f"✔ BCC seen() id {first.id}: verified (" in out and " insns" in out, out
    assert f"attached to {h1.outside} (root namespace) in generic mode, new link {link.id}" in out \
        or f"attached to {h1.outside} (lab host" in out, out
    assert "maps: hits" in out and "bound to `seen`" in out, out
    # the dialect and why, once, in the card's line (no separate "xdplab: bcc dialect" line)
    assert "xdplab: bcc dialect" not in out and out.count("no libbpf markers") == 1, out
    assert "bound to `seen`; BCC dialect: no libbpf markers" in out, out
    assert cell(ip, f"--dev {h1.outside} --mode generic", body.replace("XDP_PASS", "XDP_DROP")) is None
    out = capsys.readouterr().out
    second = ip.user_ns["seen"]
    assert f"swapped into link {link.id} (was seen (id {first.id}))" in out, out
    assert f"id {second.id}" in out and second.id != first.id
    from xdplab.ui.cellcard import Card
    html = Card.of(second, "seen", second.links[0], "seen (id 1)")._repr_html_()
    assert "<code>seen()</code>" in html and "swapped into link" in html and "generic mode" in html
    assert cell(ip, "--no-attach --name quiet", "int q(struct xdp_md *ctx) { return XDP_PASS; }") is None
    out = capsys.readouterr().out
    assert "loaded, not attached (--no-attach)" in out and "dialect:" in out, out
    assert cell(ip, "--no-attach --dialect bcc --name forced", "int q(struct xdp_md *ctx) { return XDP_PASS; }") is None
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "bound to `forced`; BCC dialect: --dialect bcc" in out, out
    ip.user_ns["forced"].close()
    ip.user_ns["quiet"].close()
    second.close()
