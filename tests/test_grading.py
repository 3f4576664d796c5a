"""Graded exercises: every reference solution passes its lab's checks, wrong programs
fail exactly the items they get wrong, and the report says which."""
import pytest
from scapy.layers.inet import IP, UDP

from xdplab import kernel

from xdplab.labs import grading
from xdplab.labs.grading import SOLUTIONS

from .helpers import DROP_UDP9

pytestmark = pytest.mark.kernel

PASS_ALL = "int xdp_pass_all(struct xdp_md *ctx) { return XDP_PASS; }"

# Lab 05, a classic mistake: the UDP header is assumed to follow a 20-byte IPv4 header,
# and IPv6 is forgotten.

# Lab 01, drops all ICMPv6 (breaks neighbour discovery) and all ICMPv4.
DROP_ALL_ICMP = r"""
int xdp_drop_all_icmp(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data, *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    struct iphdr *ip = (void *)(eth + 1);
    struct ipv6hdr *ip6 = (void *)(eth + 1);

    if ((void *)(ip6 + 1) <= data_end && eth->h_proto == bpf_htons(ETH_P_IPV6))
        return ip6->nexthdr == IPPROTO_ICMPV6 ? XDP_DROP : XDP_PASS;
    if ((void *)(ip + 1) <= data_end && eth->h_proto == bpf_htons(ETH_P_IP))
        return ip->protocol == IPPROTO_ICMP ? XDP_DROP : XDP_PASS;
    return XDP_PASS;
}
"""

# Lab 02, counts packets but adds the IP total length (not the frame length) as bytes.
WRONG_BYTES = r"""
struct pb { u64 packets; u64 bytes; };
BPF_PERCPU_ARRAY(proto_stats, struct pb, 256);

int xdp_wrong_bytes(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data, *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    struct iphdr *ip = (void *)(eth + 1);
    struct pb *v;
    u32 key;

    if ((void *)(ip + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
        return XDP_PASS;
    key = ip->protocol;
    v = proto_stats.lookup(&key);
    if (v) { v->packets++; v->bytes += bpf_ntohs(ip->tot_len); }
    return XDP_PASS;
}
"""


def failed(report):
    return {i.name for i in report.failures}


@pytest.mark.parametrize("lab", ["01", "02", "05"])
def test_reference_solution_passes_including_live(lab, topo):
    report = grading.check_lab(lab, topo=topo)
    assert report.passed, report
    assert any(i.kind == "live" and i.status == "pass" for i in report.items), "live checks ran"
    assert report.program == "the reference solution"
    grader = f"{topo.prefix}{grading.GRADER_HOST}"
    assert kernel.xdp_state(grader) == {}, "the grader detaches what it attached"


def test_solutions_are_where_the_registry_says():
    grading.discover()
    for lab in ("01", "02", "05"):
        ex = grading.get(lab)
        assert ex.solution_path.is_file() and ex.solution_path.is_relative_to(SOLUTIONS)


def test_wrong_programs_fail_the_items_they_get_wrong():
    r05 = grading.check_lab("05", DROP_UDP9, live=False)
    assert not r05.passed
    assert failed(r05) == {"UDP over IPv6 to port 9 is dropped",
                           "UDP to port 9 behind IPv4 options is dropped"}

    r01 = grading.check_lab("01", DROP_ALL_ICMP, live=False)
    assert failed(r01) == {"IPv4 echo reply passes", "IPv4 destination unreachable passes",
                           "IPv6 echo reply passes", "IPv6 neighbour solicitation passes",
                           "a frame cut after the IPv4 header passes"}      # not an echo request
    assert r01.items[-1].status == "skip"

    r02 = grading.check_lab("02", WRONG_BYTES, live=False)
    assert failed(r02) == {"ICMP (protocol 1): bytes", "UDP (protocol 17): bytes", "TCP (protocol 6): bytes"}
    assert "data_end - data" in next(i.hint for i in r02.failures)


@pytest.fixture(scope="module")
def pass_all():
    import xdplab
    with xdplab.load(PASS_ALL) as p:
        yield p


def test_pass_all_fails_with_readable_report(pass_all, topo):
    r = grading.check_lab("5", pass_all, topo=topo)        # live too: the generator's frames pass
    live = {i.name: i for i in r.items if i.kind == "live"}
    assert live["100,000 generated UDP/9 frames are all dropped"].got == "0"
    assert live["ping still works"].status == "pass"
    assert pass_all.links == [], "a program the grader was given is detached, not closed"
    assert not r and "NOT YET" in repr(r) and "hint:" in repr(r)
    html = r._repr_html_()
    assert html.count("<tr>") == len(r.items) + 1 and "&#10008;" in html
    with pytest.raises(AssertionError, match="check\\(s\\) failed"):
        r.assert_passed()
    r02 = grading.check_lab("02", pass_all, live=False)     # no map at all
    assert [i.got for i in r02.failures] == ["XDPLabError: no map 'proto_stats'"]


def test_compile_error_is_one_failed_item():
    r = grading.check_lab("01", "int f(struct xdp_md *ctx) { return XDP_PASS }", live=False)
    assert [i.kind for i in r.items] == ["load"] and r.items[0].status == "fail"
    assert "CompileError" in r.items[0].got


def test_a_lab_registers_checks_in_one_place(pass_all):
    ex = grading.exercise("99", "test-lab", title="pass UDP to port 7")

    @ex.unit
    def crafted(c):
        c.packet("UDP/7 passes", IP() / UDP(dport=7), "pass")
        c.that("custom item", expected=1, got=1)
    try:
        r = grading.check_lab("lab99", pass_all)
        assert r.passed and [i.name for i in r.items] == ["UDP/7 passes", "custom item"]
        with pytest.raises(Exception, match="no checks for lab"):
            grading.check_lab("98")
    finally:
        grading.EXERCISES.pop("99")


def test_main_check_cli(tmp_path, capsys):
    assert grading.main_check(["--list"]) == 0
    assert "05  testing-and-traffic" in capsys.readouterr().out
    wrong = tmp_path / "wrong.c"
    wrong.write_text(PASS_ALL)
    assert grading.main_check(["05", str(wrong), "--no-live"]) == 1
    assert "FAIL  UDP to port 9 is dropped" in capsys.readouterr().out
    assert grading.main_check(["01", "--no-live"]) == 0        # the reference solution
    assert "PASSED" in capsys.readouterr().out


def test_lab11_reads_the_metadata_back_from_prog_run(topo):
    """Lab 11's items read the metadata a run left in front of the frame: no metadata at
    all (PASS_ALL) or 4 bytes of another layout (META_XDP) fail the protocol items and
    nothing else; the reference passes, live too."""
    from xdplab.dev.smoke import META_XDP
    r = grading.check_lab("11", PASS_ALL, live=False)
    stamped = [i for i in r.items if i.name.startswith("... stamped")]
    assert failed(r) == {i.name for i in stamped} and len(stamped) == 6
    assert all(i.status == "fail" and i.got.startswith("no metadata") for i in stamped)
    r = grading.check_lab("11", META_XDP, live=False)       # 4 bytes: not a struct xdplab_meta
    assert {i.got for i in r.items if i.status == "fail"} == {"no metadata (4 bytes)"}
    assert grading.check_lab("11", topo=topo).passed


# --- either dialect (issue 13): a libbpf-style program grades exactly like its BCC twin ---

# the reference solutions written in both dialects (x.c and x.bpf.c side by side)
BOTH_DIALECTS = ["01", "02", "03", "05", "06", "08", "09", "11", "13"]

# WRONG_BYTES in libbpf style: a BTF-defined per-CPU array read with bpf_map_lookup_elem
WRONG_BYTES_LIBBPF = r"""
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct pb { __u64 packets; __u64 bytes; };
struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 256);
    __type(key, __u32);
    __type(value, struct pb);
} proto_stats SEC(".maps");

SEC("xdp")
int xdp_wrong_bytes(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data, *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    struct iphdr *ip = (void *)(eth + 1);
    struct pb *v;
    __u32 key;

    if ((void *)(ip + 1) > data_end || eth->h_proto != bpf_htons(0x0800))
        return XDP_PASS;
    key = ip->protocol;
    v = bpf_map_lookup_elem(&proto_stats, &key);
    if (v) { v->packets++; v->bytes += bpf_ntohs(ip->tot_len); }
    return XDP_PASS;
}
char LICENSE[] SEC("license") = "GPL";
"""


def verdicts(report):
    return [(i.name, i.kind, i.expected, i.status) for i in report.items]


# labs whose C exercise has no twin in the other dialect yet (12: libbpf style only; its owner is on it)
TWIN_PENDING = {"12"}


def test_labs_with_c_exercises_have_a_libbpf_twin():
    grading.discover()
    with_c = {lab for lab, ex in grading.EXERCISES.items() if ex.solution.endswith(".c")}
    assert with_c - TWIN_PENDING == set(BOTH_DIALECTS), "a lab with a C exercise needs a libbpf twin (x.bpf.c)"
    for lab in BOTH_DIALECTS:
        v = grading.get(lab).solution_variants
        assert set(v) == {"bcc", "libbpf"}, (lab, v)
        assert v["libbpf"].name.endswith(".bpf.c") and 'SEC("xdp")' in v["libbpf"].read_text()


@pytest.mark.parametrize("lab", BOTH_DIALECTS)
def test_libbpf_solution_grades_like_the_bcc_one(lab, topo):
    """Both reference solutions pass every item, live ones included, with the same
    verdict per item; the libbpf one went through clang + libbpf (a LibbpfProgram)."""
    from xdplab.programs.libbpf import LibbpfProgram
    v = grading.get(lab).solution_variants
    router = None
    if lab == "09":                      # lab 09's grader builds a router topology and keeps it up
        from xdplab.labs.lab09_routing import grader_router_topology
        router = grader_router_topology()
        router = None if router.is_up() else router
    try:
        reports = {d: grading.check_lab(lab, str(v[d]), topo=topo) for d in ("bcc", "libbpf")}
    finally:
        if router is not None:
            router.down()                # this test brought it up: take it down
    for d, r in reports.items():
        assert r.passed, f"{d}: {r}"
        if grading.get(lab).lives:
            assert any(i.kind == "live" and i.status == "pass" for i in r.items), f"{d}: live checks ran"
    assert verdicts(reports["bcc"]) == verdicts(reports["libbpf"])
    with xdplab_load(v["libbpf"]) as p:
        assert isinstance(p, LibbpfProgram) and p.dialect.dialect == "libbpf"


def xdplab_load(path):
    from xdplab import Program
    return Program.from_file(str(path)).load()


def test_cli_grades_a_libbpf_file(capsys):
    """`./lab check 02 proto_stats.bpf.c`: the libbpf-style file graded from the shell."""
    path = grading.get("02").solution_variants["libbpf"]
    assert grading.main_check(["02", str(path), "--no-live"]) == 0
    out = capsys.readouterr().out
    assert "PASSED" in out and "program xdp_proto_bytes" in out


def test_wrong_libbpf_program_fails_the_items_the_bcc_one_fails():
    """The lab 02 grader reads a BTF-typed per-CPU map (libbpf) as it reads a BCC table:
    the same mistake fails the same items, with the same numbers."""
    rb = grading.check_lab("02", WRONG_BYTES, live=False)
    rl = grading.check_lab("02", WRONG_BYTES_LIBBPF, live=False)
    assert failed(rl) == failed(rb) == {"ICMP (protocol 1): bytes", "UDP (protocol 17): bytes",
                                        "TCP (protocol 6): bytes"}
    assert [(i.name, i.got) for i in rl.items] == [(i.name, i.got) for i in rb.items]


def test_header_read_through_another_type_grades_the_same_in_both_dialects():
    """Lab 06 teaches `old = *(__be16 *)icmp6` (type and code as one word) before the type
    is rewritten. The libbpf path compiled it with clang's strict aliasing, which moved the
    read past the write: the reply kept the request's checksum, and the grader failed a
    program BCC passed. Now the libbpf path compiles with -fno-strict-aliasing."""
    twin = grading.get("06").solution_variants["libbpf"].read_text()
    aliased = (twin.replace("__builtin_memcpy(&old, icmp6, sizeof(old));", "old = *(__be16 *)icmp6;")
                   .replace("__builtin_memcpy(&new, icmp6, sizeof(new));", "new = *(__be16 *)icmp6;"))
    assert "old = *(__be16 *)icmp6;" in aliased and "new = *(__be16 *)icmp6;" in aliased
    r = grading.check_lab("06", aliased, live=False)
    assert r.passed, r
    assert next(i for i in r.items if i.name == "ICMPv6 checksum valid").status == "pass"
