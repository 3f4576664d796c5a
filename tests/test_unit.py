"""Pure logic: no kernel needed."""
import pytest

from xdplab.programs import explain
from xdplab.errors import CompileError, NotSupported, XDPLabError
from xdplab.ui.magics import parser
from xdplab.programs.maps import Counters
from xdplab.programs.program import Program, numbered
from xdplab.net.topology import Topology


def test_numbered_puts_line_directive_before_every_line_but_continuations():
    out = numbered("a\n#define X 1 \\\n  + 2\nb", "cell").splitlines()
    assert out == ['#line 1 "cell"', "a", '#line 2 "cell"', "#define X 1 \\", "  + 2",
                   '#line 4 "cell"', "b"]


def test_entry_is_first_non_static_xdp_function():
    src = "static int helper(struct xdp_md *c) { return 0; }\nint second(struct xdp_md *ctx) { return 2; }\n"
    assert Program(src).entry == "second"
    assert Program(src, func="helper").entry == "helper"


def test_no_xdp_function_is_a_compile_error_with_hint():
    with pytest.raises(CompileError) as e:
        Program("int x;").entry
    assert "struct xdp_md" in e.value.hint


def test_counting_wrapper_keeps_user_name_as_program_and_inlines_user_function():
    src = Program("int prog(struct xdp_md *ctx)\n{ return XDP_DROP; }").full_source()
    assert "static __always_inline int __xdplab_user_prog(struct xdp_md *ctx)" in src
    assert "return xdplab_count(ctx, __xdplab_user_prog(ctx));" in src
    plain = Program("int prog(struct xdp_md *ctx)\n{ return XDP_DROP; }", count=False).full_source()
    assert "__xdplab_user_prog" not in plain


LOG = """0: R1=ctx() R10=fp0
; void *data = (void *)(long)ctx->data; @ cell:3
0: (61) r1 = *(u32 *)(r1 +0)          ; R1=pkt(r=0)
; return c[5] == 1 ? XDP_DROP : XDP_PASS; @ cell:4
1: (71) r2 = *(u8 *)(r1 +5)
invalid access to packet, off=5 size=1, R1(id=0,off=5,r=0)
R1 offset is outside of the packet
processed 2 insns (limit 1000000) max_states_per_insn 0 total_states 0 peak_states 0 mark_read 0
"""


def test_verifier_log_gives_message_line_and_explanation():
    spec = Program("int p(struct xdp_md *ctx) {\n void *data = 0;\n x;\n return c[5];\n}")
    err = explain.verifier_error(spec, LOG, Exception("Permission denied"))
    assert err.line == 4
    assert "invalid access to packet" in str(err)
    assert err.explanation.key == "packet-bounds"
    assert ">   4 |  return c[5];" in str(err)


def test_compile_error_points_at_cell_line_and_column():
    spec = Program("int p(struct xdp_md *ctx) {\n  return foo;\n}")
    text = "cell:2:10: error: use of undeclared identifier 'foo'\n  return foo;\n         ^\n1 error generated.\n"
    err = explain.compile_error(spec, text)
    assert err.diagnostics == [(2, 10, "error", "use of undeclared identifier 'foo'")]
    assert str(err).startswith("cell line 2: use of undeclared identifier 'foo'")
    assert "|          ^" in str(err)


def test_errors_render_short_in_notebooks():
    e = NotSupported("live frames", "5.18")
    assert "needs Linux >= 5.18" in str(e)
    assert len(e._render_traceback_()) == 1
    e2 = XDPLabError("line one\nline two", hint="do this")
    e2.shown = True
    assert "line two" not in e2._render_traceback_()[0]


def test_magic_parser_rejects_unknown_option_with_usage():
    with pytest.raises(XDPLabError) as e:
        parser().parse_args(["--bogus"])
    assert "usage" in e.value.hint
    a = parser().parse_args(["--dev", "h1", "--mode", "generic", "--no-attach"])
    assert (a.dev, a.mode, a.attach) == ("h1", "generic", False)


def test_counters_subtract_and_index_by_action_name():
    a = Counters({"ABORTED": 0, "DROP": 5, "PASS": 7, "TX": 0, "REDIRECT": 0}, dict.fromkeys(["ABORTED", "DROP", "PASS", "TX", "REDIRECT"], 0))
    b = Counters({"ABORTED": 0, "DROP": 2, "PASS": 7, "TX": 0, "REDIRECT": 0}, dict.fromkeys(["ABORTED", "DROP", "PASS", "TX", "REDIRECT"], 0))
    assert (a - b)["XDP_DROP"] == 3 and (a - b).total == 3


def test_topology_addresses_are_derived_from_the_spec():
    t = Topology(prefix="xq-", net=42)
    h = t["h2"]
    assert (h.netns, h.outside, h.ipv4, h.gw4) == ("xq-h2", "xq-h2", "10.42.2.2", "10.42.2.1")
    assert h.mac == "02:58:4c:2a:02:02" and h.gw_mac == "02:58:4c:2a:02:01"


def test_topology_rejects_names_longer_than_ifnamsiz():
    with pytest.raises(XDPLabError):
        Topology(hosts=("averylonghost",), prefix="prefix-")
