"""Issue 13: libbpf-style C and compiled objects, unchanged, through libbpf — on the real
kernel, attached to a test topology, checked on real packets (tests/corpus/)."""
from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import pytest

import xdplab
from xdplab import kernel
from xdplab.programs import dialects
from xdplab.errors import AttachError, ClosedError, XDPLabError
from xdplab.programs.libbpf import LibbpfProgram
from xdplab.programs.program import Program

CORPUS = Path(__file__).parent / "corpus"
pytestmark = pytest.mark.kernel


def load(name, **kw):
    return Program.from_file(str(CORPUS / name), **kw).load()


def map_fd(prog, name):
    return next(r.fd for r in prog.object.map_refs() if r.name == name)


def percpu_u64s(prog, name, key, per_value=1):
    """Sum over CPUs of the first ``per_value`` u64s of a per-CPU map's value."""
    ref = next(r for r in prog.object.map_refs() if r.name == name)
    step = (ref.value_size + 7) & ~7
    raw = kernel.map_lookup(ref.fd, struct.pack("=I", key), step * kernel.possible_cpus())
    vals = [struct.unpack_from(f"={per_value}Q", raw, o) for o in range(0, len(raw), step)]
    return [sum(v[i] for v in vals) for i in range(per_value)]


def u64(prog, name, key):
    raw = kernel.map_lookup(map_fd(prog, name), struct.pack("=I", key), 8)
    return 0 if raw is None else struct.unpack("=Q", raw)[0]


# --- dialects --------------------------------------------------------------------------

def test_dialect_is_recognised_and_can_be_overridden():
    assert dialects.detect("int f(struct xdp_md *ctx) { return XDP_PASS; }").dialect == "bcc"
    d = dialects.detect('#include <linux/bpf.h>\n\nSEC("xdp")\nint f(struct xdp_md *c) { return 2; }')
    assert d.dialect == "libbpf" and "line 3" in d.reason
    assert dialects.detect('#include "vmlinux.h"\n').dialect == "libbpf"
    assert dialects.detect(b"\x7fELF\x02\x01").dialect == "elf"
    assert dialects.detect('SEC("xdp") int f(struct xdp_md *c) { return 2; }', "bcc").dialect == "bcc"
    with pytest.raises(XDPLabError, match="unknown dialect"):
        dialects.detect("int x;", "ebpf")
    with pytest.raises(XDPLabError, match="compiled ELF"):
        dialects.detect(b"\x7fELF....", "libbpf")
    with pytest.raises(XDPLabError, match="neither C text nor an ELF"):
        dialects.detect(b"\xff\xfe\x00garbage")


def test_vmlinux_h_is_cached_per_kernel():
    d = dialects.vmlinux_dir()
    assert d is not None and (d / "vmlinux.h").stat().st_size > 100_000
    assert d.name.startswith(__import__("os").uname().release)
    assert dialects.vmlinux_dir() == d


# --- the corpus on real packets ----------------------------------------------------------

def test_several_programs_one_object_pick_and_swap(topo):
    h1 = topo["h1"]
    prog = load("xdp_pass_drop_kern.c", func="xdp_drop_func")
    assert isinstance(prog, LibbpfProgram) and prog.dialect.dialect == "libbpf"
    assert set(prog.object.programs) == {"xdp_pass_func", "xdp_drop_func", "xdp_aborted_func"}
    link = prog.attach(h1.outside)
    assert kernel.xdp_state(h1.outside) == {"native": prog.id}
    assert h1.ping(h1.gw4, count=3, interval=0.05, timeout=0.3) == 0
    assert prog.counters()["DROP"] >= 3
    assert prog.stats().runs >= 3
    # a sibling of the same object, by function name: the link swaps (BPF_LINK_UPDATE)
    passer = prog.program("xdp_pass_func")
    assert passer.attach(h1.outside) is link and link.program is passer
    assert kernel.xdp_state(h1.outside) == {"native": passer.id}
    assert h1.ping(h1.gw4, count=2, interval=0.05, timeout=0.5) == 2
    assert prog.program("xdp").name == "xdp_pass_func"          # by section: the first
    with pytest.raises(XDPLabError, match="no program 'nope'"):
        prog.program("nope")
    prog.close()
    assert not link.attached and kernel.xdp_state(h1.outside) == {}
    with pytest.raises(ClosedError):
        passer.attach(h1.outside)
    with pytest.raises(ClosedError):
        prog.run(b"\0" * 64)


def test_map_and_struct_shared_through_a_header(topo):
    h1 = topo["h1"]
    prog = load("xdp_stats_kern.c")                  # first program: xdp_pass_func
    assert prog.name == "xdp_pass_func"
    prog.attach(h1.outside)
    assert h1.ping(h1.gw4, count=3, interval=0.05, timeout=0.5) == 3
    packets, nbytes = percpu_u64s(prog, "xdp_stats_map", 2, per_value=2)      # XDP_PASS
    assert packets >= 3 and nbytes >= 3 * 98
    prog.close()


def test_parsing_helpers_in_a_header(topo):
    h1 = topo["h1"]
    prog = load("xdp_parse_kern.c")
    prog.attach(h1.outside)
    # echo sequence numbers 1..4: the even ones are dropped
    assert h1.ping(h1.gw4, count=4, interval=0.05, timeout=0.5) == 2
    c = prog.counters()
    assert c["DROP"] == 2 and c["PASS"] >= 2
    prog.close()


def test_global_data_set_before_load_read_after(topo):
    h1 = topo["h1"]
    prog = load("xdp_global_data.c", globals={"drop_proto": 1})     # IPPROTO_ICMP
    assert prog.globals["drop_proto"] == 1 and prog.globals["max_len"] == 1514
    assert prog.globals["last_len"] == 0xffffffff and prog.globals["seen_pkts"] == 0
    prog.attach(h1.outside)
    assert h1.ping(h1.gw4, count=3, interval=0.05, timeout=0.3) == 0
    assert prog.globals["dropped_pkts"] >= 3 and prog.globals["seen_pkts"] >= 3
    assert 60 <= prog.globals["last_len"] <= 1514
    with pytest.raises(XDPLabError, match="froze"):
        prog.globals["drop_proto"] = 0
    prog.globals["dropped_pkts"] = 0                  # .bss is writable while loaded
    assert prog.globals["dropped_pkts"] == 0
    with pytest.raises(KeyError):
        prog.globals["nope"]
    prog.close()
    # without the knob nothing is dropped: the same object, other initial value
    prog = load("xdp_global_data.c")
    prog.attach(h1.outside)
    assert h1.ping(h1.gw4, count=2, interval=0.05, timeout=0.5) == 2
    prog.close()


def test_core_reads_relocated_against_this_kernel(topo):
    h1 = topo["h1"]
    prog = load("xdp_core_kern.c")
    prog.attach(h1.outside)
    assert h1.ping(h1.gw4, count=3, interval=0.05, timeout=0.5) == 3
    assert u64(prog, "proto_count", 1) >= 3          # ICMP, read through BPF_CORE_READ_INTO
    assert prog.globals["has_egress_ifindex"] == 1   # struct xdp_md has it on 6.18
    prog.close()


def test_tail_call_through_the_objects_prog_array(topo):
    h1 = topo["h1"]
    prog = load("xdp_tailcall_kern.c")
    assert prog.name == "xdp_entry", "the entry is the program nothing jumps to"
    prog.attach(h1.outside)
    assert h1.ping(h1.gw4, count=3, interval=0.05, timeout=0.3) == 0
    assert u64(prog, "tail_hits", 0) >= 3             # the tail-called program ran
    assert prog.counters()["DROP"] >= 3               # counted by the tail program's wrapper
    from scapy.all import IP, UDP
    before = u64(prog, "tail_hits", 1)
    assert prog.run(IP(dst="10.0.0.1") / UDP(dport=9)).action == "XDP_PASS"
    assert u64(prog, "tail_hits", 1) == before + 1    # no program for UDP: fell through
    prog["jmp_table"][17] = prog.program("xdp_icmp")  # filled from Python, as loaders do
    assert prog.run(IP(dst="10.0.0.1") / UDP(dport=9)).action == "XDP_DROP"
    del prog["jmp_table"][17]
    assert prog.run(IP(dst="10.0.0.1") / UDP(dport=9)).action == "XDP_PASS"
    prog.close()


def test_frags_program_gets_its_flag_and_sees_jumbo_frames(topo):
    h1 = topo["h1"]
    prog = load("xdp_frags_kern.c")
    assert prog.frags and prog.section == "xdp.frags"
    plain = load("xdp_pass_drop_kern.c", func="xdp_pass_func")
    assert not plain.frags
    with kernel.ipr() as ip:
        ip.link("set", index=ip.link_lookup(ifname=h1.outside)[0], mtu=9000)
    h1.run(["ip", "link", "set", "dev", h1.inside, "mtu", "9000"])
    try:
        with pytest.raises(AttachError):              # a page is too small for 9000 bytes
            plain.attach(h1.outside)
        prog.attach(h1.outside)
        r = h1.run(["ping", "-n", "-q", "-c", "2", "-i", "0.1", "-W", "1", "-s", "6000", h1.gw4], check=False)
        assert " 2 received" in r.stdout, r.stdout
        assert prog.globals["max_frame"] >= 6000      # bpf_xdp_get_buff_len: all fragments
    finally:
        prog.close()
        plain.close()


@pytest.fixture(scope="module")
def built_object(tmp_path_factory):
    if not shutil.which("make"):
        pytest.fail("make is missing: ./lab setup installs it")
    out = tmp_path_factory.mktemp("obj")
    subprocess.run(["make", "-s", "-C", str(CORPUS), f"OUT={out}"], check=True, capture_output=True)
    return out


def test_object_built_by_a_makefile_loads_as_is(topo, built_object):
    h1 = topo["h1"]
    prog = Program.from_file(str(built_object / "xdp_prog_kern.o")).load()    # was: UnicodeDecodeError
    assert prog.dialect.dialect == "elf" and prog.name == "xdp_drop_icmp"
    assert prog.info()["gpl_compatible"] and prog.info()["btf_id"] > 0    # license, BTF: the object's
    assert "bpf-to-bpf call wrapper" in repr(prog)
    prog.attach(h1.outside)
    assert h1.ping(h1.gw4, count=3, interval=0.05, timeout=0.3) == 0
    assert u64(prog, "dropped", 0) >= 3
    assert prog.counters()["DROP"] >= 3               # counted without source, without trampolines
    assert prog.stats().runs >= 3 and prog.stats().ns > 0
    from scapy.all import ICMP, IP
    assert prog.run(IP(dst="10.0.0.1") / ICMP()).action == "XDP_DROP"
    prog.close()
    assert kernel.xdp_state(h1.outside) == {}


def test_object_with_a_tail_call_is_counted_through_it(topo, built_object):
    h1 = topo["h1"]
    prog = Program.from_file(str(built_object / "xdp_tailcall_kern.o")).load()
    assert prog.name == "xdp_entry", "the entry is the program no PROG_ARRAY holds"
    prog.attach(h1.outside)
    assert h1.ping(h1.gw4, count=3, interval=0.05, timeout=0.3) == 0
    assert u64(prog, "tail_hits", 0) >= 3
    c = prog.counters()
    assert c["DROP"] >= 3, c                          # the tail-called program's action
    from scapy.all import IP, UDP
    assert prog.run(IP(dst="10.0.0.1") / UDP()).action == "XDP_PASS"
    assert prog.counters()["PASS"] == c["PASS"] + 1
    prog.close()


def test_object_the_wrapper_cannot_take_says_so(tmp_path, built_object):
    # the same tail-call object without its .BTF.ext (function info): the kernel lets only
    # subprograms with BTF function info tail-call, so the counting wrapper is refused
    stripped = tmp_path / "stripped.o"
    shutil.copy(built_object / "xdp_tailcall_kern.o", stripped)
    subprocess.run(["llvm-objcopy", "--remove-section=.BTF.ext", str(stripped)], check=True)
    prog = Program.from_file(str(stripped)).load()              # the object itself loads
    assert "counters: unavailable" in repr(prog) and "without BTF" in repr(prog)
    with pytest.raises(XDPLabError, match="refused the counting wrapper"):
        prog.counters()
    from scapy.all import ICMP, IP
    assert prog.run(IP(dst="10.0.0.1") / ICMP()).action == "XDP_DROP"     # and runs unwrapped
    prog.close()


def test_load_takes_bytes_of_an_object(built_object):
    prog = xdplab.load("", elf=(built_object / "xdp_prog_kern.o").read_bytes(), origin="x.o")
    assert prog.dialect.dialect == "elf" and prog.maps["dropped"] is not None
    prog.close()


def test_the_wrapper_never_fails_silently():
    src = ('#include <linux/bpf.h>\n#include <bpf/bpf_helpers.h>\n'
           'SEC("xdp")\nint odd(void *ctx) { return XDP_DROP; }\nchar _l[] SEC("license") = "GPL";\n')
    prog = xdplab.load(src)
    assert "not counted" in repr(prog) and "line 3" in repr(prog)
    with pytest.raises(XDPLabError, match="not counted"):
        prog.counters()
    assert prog.run(b"\0" * 64).action == "XDP_DROP"
    prog.close()


def test_rerun_swaps_through_the_same_link_and_bcc_stats(topo):
    h1 = topo["h1"]
    a = load("xdp_pass_drop_kern.c", func="xdp_pass_func")
    link = a.attach(h1.outside)
    b = xdplab.load("int d(struct xdp_md *ctx) { return XDP_DROP; }")        # BCC, same Link
    assert b.dialect.dialect == "bcc" and a.dialect.dialect == "libbpf"
    assert b.attach(h1.outside) is link and kernel.xdp_state(h1.outside) == {"native": b.id}
    assert h1.ping(h1.gw4, count=2, interval=0.05, timeout=0.3) == 0
    assert b.stats().runs >= 0
    a.close()
    assert link.attached, "closing the old program does not detach the link that moved on"
    b.close()


def test_magic_takes_libbpf_cells_and_says_so(topo, capsys):
    from IPython.core.interactiveshell import InteractiveShell
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "xdplab")
    h1 = topo["h1"]
    src = (CORPUS / "xdp_pass_drop_kern.c").read_text()
    res = ip.run_cell(f"%%xdp --dev {h1.outside} --func xdp_drop_func\n{src}")
    assert res.error_in_exec is None, res.error_in_exec
    assert "libbpf dialect" in capsys.readouterr().out
    prog = ip.user_ns["xdp_drop_func"]
    assert isinstance(prog, LibbpfProgram)
    assert h1.ping(h1.gw4, count=2, interval=0.05, timeout=0.3) == 0
    res = ip.run_cell(f"%%xdp --dev {h1.outside} --dialect bcc --name xdp_drop_func\n{src}")
    assert res.error_in_exec is not None and "dialect='libbpf'" in res.error_in_exec.hint
    prog.close()


def test_printk_lines_of_a_libbpf_program_reach_its_stream():
    src = ('#include <linux/bpf.h>\n#include <bpf/bpf_helpers.h>\n\n'
           'SEC("xdp")\nint talk(struct xdp_md *ctx)\n{\n'
           '\tbpf_printk("talk saw %d bytes", (int)(ctx->data_end - ctx->data));\n'
           '\treturn XDP_PASS;\n}\nchar _l[] SEC("license") = "GPL";\n')
    prog = xdplab.load(src)
    assert prog.spec.printk_tag
    s = prog.printk()
    prog.run(b"\0" * 64, repeat=2)
    assert s.wait(3) == ["talk saw 64 bytes"] * 2
    prog.close()
    # no blank line after the includes: no tag, and printk() says why (it never streams nothing)
    untagged = xdplab.load(src.replace("\n\nSEC", "\nSEC"))
    with pytest.raises(XDPLabError, match="blank line"):
        untagged.printk()
    untagged.close()


def test_bad_input_gets_typed_errors_and_creates_nothing():
    from xdplab.errors import MapKeyError, NotSupported, UsageError
    src = (CORPUS / "xdp_global_data.c").read_text()
    with pytest.raises(MapKeyError, match="no global variable 'nope'"):
        xdplab.load(src, origin="g.c", globals={"nope": 1})
    with pytest.raises(UsageError, match="does not fit"):
        xdplab.load(src, origin="g.c", globals={"drop_proto": 300})
    with pytest.raises(UsageError, match="unknown dialect"):
        xdplab.load(src, dialect="ebpf")
    with pytest.raises(UsageError, match="snaplen=-1"):      # capture works (test_capture.py)
        xdplab.load(src, origin="g.c", capture={"snaplen": -1})
    with pytest.raises(UsageError, match="has no function 'nope'"):
        xdplab.load(src, origin="g.c", func="nope")
    prog = xdplab.load(src, origin="g.c")
    with pytest.raises(MapKeyError):
        prog["nope"]
    prog.close()


def test_drop_detector_and_counters_see_an_objects_aborts(topo, tmp_path):
    """An object without source that returns XDP_ABORTED: the drop detector (xdp_exception)
    names the attached program, and the wrapper's counters agree."""
    from scapy.all import IP, UDP
    from xdplab.tools.drops import DropDetector
    h = topo["h1"]
    obj = tmp_path / "pass_drop.o"
    subprocess.run(["clang", "-O2", "-g", "-target", "bpf", "-I/usr/include/x86_64-linux-gnu", "-c",
                    str(CORPUS / "xdp_pass_drop_kern.c"), "-o", str(obj)], check=True)
    prog = Program.from_file(str(obj), func="xdp_aborted_func").load()
    assert prog.dialect.dialect == "elf" and prog.name == "xdp_aborted_func"
    prog.attach(h.outside)
    with DropDetector() as dd:
        dd.clear()
        before = prog.counters()["ABORTED"]      # the host's own IPv6 chatter may come first
        h.send(IP(src=h.ipv4, dst=h.gw4) / UDP(sport=1234, dport=9) / (b"x" * 32), count=2)
        rows = [r for r in dd.wait(timeout=1.0, min_drops=2) if r.ifindex == h.ifindex]
    assert [(r.tracepoint, r.action, r.prog_id) for r in rows] == [("xdp_exception", "ABORTED", prog.id)]
    assert rows[0].drops >= 2 and prog.counters()["ABORTED"] - before >= 2
    prog.close()
