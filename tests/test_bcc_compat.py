"""BCC-dialect programs as published (issue 13): kernel headers next to the prelude, macros
in cflags, macro-declared maps, --cflags/-I, and counters that never read zero silently.

tests/corpus_bcc/ holds programs in the style of BCC's examples/networking/xdp/*.py; each
is loaded unchanged with the cflags its example passes, attached, and checked on real
packets."""
from __future__ import annotations

import warnings
from pathlib import Path

import pytest
from scapy.all import ICMP, IP, Dot1Q, Ether

import xdplab
from xdplab.net import redirect
from xdplab.programs.bcccompat import CountingWarning
from xdplab.errors import CountersUnavailable, UsageError

pytestmark = pytest.mark.kernel

CORPUS = Path(__file__).resolve().parent / "corpus_bcc"
PER_IP = ["-w", "-DCTXTYPE=xdp_md", '-DMAPTYPE="percpu_array"']   # what the examples pass


def corpus(name: str, cflags) -> xdplab.programs.program.XDPProgram:
    with warnings.catch_warnings():
        warnings.simplefilter("error", CountingWarning)        # the wrapper must wrap
        return xdplab.Program.from_file(CORPUS / name, cflags=cflags).load()


def total(m, key) -> int:
    return m.to_dict(sum_cpus=True)[key]


def test_xdp_drop_count_drops_counts_per_protocol_and_is_counted(topo):
    h1 = topo["h1"]
    with corpus("xdp_drop_count.c", [*PER_IP, "-DRETURNCODE=XDP_DROP"]) as prog:
        assert "dropcnt" in prog.maps              # BPF_TABLE(MAPTYPE, ...) is found
        prog.attach(h1.outside)
        assert h1.ping(h1.gw4, count=5, interval=0.05) == 0
        prog.detach()
        assert total(prog["dropcnt"], 1) >= 5      # IPPROTO_ICMP
        # the counting wrapper wrapped `int xdp_prog1(struct CTXTYPE *ctx)`: every frame
        # the program saw is counted once, as XDP_DROP
        c = prog.counters()
        assert c["DROP"] == sum(prog["dropcnt"].to_dict(sum_cpus=True).values()) >= 5
        assert c.total == c["DROP"]


def test_xdp_macswap_count_sends_frames_back(topo):
    h1 = topo["h1"]
    with corpus("xdp_macswap_count.c", [*PER_IP, "-DRETURNCODE=XDP_TX"]) as prog:
        peer = redirect.ensure_peer_program(h1)    # a veth takes XDP_TX only with a peer program
        try:
            prog.attach(h1.outside)
            before = peer.counters()["PASS"]
            assert h1.ping(h1.gw4, count=5, interval=0.05) == 0    # the request comes back
            prog.detach()
            assert peer.counters()["PASS"] - before >= 5
            assert prog.counters()["TX"] >= 5 and total(prog["dropcnt"], 1) >= 5
        finally:
            redirect.remove_peer_program(h1)


def test_xdp_redirect_map_redirects_to_the_devmap_entry(topo):
    h1, h2 = topo["h1"], topo["h2"]
    with corpus("xdp_redirect_map.c", ["-w"]) as prog:
        assert prog.name == "xdp_redirect_map"     # the first function; xdp_dummy is there too
        peer = redirect.ensure_peer_program(h2)
        try:
            redirect.devmap_set(prog["tx_port"], 0, h2)
            prog.attach(h1.outside)
            before = peer.counters()["PASS"]
            h1.ping(h2.ipv4, count=5, interval=0.05)
            prog.detach()
            assert peer.counters()["PASS"] - before >= 5           # arrived in h2
            assert prog.counters()["REDIRECT"] >= 5
            assert total(prog["rxcnt"], 0) == prog.counters()["REDIRECT"]
        finally:
            redirect.remove_peer_program(h2)


def test_xdp_redirect_cpu_passes_through_the_cpumap(topo):
    h1 = topo["h1"]
    with corpus("xdp_redirect_cpu.c", ["-w", "-D__MAX_CPU__=2"]) as prog:
        redirect.cpumap_set(prog["cpumap"], 0, qsize=192)
        prog["dest"][0] = 0
        prog.attach(h1.outside)
        assert h1.ping(h1.gw4, count=5, interval=0.05) == 5     # CPU 0 builds the skb: replies
        prog.detach()
        assert prog.counters()["REDIRECT"] >= 5
        assert total(prog["rxcnt"], 0) == prog.counters()["REDIRECT"]


VLAN_HEADER = """\
#pragma once
struct vlan_hdr {               /* as headers people carry define it */
    __be16 h_vlan_TCI;
    __be16 h_vlan_encapsulated_proto;
};
static __always_inline int vlan_id(struct vlan_hdr *v) { return bpf_ntohs(v->h_vlan_TCI) & 0xfff; }
"""

VLAN_PROG = """\
#include "parsing.h"
int drop_vlan7(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data, *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    struct vlan_hdr *v = (void *)(eth + 1);
    if ((void *)(v + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_8021Q))
        return XDP_PASS;
    return vlan_id(v) == 7 ? XDP_DROP : XDP_PASS;
}
"""


def tagged(vid):
    return Ether() / Dot1Q(vlan=vid) / IP(dst="10.0.0.1") / ICMP()


def test_a_carried_header_with_struct_vlan_hdr_does_not_clash(tmp_path):
    (tmp_path / "parsing.h").write_text(VLAN_HEADER)
    with xdplab.load(VLAN_PROG, include_dirs=[tmp_path]) as prog:        # -I
        assert prog.run(tagged(7)).action == "XDP_DROP"
        assert prog.run(tagged(8)).action == "XDP_PASS"
    (tmp_path / "prog.c").write_text(VLAN_PROG)                          # next to the file
    with xdplab.Program.from_file(tmp_path / "prog.c").load() as prog:
        assert prog.run(tagged(7)).action == "XDP_DROP"


def test_prelude_vlan_hdr_still_there_and_source_may_define_its_own():
    uses = VLAN_PROG.replace('#include "parsing.h"\n', "").replace(
        "vlan_id(v)", "(bpf_ntohs(v->h_vlan_TCI) & 0xfff)")
    with xdplab.load(uses) as prog:                         # the prelude's struct vlan_hdr
        assert prog.run(tagged(7)).action == "XDP_DROP"
    own = VLAN_HEADER.replace("#pragma once\n", "") + VLAN_PROG.replace('#include "parsing.h"\n', "")
    with xdplab.load(own) as prog:
        assert prog.run(tagged(7)).action == "XDP_DROP"


def test_maps_declared_through_macros_are_found():
    src = """
#define MYMAP(n) BPF_HASH(n, u32, u32)
BPF_TABLE ( "hash" , u32 , u64 , spaced , 16 ) ;
BPF_TABLE(MAPTYPE, u32, long, viamacro, 4);
BPF_ARRAY(
    multi,
    u64,
    2);
MYMAP(wrapped);
int uses(struct xdp_md *ctx)
{
    u32 k = 1;
    long *v = viamacro.lookup(&k);
    u64 *m = multi.lookup(&k);
    u64 one = 1;
    u32 w = 3;
    spaced.update(&k, &one);
    wrapped.update(&k, &w);
    if (v && m)
        *m = *v;
    return XDP_PASS;
}
"""
    with xdplab.load(src, cflags='-DMAPTYPE="array"') as prog:
        assert {"spaced", "viamacro", "multi", "wrapped", "xdplab_actions"} <= set(prog.maps)
        prog["viamacro"][1] = 41
        assert prog.run(Ether() / IP() / ICMP()).action == "XDP_PASS"
        assert prog["multi"].to_dict()[1] == 41
        assert prog["spaced"].to_dict() == {1: 1} and prog["wrapped"].to_dict() == {1: 3}


def test_a_function_the_wrapper_cannot_wrap_is_said_not_zero():
    src = ("#define XDP_FN(name) int name(struct xdp_md *ctx)\n"
           "XDP_FN(drop_all) { return XDP_DROP; }\n")
    with pytest.warns(CountingWarning, match="drop_all: not counted"):
        prog = xdplab.load(src, func="drop_all")
    with prog:
        assert prog.run(Ether() / IP() / ICMP()).action == "XDP_DROP"
        assert "NOT COUNTED" in repr(prog) and "not counted" in prog._repr_html_()
        with pytest.raises(CountersUnavailable, match="drop_all has no action counters"):
            prog.counters()
    with pytest.raises(UsageError, match=r"capture=True: the counting wrapper found no `int drop_all"):
        xdplab.load(src, func="drop_all", capture=True)             # refused before compiling
    # count=False and nothing that counts: no zeros either
    with xdplab.load("int quiet(struct xdp_md *ctx) { return XDP_DROP; }", count=False) as prog:
        with pytest.raises(CountersUnavailable, match="count=False"):
            prog.counters()


def test_func_with_a_ctx_macro_is_wrapped_and_counted():
    src = ("int first(struct xdp_md *ctx) { return XDP_PASS; }\n"
           "int f(struct CTXTYPE *ctx) { return XDP_DROP; }\n")
    spec = xdplab.Program(src, func="f", cflags=["-DCTXTYPE=xdp_md"])
    assert spec.count_problem() is None
    assert "__xdplab_user_f(struct CTXTYPE *ctx)" in spec.full_source()
    with warnings.catch_warnings():
        warnings.simplefilter("error", CountingWarning)
        prog = spec.load()
    with prog:
        prog.run(Ether() / IP() / ICMP(), repeat=3)
        assert prog.counters()["DROP"] == 3


def test_bad_cflags_and_include_dirs_are_refused_before_anything(tmp_path):
    assert xdplab.Program("x", cflags="-DA=1 -w").cflags == ("-DA=1", "-w")
    assert xdplab.Program("x", cflags='-DM="a b" -w').cflags == ('-DM="a b"', "-w")   # C strings stay
    assert xdplab.Program("x", cflags=["-DA=1"]).cflags == ("-DA=1",)
    with pytest.raises(UsageError, match="cflags 5 is not a string"):
        xdplab.Program("x", cflags=5)
    with pytest.raises(UsageError, match="no closing quotation"):
        xdplab.Program("x", cflags='-DA="1')
    with pytest.raises(UsageError, match="include directory '/nonexistent-xdplab' does not exist"):
        xdplab.load("int p(struct xdp_md *ctx) { return XDP_PASS; }", include_dirs=["/nonexistent-xdplab"])


@pytest.fixture(scope="module")
def ip():
    from IPython.core.interactiveshell import InteractiveShell
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "xdplab")
    yield shell
    shell.run_line_magic("unload_ext", "xdplab")


def test_magic_takes_cflags_and_include_dirs(ip, tmp_path):
    (tmp_path / "ret.h").write_text("#define VERDICT RET\n")
    body = '#include "ret.h"\nint cf(struct CTXTYPE *ctx) { return VERDICT; }\n'
    res = ip.run_cell(f'%%xdp --no-attach --cflags "-DRET=XDP_DROP -DCTXTYPE=xdp_md" -I {tmp_path}\n{body}')
    assert res.error_in_exec is None
    prog = ip.user_ns["cf"]
    try:
        assert prog.spec.cflags == ("-DRET=XDP_DROP", "-DCTXTYPE=xdp_md")
        prog.run(Ether() / IP() / ICMP(), repeat=2)
        assert prog.counters()["DROP"] == 2
    finally:
        prog.close()
    res = ip.run_cell(f'%%xdp --no-attach -I /nonexistent-xdplab\n{body}')
    assert isinstance(res.error_in_exec, UsageError)


def test_published_example_in_a_cell_with_its_cflags(ip, topo):
    """BCC's xdp_drop_count C pasted into %%xdp unchanged; its Python's cflags on the line."""
    h1 = topo["h1"]
    body = (CORPUS / "xdp_drop_count.c").read_text()
    line = (f"--dev {h1.outside} --cflags '-w -DRETURNCODE=XDP_DROP -DCTXTYPE=xdp_md "
            f"-DMAPTYPE=\"percpu_array\"'")
    with warnings.catch_warnings():
        warnings.simplefilter("error", CountingWarning)
        res = ip.run_cell(f"%%xdp {line}\n{body}")
    assert res.error_in_exec is None
    prog = ip.user_ns["xdp_prog1"]
    try:
        assert h1.ping(h1.gw4, count=3, interval=0.05) == 0
        assert prog.counters()["DROP"] >= 3 and total(prog["dropcnt"], 1) >= 3
    finally:
        prog.close()


def test_a_signature_over_several_lines_keeps_line_numbers():
    src = ("int multi(\n"
           "    struct CTXTYPE *ctx)\n"
           "{\n"
           "    return undeclared_thing;\n"
           "}\n")
    with pytest.raises(xdplab.CompileError) as e:
        xdplab.load(src, cflags="-DCTXTYPE=xdp_md")
    assert e.value.diagnostics[0][0] == 4 and "undeclared_thing" in e.value.diagnostics[0][3]
