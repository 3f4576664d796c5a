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
