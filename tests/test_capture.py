"""Capture at XDP: entry and exit samples of an instrumented program, counted exactly."""
from __future__ import annotations

import subprocess

import pytest
from scapy.all import ICMP, IP, UDP, Ether, rdpcap

import xdplab
from xdplab import kernel
from xdplab.programs.capture import Capture, cbpf, cbpf_to_c

from pathlib import Path

from xdplab.programs.program import Program

from .helpers import ipv4_program

CORPUS = Path(__file__).parent / "corpus"

REWRITE = ipv4_program("ttl_one", """\
    if (ip->protocol != IPPROTO_UDP)
        return XDP_PASS;
    ip->ttl = 1;
    return XDP_DROP;
""")


def _udp(h, n):
    h.send(IP(src=h.ipv4, dst=h.gw4) / UDP(sport=4000, dport=9) / (b"z" * 200), count=n)


def _rewrite_captured(h, prog, tmp_path):
    """The REWRITE program (either dialect) with capture on: h1's 5 UDP frames to port 9
    match the filter, its 2 pings are seen only; entry/exit pairs, table and pcap agree."""
    prog.attach(h.outside)
    cap = prog.capture()
    _udp(h, 5)
    assert h.ping(h.gw4, count=2) == 2                  # seen, not matched by the filter
    cap.flush()
    s = cap.stats()
    assert s["matched"] == 5 and s["seen"] >= 7
    assert s["samples"] == 10 and s["captured"] + s["lost"] == s["samples"] and s["lost"] == 0
    pairs = cap.pairs()
    assert len(pairs) == 5 and all(p["action"] == "DROP" for p in pairs)
    for p in pairs:
        before, after = Ether(p["entry"]), Ether(p["exit"])
        assert before[IP].ttl == 64 and after[IP].ttl == 1       # the bytes after the program
        assert len(p["entry"]) == 96 and p["len_in"] == p["len_out"] > 96     # snaplen
        assert p["ifindex"] == kernel.ifindex(h.outside)
    df = cap.table()
    assert list(df.action) == ["DROP"] * 5 and df.modified.all()
    path = cap.write_pcap(tmp_path / "x.pcap")
    r = subprocess.run(["tcpdump", "-nr", str(path)], capture_output=True, text=True)
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 10, r.stderr
    assert "ttl 1" in subprocess.run(["tcpdump", "-vnr", str(path)], capture_output=True, text=True).stdout
    assert len(rdpcap(str(path))) == 10
    assert len(cap.packets("exit")) == 5
    return cap


def test_entry_exit_counts_and_pcap(topo, tmp_path):
    prog = xdplab.load(REWRITE, capture=Capture(filter="udp and dst port 9", snaplen=96))
    cap = _rewrite_captured(topo["h1"], prog, tmp_path)
    cap.stop()
    prog.close()


@pytest.mark.parametrize("dialect", ["bcc", "libbpf"])
def test_lost_samples_are_counted(dialect):
    """A one-page perf buffer (BCC's, or libbpf's) flooded by BPF_PROG_RUN: captured + lost = samples."""
    src = ("int pass(struct xdp_md *ctx) { return XDP_PASS; }" if dialect == "bcc"
           else LIBBPF_REWRITE.replace('bpf_printk("ttl %d", ip->ttl);', ""))
    prog = xdplab.load(src, capture=Capture(snaplen=128, pages=1))
    cap = prog.capture()
    frame = bytes(Ether() / IP() / UDP() / (b"q" * 100))
    kernel.prog_test_run(prog.fd, frame, repeat=20000)
    cap.flush()
    s = cap.stats()
    assert s["seen"] == 20000 and s["samples"] == 40000
    assert s["lost"] > 0 and s["captured"] + s["lost"] == s["samples"]
    cap.stop()
    prog.close()


def test_filter_translation_matches_libpcap():
    """The C translation of a tcpdump filter agrees with libpcap on real frames."""
    expr = "udp port 53 or (tcp and dst port 80) or icmp"
    prog = xdplab.load("int pass(struct xdp_md *ctx) { return XDP_PASS; }", capture=Capture(filter=expr))
    cap = prog.capture()
    from scapy.all import TCP, IPv6
    frames = [Ether() / IP() / UDP(sport=1000, dport=53),        # match
              Ether() / IP() / UDP(sport=1000, dport=54),
              Ether() / IP() / ICMP(),                           # match
              Ether() / IP() / TCP(sport=1000, dport=80),        # match
              Ether() / IP() / TCP(sport=1000, dport=81),
              Ether() / IPv6() / UDP(sport=53, dport=1000)]      # match
    for f in frames:
        kernel.prog_test_run(prog.fd, bytes(f) + b"\0" * 20)
    cap.flush()
    assert cap.stats()["matched"] == 4
    assert "goto" in cbpf_to_c(cbpf(expr))
    cap.stop()
    prog.close()


def test_capture_needs_instrumented_program():
    prog = xdplab.load("int pass(struct xdp_md *ctx) { return XDP_PASS; }")
    with pytest.raises(xdplab.XDPLabError, match="capture=True"):
        prog.capture()
    prog.close()
    prog = xdplab.load(LIBBPF_REWRITE)                   # libbpf-style, loaded without capture=
    with pytest.raises(xdplab.XDPLabError, match="(?s)not built for capture.*capture=True"):
        prog.capture()
    prog.close()


def test_table_tells_packets_apart_and_is_never_cut():
    """Issue 14: the capture table's entry/exit are a line per layer (request and reply
    differ in words), and its notebook view shows every line whole."""
    from scapy.all import ICMP, IP, Ether
    from xdplab.programs.capture import describe, wide_table
    req = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / IP(src="10.11.1.2", dst="10.11.1.1") \
        / ICMP(type=8, id=7, seq=3) / (b"x" * 56)
    rep = Ether(src="02:00:00:00:00:02", dst="02:00:00:00:00:01") / IP(src="10.11.1.1", dst="10.11.1.2") \
        / ICMP(type=0, id=7, seq=3) / (b"x" * 56)
    a, b = describe(bytes(req)), describe(bytes(rep))
    assert a.splitlines() == ["Ether 02:00:00:00:00:01 > 02:00:00:00:00:02 (IPv4)",
                              "IP 10.11.1.2 > 10.11.1.1 icmp ttl=64", "ICMP echo-request id=7 seq=3",
                              "Raw 56 bytes"], a
    assert "ICMP echo-reply id=7 seq=3" in b
    reason = "word " * 60
    html = wide_table([{"entry": a, "exit": b, "why": reason}], columns=["entry", "exit", "why"])._repr_html_()
    assert "echo-request id=7 seq=3" in html and "echo-reply id=7 seq=3" in html
    assert reason.strip() in html and "..." not in html


# --- libbpf-style source and compiled objects: the same capture, spliced in front -----------

LIBBPF_REWRITE = r"""#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

SEC("xdp")
int ttl_one(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data, *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    struct iphdr *ip = (void *)(eth + 1);
    if ((void *)(ip + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
        return XDP_PASS;
    if (ip->protocol != IPPROTO_UDP)
        return XDP_PASS;
    bpf_printk("ttl %d", ip->ttl);
    ip->ttl = 1;
    return XDP_DROP;
}
char _license[] SEC("license") = "GPL";
"""


def test_libbpf_source_entry_exit_counts_pcap_and_printk(topo, tmp_path):
    """The BCC test above, for libbpf-style C: same API, same samples, same pcap; the
    counters, printk in the cell and prog.run() keep working with capture on."""
    h = topo["h1"]
    prog = xdplab.load(LIBBPF_REWRITE, capture=Capture(filter="udp and dst port 9", snaplen=96))
    assert prog.dialect.dialect == "libbpf"
    lines = prog.printk()
    cap = _rewrite_captured(h, prog, tmp_path)
    c = prog.counters()
    assert c["DROP"] == 5 and c["PASS"] >= 2             # the counting wrapper runs inside
    assert lines.wait(5) == ["ttl 64"] * 5               # printk in the cell, tagged
    assert prog.run(IP(dst="10.0.0.1") / UDP(dport=9)).action == "XDP_DROP"
    cap.flush()
    assert cap.stats()["samples"] == 12                  # prog.run() goes through the capture too
    prog.close()
    assert cap.closed and cap.stats()["captured"] == 12  # what it recorded stays readable
    assert kernel.xdp_state(h.outside) == {}


@pytest.fixture(scope="module")
def objects(tmp_path_factory):
    """tests/corpus's Makefile-built objects (no source reaches xdplab)."""
    out = tmp_path_factory.mktemp("obj")
    subprocess.run(["make", "-s", "-C", str(CORPUS), f"OUT={out}"], check=True, capture_output=True)
    return out


def test_object_capture_sees_the_tail_called_programs_action(topo, objects, tmp_path):
    """An object without source: the capture wrapper (which also counts) runs in front of
    the object's relocated instructions; a tail call returns to it, so exit shows what the
    tail-called program did."""
    h = topo["h1"]
    prog = Program.from_file(str(objects / "xdp_tailcall_kern.o"), capture="icmp").load()
    assert prog.dialect.dialect == "elf" and prog.name == "xdp_entry"
    prog.attach(h.outside)
    cap = prog.capture()
    assert h.ping(h.gw4, count=3, interval=0.05, timeout=0.3) == 0     # xdp_icmp drops them
    _udp(h, 2)                                                         # passed, not captured
    cap.flush()
    s = cap.stats()
    assert s["matched"] == 3 and s["samples"] == 6 and s["captured"] == 6 and s["seen"] >= 5
    pairs = cap.pairs()
    assert [p["action"] for p in pairs] == ["DROP"] * 3
    assert all(Ether(p["entry"])[ICMP].type == 8 and p["entry"] == p["exit"] for p in pairs)
    c = prog.counters()
    assert c["DROP"] == 3 and c["PASS"] >= 2
    path = cap.write_pcap(tmp_path / "o.pcap", point="entry")
    r = subprocess.run(["tcpdump", "-nr", str(path)], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.count("ICMP echo request") == 3, r.stdout + r.stderr
    assert prog.run(IP(dst="10.0.0.1") / ICMP()).action == "XDP_DROP"
    prog.close()
    assert kernel.xdp_state(h.outside) == {}


def test_capture_the_kernel_or_license_refuses_says_why(objects, tmp_path):
    import shutil
    # without .BTF.ext the kernel lets no subprogram tail-call: the wrapper is refused, loudly
    stripped = tmp_path / "stripped.o"
    shutil.copy(objects / "xdp_tailcall_kern.o", stripped)
    subprocess.run(["llvm-objcopy", "--remove-section=.BTF.ext", str(stripped)], check=True)
    before = set(kernel.prog_ids())
    with pytest.raises(xdplab.VerifierError, match="capture wrapper.*tail_call is not allowed"):
        Program.from_file(str(stripped), capture=True).load()
    # a proprietary program: the wrapper's bpf_perf_event_output is GPL-only
    src = LIBBPF_REWRITE.replace('bpf_printk("ttl %d", ip->ttl);', "").replace('"GPL"', '"Proprietary"')
    with pytest.raises(xdplab.UsageError, match="not GPL-compatible"):
        xdplab.load(src, capture=True)
    with pytest.raises(xdplab.UsageError, match="snaplen"):
        xdplab.load(src, capture={"snaplen": 0})                     # before anything is compiled
    import gc
    gc.collect()
    ours = {"xdp_entry", "xdp_icmp", "ttl_one", "xdplab_capture"}      # (other processes load programs too)
    left = [i for i in set(kernel.prog_ids()) - before if (kernel.prog_info_by_id(i) or {}).get("name") in ours]
    assert left == [], "a refused capture leaves no program behind"


def test_libbpf_cell_with_capture_option_and_rerun_swaps(topo):
    """%%xdp --capture on a libbpf-style cell; re-running the cell swaps the capturing
    program through the same link (BPF_LINK_UPDATE), and the new one captures too."""
    from IPython.core.interactiveshell import InteractiveShell
    h = topo["h1"]
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "xdplab")
    body = LIBBPF_REWRITE.replace('bpf_printk("ttl %d", ip->ttl);', "")
    try:
        res = ip.run_cell(f'%%xdp --dev {h.outside} --capture "udp" --name capped\n{body}')
        assert res.error_in_exec is None, res.error_in_exec
        first = ip.user_ns["capped"]
        assert first.dialect.dialect == "libbpf" and kernel.xdp_state(h.outside) == {"native": first.id}
        cap = first.capture()
        _udp(h, 2)
        cap.flush()
        assert [p["action"] for p in cap.pairs()] == ["DROP", "DROP"]
        res = ip.run_cell(f'%%xdp --dev {h.outside} --capture "udp" --name capped\n{body}')
        assert res.error_in_exec is None, res.error_in_exec
        second = ip.user_ns["capped"]
        assert second is not first and first.closed and cap.closed
        assert kernel.xdp_state(h.outside) == {"native": second.id}
        cap2 = second.capture()
        _udp(h, 3)
        cap2.flush()
        assert cap2.stats()["matched"] == 3 and len(cap2.pairs()) == 3
        assert len(cap.pairs()) == 2                   # the first capture kept what it recorded
        second.close()
    finally:
        ip.run_line_magic("unload_ext", "xdplab")
    assert kernel.xdp_state(h.outside) == {}


def test_frags_program_captures_the_whole_frame_across_fragments():
    """An xdp.frags program (libbpf-style): the sample's length is the whole frame
    (bpf_xdp_get_buff_len), and the copied bytes run on past the first buffer (BPF_PROG_RUN
    puts 3520 B there, the rest in fragments)."""
    prog = Program.from_file(str(CORPUS / "xdp_frags_kern.c"), capture=Capture(snaplen=5000)).load()
    assert prog.frags
    cap = prog.capture()
    frame = bytes(Ether() / IP() / UDP() / bytes(i & 0xFF for i in range(6000)))
    assert prog.run(frame).action == "XDP_PASS"
    cap.flush()
    (p,) = cap.pairs()
    assert p["len_in"] == p["len_out"] == len(frame) and p["entry"] == frame[:5000] == p["exit"]
    prog.close()
