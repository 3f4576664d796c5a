"""Issue 13: real, published XDP programs load in xdplab unchanged, and do on real packets
what they say they do.

Two parts:

- **Regression tests** (always run): small programs of our own, one per construct published
  programs use that xdplab did not take before (legacy ``struct bpf_map_def SEC("maps")`` maps,
  ``"bpf_helpers.h"`` and ``<uapi/linux/bpf.h>`` spellings, kernel-internal names such as
  ``u32``/``htons``, sections libbpf 1.x no longer knows, ``xdp_devmap/`` entry programs,
  ``LIBBPF_PIN_BY_NAME``, fentry programs next to XDP ones, a legacy-map object).
- **The published corpus** (``tests/corpus_published/src/``, see SOURCES.md; not committed:
  other projects' code): BCC's examples, xdp-tutorial lessons, kernel samples and selftests,
  bpf-examples — each loaded unchanged, the program picked by function or section name,
  built with the flags its own build passes, attached to a lab host, checked on packets.
"""
from __future__ import annotations

import os
import re
import struct
import subprocess
import warnings
from pathlib import Path

import pytest
from scapy.all import ICMP, IP, TCP, UDP, Dot1Q, Ether, Raw

import xdplab
from xdplab import kernel
from xdplab.errors import VerifierError, XDPLabError
from xdplab.net import redirect
from xdplab.programs.bcccompat import CountingWarning
from xdplab.programs.libbpf import LibbpfProgram, ObjectError
from xdplab.programs import dialects

from .routing_fixtures import router_factory  # noqa: F401  (fixture)

pytestmark = pytest.mark.kernel

SRC = Path(os.environ.get("XDPLAB_PUBLISHED_CORPUS")
           or Path(__file__).resolve().parent / "corpus_published" / "src")
SELF = "linux/selftests/bpf"
published = pytest.mark.skipif(
    not SRC.is_dir(), reason=f"the published corpus is not at {SRC} (other projects' code, not "
    "committed: tests/corpus_published/SOURCES.md lists each file; XDPLAB_PUBLISHED_CORPUS=dir)")


def load(rel, **kw):
    return xdplab.Program.from_file(SRC / rel, **kw).load()


def selftest(name, **kw):
    """A selftest as its Makefile builds it: -I tools/testing/selftests/bpf."""
    return load(f"{SELF}/progs/{name}", include_dirs=[SRC / SELF], **kw)


def bcc_example(name: str) -> str:
    """The C text a BCC example passes to BPF(text=...)."""
    return dialects.bcc_script((SRC / "bcc" / name).read_text())[0]


def bcc(name, cflags, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("error", CountingWarning)          # the counting wrapper must wrap
        return xdplab.load(bcc_example(name), cflags=cflags, **kw)


def percpu_total(m, key) -> int:
    return int(sum(m[key]))


def datarec(m, key) -> tuple[int, int]:
    """rx_packets, rx_bytes of xdp-tutorial's struct datarec (per-CPU or not, typed or raw)."""
    v = m[key]
    if isinstance(v, (bytes, bytearray)):
        return struct.unpack("=QQ", bytes(v)[:16])
    if isinstance(v, list):                                # per-CPU, no BTF types: bytes per CPU
        rows = [struct.unpack("=QQ", bytes(x)[:16]) for x in v]
        return sum(r[0] for r in rows), sum(r[1] for r in rows)
    return int(v["rx_packets"].sum()), int(v["rx_bytes"].sum())


def devmap_set(m, key, dev, **kw):
    """A devmap entry through the map's own API (typed maps: .set; BCC tables: redirect)."""
    return m.set(key, dev, check=False, **kw) if hasattr(m, "set") else \
        redirect.devmap_set(m, key, dev, check=False, **kw)


def cpumap_set(m, cpu, qsize):
    return m.set(cpu, qsize=qsize) if hasattr(m, "set") else redirect.cpumap_set(m, cpu, qsize=qsize)


def arrivals(prog, src, dst, *hosts, count=5, timeout=1.0) -> list[int]:
    """Attach ``prog`` to ``src``'s veth, ping ``dst`` from ``src``, detach: how many frames
    reached each of ``hosts``, counted by the XDP program a veth needs on its peer to take
    XDP_TX or redirected frames (``redirect.ensure_peer_program``)."""
    peers = [redirect.ensure_peer_program(h) for h in hosts]
    try:
        before = [p.counters()["PASS"] for p in peers]
        prog.attach(src.outside)
        src.ping(dst, count=count, interval=0.05, timeout=timeout)
        prog.detach()
        return [p.counters()["PASS"] - b for p, b in zip(peers, before)]
    finally:
        for h in hosts:
            redirect.remove_peer_program(h)


def neigh(host, ip, mac):
    """A static neighbour entry inside ``host`` (frames redirected elsewhere get no ARP reply)."""
    host.run(["ip", "neigh", "replace", ip, "lladdr", mac, "dev", host.inside])


UDP_PKT = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / IP(src="10.1.1.1", dst="10.1.1.2") \
    / UDP(sport=1234, dport=1000) / Raw(b"x" * 18)


# =====================================================================================
# Regression tests: one per construct (own programs), always run
# =====================================================================================

LEGACY_MAP = """\
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct bpf_map_def SEC("maps") counts = {
\t.type        = BPF_MAP_TYPE_ARRAY,
\t.key_size    = sizeof(__u32),
\t.value_size  = sizeof(__u64),
\t.max_entries = 4,
};

SEC("xdp_count")
int count_all(struct xdp_md *ctx)
{
\t__u32 key = 1;
\t__u64 *n = bpf_map_lookup_elem(&counts, &key);
\tif (n)
\t\t*n += 1;
\treturn XDP_PASS;
}
char _license[] SEC("license") = "GPL";
"""


def test_legacy_bpf_map_def_maps_are_read_as_btf_maps():
    new, names = dialects.translate_legacy_maps(LEGACY_MAP)
    assert names == ["counts"] and new.count("\n") == LEGACY_MAP.count("\n")
    assert 'struct { int (*type)[BPF_MAP_TYPE_ARRAY]; int (*key_size)[sizeof(__u32)];' in new
    with xdplab.load(LEGACY_MAP) as prog:
        assert prog.section == "xdp_count" and prog.object.typed_by_xdplab["count_all"]
        assert prog.run(Ether() / IP() / ICMP()).action == "XDP_PASS"
        assert prog["counts"][1] == 1                    # 8-byte values without BTF types: ints
        assert prog.counters()["PASS"] == 1            # a SEC("xdp_count") program is counted too
    # lines do not move: an error after the rewritten map is on its own line
    broken = LEGACY_MAP.replace("\t\t*n += 1;", "\t\t*n += undefined_thing;")
    with pytest.raises(xdplab.CompileError) as e:
        xdplab.load(broken)
    assert e.value.line == 17 and "undefined_thing" in str(e.value)


OLD_STATS_HEADER = """\
/* as old xdp-tutorial common/xdp_stats_kern.h: a legacy map in a header */
#ifndef __XDP_STATS_KERN_H
#define __XDP_STATS_KERN_H
struct datarec { __u64 rx_packets; __u64 rx_bytes; };
struct bpf_map_def SEC("maps") xdp_stats_map = {
\t.type        = BPF_MAP_TYPE_PERCPU_ARRAY,
\t.key_size    = sizeof(__u32),
\t.value_size  = sizeof(struct datarec),
\t.max_entries = XDP_REDIRECT + 1,
};
static __always_inline __u32 xdp_stats_record_action(struct xdp_md *ctx, __u32 action)
{
\tstruct datarec *rec = bpf_map_lookup_elem(&xdp_stats_map, &action);
\tif (!rec)
\t\treturn XDP_ABORTED;
\trec->rx_packets++;
\trec->rx_bytes += (ctx->data_end - ctx->data);
\treturn action;
}
#endif
"""

OLD_LESSON = """\
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "../common/xdp_stats_kern.h"

SEC("xdp_pass")
int xdp_pass_func(struct xdp_md *ctx)
{
\treturn xdp_stats_record_action(ctx, XDP_PASS);
}
char _license[] SEC("license") = "GPL";
"""


def test_legacy_maps_in_a_carried_header_are_rewritten_too(tmp_path):
    (tmp_path / "common").mkdir()
    (tmp_path / "common" / "xdp_stats_kern.h").write_text(OLD_STATS_HEADER)
    (tmp_path / "lesson").mkdir()
    (tmp_path / "lesson" / "xdp_prog_kern.c").write_text(OLD_LESSON)
    with xdplab.Program.from_file(tmp_path / "lesson" / "xdp_prog_kern.c").load() as prog:
        assert prog.run(Ether() / IP() / ICMP()).action == "XDP_PASS"
        assert datarec(prog["xdp_stats_map"], 2)[0] == 1
    # errors keep their files and lines through the preprocessed rewrite
    (tmp_path / "lesson" / "xdp_prog_kern.c").write_text(OLD_LESSON.replace("XDP_PASS);", "XDP_PAS);"))
    with pytest.raises(xdplab.CompileError) as e:
        xdplab.Program.from_file(tmp_path / "lesson" / "xdp_prog_kern.c").load()
    assert e.value.line == 8 and "XDP_PAS" in str(e.value)


KERNEL_TREE = """\
#define KBUILD_MODNAME "foo"
#include <uapi/linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/if_vlan.h>
#include <linux/ip.h>
#include "bpf_helpers.h"

SEC("xdp_vlan_drop")
int kt_prog(struct xdp_md *ctx)
{
\tvoid *data_end = (void *)(long)ctx->data_end;
\tvoid *data = (void *)(long)ctx->data;
\tstruct ethhdr *eth = data;
\tstruct vlan_hdr *vhdr = (void *)(eth + 1);
\tu16 proto;

\tif ((void *)(vhdr + 1) > data_end)
\t\treturn XDP_PASS;
\tproto = eth->h_proto;
\tif (proto == htons(ETH_P_8021Q) && (ntohs(vhdr->h_vlan_TCI) & 0xfff) == 7)
\t\treturn XDP_DROP;
\treturn XDP_PASS;
}
char _license[] SEC("license") = "GPL";
"""


def test_kernel_tree_style_uapi_includes_local_bpf_helpers_and_kernel_names():
    """samples/bpf style: <uapi/linux/bpf.h>, "bpf_helpers.h", u16, htons, struct vlan_hdr."""
    with xdplab.load(KERNEL_TREE) as prog:
        assert prog.run(Ether() / Dot1Q(vlan=7) / IP() / ICMP()).action == "XDP_DROP"
        assert prog.run(Ether() / Dot1Q(vlan=8) / IP() / ICMP()).action == "XDP_PASS"
    assert dialects.kernel_tree_compat(KERNEL_TREE).count("struct vlan_hdr") == 1
    own = KERNEL_TREE.replace('#include "bpf_helpers.h"\n',
                              '#include "bpf_helpers.h"\nstruct vlan_hdr { __be16 h_vlan_TCI; __be16 x; };\n')
    assert "struct vlan_hdr" not in dialects.kernel_tree_compat(own)     # its own wins
    assert dialects.kernel_tree_compat(LEGACY_MAP) == ""                  # only kernel-tree style


SECTIONS = """\
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
\t__uint(type, BPF_MAP_TYPE_DEVMAP);
\t__uint(key_size, sizeof(__u32));
\t__uint(value_size, sizeof(struct bpf_devmap_val));
\t__uint(max_entries, 4);
} ports SEC(".maps");

struct {
\t__uint(type, BPF_MAP_TYPE_ARRAY);
\t__type(key, __u32);
\t__type(value, __u64);
\t__uint(max_entries, 1);
\t__uint(pinning, LIBBPF_PIN_BY_NAME);
} pinned_stats SEC(".maps");

SEC("xdp_devmap/egress")
int on_egress(struct xdp_md *ctx) { return XDP_PASS; }

SEC("tx")
int reflect(struct xdp_md *ctx) { return XDP_TX; }

SEC("classifier_x")
int tc_side(struct __sk_buff *skb) { return 0; }

char _license[] SEC("license") = "GPL";
"""


def test_sections_libbpf1_no_longer_knows_are_typed_and_nothing_is_pinned(topo):
    before = set(os.listdir("/sys/fs/bpf"))
    with xdplab.load(SECTIONS) as prog:
        assert prog.name == "reflect"                  # not the devmap entry program
        progs = prog.object.programs
        assert progs["on_egress"].expected_attach_type == kernel.BPF_XDP_DEVMAP
        assert progs["tc_side"].prog_type == 3        # BPF_PROG_TYPE_SCHED_CLS, from its BTF argument
        assert "struct xdp_md" in prog.object.typed_by_xdplab["reflect"]
        assert prog.run(Ether() / IP() / ICMP()).action == "XDP_TX"
        # the kernel takes the entry program only with BPF_XDP_DEVMAP: the inference is real
        devmap_set(prog["ports"], 0, topo["h2"], egress_prog=prog.program("on_egress"))
        with pytest.raises(XDPLabError, match="Invalid argument"):
            devmap_set(prog["ports"], 1, topo["h2"], egress_prog=prog)
        assert prog.object.unpinned == ["pinned_stats"]
    assert set(os.listdir("/sys/fs/bpf")) == before   # LIBBPF_PIN_BY_NAME left no pin behind


IPROUTE2 = """\
#include <linux/bpf.h>
#include "bpf_elf.h"

#ifndef __section
# define __section(NAME) __attribute__((section(NAME), used))
#endif

struct bpf_elf_map __section("maps") acc = {
\t.type\t\t= BPF_MAP_TYPE_ARRAY,
\t.size_key\t= sizeof(__u32),
\t.size_value\t= sizeof(__u64),
\t.pinning\t= PIN_GLOBAL_NS,
\t.max_elem\t= 2,
};

static void *(*map_lookup_elem)(void *map, const void *key) = (void *) BPF_FUNC_map_lookup_elem;

__section("prog")
int xdp_acc(struct xdp_md *ctx)
{
\t__u32 key = 1;
\t__u64 *n = map_lookup_elem(&acc, &key);
\tif (n)
\t\t__sync_fetch_and_add(n, 1);
\treturn XDP_PASS;
}
char __license[] __section("license") = "GPL";
"""


def test_iproute2_style_bpf_elf_map_and_section_prog():
    """Programs written for `ip link ... obj x.o sec prog`: bpf_elf.h, __section, a "prog"
    section typed from its argument, pinning dropped (xdplab leaves no pins)."""
    assert dialects.detect(IPROUTE2).dialect == "libbpf"
    with xdplab.load(IPROUTE2) as prog:
        assert prog.section == "prog" and prog.name == "xdp_acc"
        assert prog.run(Ether() / IP() / ICMP()).action == "XDP_PASS"
        assert prog["acc"][1] == 1 and prog.counters()["PASS"] == 1


def test_an_unknown_section_without_btf_says_how_to_fix_it(tmp_path):
    c = tmp_path / "nobtf.c"
    c.write_text('#include <linux/bpf.h>\n#include <bpf/bpf_helpers.h>\nSEC("tx")\n'
                 'int f(struct xdp_md *ctx) { return XDP_TX; }\nchar _license[] SEC("license") = "GPL";\n')
    subprocess.run(["clang", "-O2", "-target", "bpf", "-I/usr/include/x86_64-linux-gnu", "-c", str(c),
                    "-o", str(tmp_path / "nobtf.o")], check=True)          # no -g: no BTF
    with pytest.raises(ObjectError) as e:
        xdplab.Program.from_file(tmp_path / "nobtf.o").load()
    assert "section 'tx'" in e.value.hint and "-g" in e.value.hint


OLD_HELPERS_H = """\
/* an old local bpf_helpers.h, as lessons and samples carried before libbpf 1.0 */
#define SEC(NAME) __attribute__((section(NAME), used))
static void *(*bpf_map_lookup_elem)(void *map, void *key) = (void *) BPF_FUNC_map_lookup_elem;
struct bpf_map_def {
\tunsigned int type, key_size, value_size, max_entries, map_flags, inner_map_idx;
};
"""


def test_a_programs_own_old_bpf_helpers_h_with_legacy_maps(tmp_path):
    (tmp_path / "headers").mkdir()
    (tmp_path / "headers" / "bpf_helpers.h").write_text(OLD_HELPERS_H)
    src = LEGACY_MAP.replace("#include <bpf/bpf_helpers.h>", '#include "bpf_helpers.h"')
    with xdplab.load(src, include_dirs=[tmp_path / "headers"]) as prog:     # -I../headers
        assert prog.run(Ether() / IP() / ICMP()).action == "XDP_PASS"
        assert prog["counts"][1] == 1 and prog.counters()["PASS"] == 1     # no clash with ours


def test_an_objects_entry_is_its_first_xdp_program_whatever_the_section(tmp_path):
    c = tmp_path / "sections.c"
    c.write_text(SECTIONS)
    subprocess.run(["clang", "-O2", "-g", "-target", "bpf", "-I/usr/include/x86_64-linux-gnu", "-c", str(c),
                    "-o", str(tmp_path / "sections.o")], check=True)
    spec = xdplab.Program.from_file(tmp_path / "sections.o")
    assert spec.entry == "reflect"                      # SEC("tx"), not the devmap entry program
    with spec.load() as prog:
        assert prog.name == "reflect" and prog.run(Ether() / IP() / ICMP()).action == "XDP_TX"


FENTRY_ONLY = """\
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
SEC("fentry/some_xdp_prog")
int trace(void *ctx) { return 0; }
char _license[] SEC("license") = "GPL";
"""


def test_trampoline_programs_are_refused_or_left_out_with_a_reason():
    with pytest.raises(ObjectError, match=r"no XDP program: trace \(fentry/some_xdp_prog\) attach "
                                          r"through BPF trampolines"):
        xdplab.load(FENTRY_ONLY)
    mixed = FENTRY_ONLY.replace('char _license', 'SEC("xdp")\nint pass(struct xdp_md *ctx) '
                                '{ return XDP_PASS; }\nchar _license')
    with xdplab.load(mixed) as prog:
        assert prog.name == "pass" and "trampolines" in prog.object.not_loaded["trace"]
        assert prog.run(Ether() / IP() / ICMP()).action == "XDP_PASS"


def test_an_object_with_legacy_maps_is_a_typed_error_naming_what_to_change(tmp_path):
    c = tmp_path / "legacy.c"
    c.write_text(LEGACY_MAP.replace('#include <bpf/bpf_helpers.h>\n', '#include <bpf/bpf_helpers.h>\n'
                 'struct bpf_map_def { unsigned int type, key_size, value_size, max_entries, map_flags; };\n'))
    subprocess.run(["clang", "-O2", "-g", "-target", "bpf", "-I/usr/include/x86_64-linux-gnu", "-c", str(c),
                    "-o", str(tmp_path / "legacy.o")], check=True)
    with pytest.raises(ObjectError) as e:
        xdplab.Program.from_file(tmp_path / "legacy.o").load()
    assert "legacy map definitions" in str(e.value)
    assert "load its C source instead" in e.value.hint and "libbpf 1.x" in e.value.hint
    with xdplab.Program.from_file(c).load() as prog:          # the same C, from source: it loads
        assert prog.run(Ether() / IP() / ICMP()).action == "XDP_PASS"


# =====================================================================================
# BCC's own examples (examples/networking/xdp/*.py): the C text, the example's cflags
# =====================================================================================

@published
def test_a_bcc_python_script_itself_is_refused_saying_what_to_pass():
    with pytest.raises(xdplab.UsageError, match="BCC Python script") as e:
        xdplab.Program.from_file(SRC / "bcc" / "xdp_drop_count.py").load()
    assert "'-DRETURNCODE=%s' % ret" in e.value.hint                 # its computed cflags, named
    text, cflags, _ = dialects.bcc_script((SRC / "bcc" / "xdp_redirect_map.py").read_text())
    assert cflags == ["-w"] and "BPF_DEVMAP(tx_port, 1);" in text    # literal ones, returned


@published
def test_bcc_xdp_drop_count(topo):
    h1 = topo["h1"]
    cflags = ["-w", "-DRETURNCODE=XDP_DROP", "-DCTXTYPE=xdp_md", '-DMAPTYPE="percpu_array"']
    with bcc("xdp_drop_count.py", cflags, func="xdp_prog1") as prog:
        prog.attach(h1.outside)
        assert h1.ping(h1.gw4, count=5, interval=0.05) == 0
        prog.detach()
        assert percpu_total(prog["dropcnt"], 1) >= 5               # IPPROTO_ICMP
        assert prog.counters()["DROP"] == sum(prog["dropcnt"].to_dict(sum_cpus=True).values())


@published
def test_bcc_xdp_macswap_count(topo):
    h1 = topo["h1"]
    with bcc("xdp_macswap_count.py", ["-w", "-DRETURNCODE=XDP_TX", "-DCTXTYPE=xdp_md"],
             func="xdp_prog1") as prog:
        r = prog.run(UDP_PKT)                                      # UDP: MACs swapped, sent back
        assert r.action == "XDP_TX"
        assert (r.packet.src, r.packet.dst) == (UDP_PKT.dst, UDP_PKT.src)
        assert arrivals(prog, h1, h1.gw4, h1)[0] >= 5             # RETURNCODE=XDP_TX: back to h1
        assert percpu_total(prog["dropcnt"], 1) >= 5 and prog.counters()["TX"] >= 5


@published
def test_bcc_xdp_redirect_map(topo):
    h1, h2 = topo["h1"], topo["h2"]
    text = bcc_example("xdp_redirect_map.py")
    with xdplab.load(text, cflags=["-w"], func="xdp_redirect_map") as prog, \
            xdplab.load(text, cflags=["-w"], func="xdp_dummy") as dummy:
        devmap_set(prog["tx_port"], 0, h2)   # tx_port[0] = out_idx
        dummy.attach(h2.outside)                                    # as the example does
        assert arrivals(prog, h1, h2.ipv4, h2)[0] >= 5
        assert percpu_total(prog["rxcnt"], 0) == prog.counters()["REDIRECT"] >= 5


@published
def test_bcc_xdp_redirect_cpu(topo):
    h1 = topo["h1"]
    with bcc("xdp_redirect_cpu.py", ["-w", f"-D__MAX_CPU__={os.cpu_count()}"],
             func="xdp_redirect_cpu") as prog:
        prog["dest"][0] = 0                                         # dest[0] = cpu_id
        cpumap_set(prog["cpumap"], 0, qsize=192)           # cpumap[cpu_id] = 192
        prog.attach(h1.outside)
        assert h1.ping(h1.gw4, count=5, interval=0.05) == 5        # the skb is built on CPU 0
        prog.detach()
        assert percpu_total(prog["rxcnt"], 0) == prog.counters()["REDIRECT"] >= 5


# =====================================================================================
# xdp-tutorial lessons
# =====================================================================================

@published
def test_tutorial_basic01_xdp_pass(topo):
    h1 = topo["h1"]
    with load("xdp-tutorial/basic01-xdp-pass/xdp_pass_kern.c") as prog:    # "bpf_helpers.h"
        assert prog.name == "xdp_prog_simple"
        prog.attach(h1.outside)
        assert h1.ping(h1.gw4, count=3, interval=0.05) == 3
        prog.detach()
        assert prog.counters()["PASS"] >= 3


@published
def test_tutorial_basic02_programs_by_section_name(topo):
    h1 = topo["h1"]
    with load("xdp-tutorial/basic02-prog-by-name/xdp_prog_kern.c", func="xdp2") as prog:
        assert prog.name == "xdp_drop" and prog.section == "xdp2"
        assert set(prog.object.programs) == {"xdp_pass", "xdp_drop", "xdp_aborted"}
        prog.attach(h1.outside)
        assert h1.ping(h1.gw4, count=3, interval=0.05, timeout=0.3) == 0
        passing = prog.program("xdp1")
        passing.attach(h1.outside)                                  # the link swaps
        assert h1.ping(h1.gw4, count=3, interval=0.05) == 3
        passing.detach()
        assert prog.program("xdp3").run(Ether() / IP() / ICMP()).action == "XDP_ABORTED"
        assert prog.counters()["DROP"] >= 3 and prog.counters()["PASS"] >= 3


@published
def test_tutorial_lessons_with_their_own_old_headers_dir(topo):
    """The tutorial's first Makefiles built with -I../headers: its own old bpf_helpers.h."""
    h1 = topo["h1"]
    headers = SRC / "xdp-tutorial/headers"
    with load("xdp-tutorial/basic02-prog-by-name/xdp_prog_kern.c", include_dirs=[headers],
              func="xdp_drop") as prog:
        prog.attach(h1.outside)
        assert h1.ping(h1.gw4, count=3, interval=0.05, timeout=0.3) == 0
        prog.detach()
        assert prog.counters()["DROP"] >= 3
    with load("xdp-tutorial/basic01-xdp-pass/xdp_pass_kern.c", include_dirs=[headers]) as prog:
        assert prog.run(Ether() / IP() / ICMP()).action == "XDP_PASS"


@published
def test_tutorial_basic03_legacy_map_counter(topo):
    h1 = topo["h1"]
    with load("xdp-tutorial/basic03-map-counter/xdp_prog_kern.c") as prog:
        assert prog.section == "xdp_stats1"
        prog.attach(h1.outside)
        assert h1.ping(h1.gw4, count=4, interval=0.05) == 4
        prog.detach()
        packets, _ = datarec(prog["xdp_stats_map"], 2)              # XDP_PASS
        assert packets == prog.counters()["PASS"] >= 4


@published
def test_tutorial_packet01_lesson_bug_is_the_verifiers_error_on_its_line():
    """packet01 ships with a bounds-check bug (the lesson's assignment: `nh->pos + 1`)."""
    with pytest.raises(VerifierError) as e:
        load("xdp-tutorial/packet01-parsing/xdp_prog_kern.c")
    assert e.value.line == 45 and "eth->h_proto" in str(e.value)
    assert "outside of the packet" in str(e.value)


@published
def test_tutorial_packet02_solution_rewrites_ports_and_vlans(topo):
    h1 = topo["h1"]
    with load("xdp-tutorial/packet-solutions/xdp_prog_kern_02.c", func="xdp_patch_ports") as prog:
        r = prog.run(UDP_PKT)
        assert r.action == "XDP_PASS" and r.packet[UDP].dport == 999
        tcp = Ether() / IP() / TCP(dport=80)
        assert prog.run(tcp).packet[TCP].dport == 79
        swap = prog.program("xdp_vlan_swap_func")
        tagged = swap.run(UDP_PKT).packet
        assert tagged[Dot1Q].vlan == 1 and tagged[UDP].dport == 1000
        assert Dot1Q not in swap.run(tagged).packet
        assert "xdp_stats_map" in prog.object.unpinned             # LIBBPF_PIN_BY_NAME: no pin left
        prog.attach(h1.outside)
        assert h1.ping(h1.gw4, count=3, interval=0.05) == 3
        prog.detach()
        assert datarec(prog["xdp_stats_map"], 2)[0] >= 3 + 1       # the run() above counted too


@published
def test_tutorial_packet03_redirect_map_filled_as_its_loader_does(topo):
    h1, h2 = topo["h1"], topo["h2"]
    with load("xdp-tutorial/packet03-redirecting/xdp_prog_kern.c", func="xdp_redirect_map_func") as prog:
        assert {"tx_port", "redirect_params", "xdp_stats_map"} <= set(prog.maps)
        mac = lambda m: bytes.fromhex(m.replace(":", ""))
        prog["redirect_params"][mac(h1.mac)] = mac(h2.mac)          # what xdp_prog_user.c writes
        devmap_set(prog["tx_port"], 0, h2)
        r = prog.run(Ether(src=h1.mac, dst=h1.gw_mac) / IP() / ICMP())
        assert r.action == "XDP_REDIRECT" and r.packet.dst == h2.mac
        assert prog.run(Ether(src=h2.mac) / IP() / ICMP()).action == "XDP_PASS"   # unknown source
        neigh(h1, h1.gw4, h1.gw_mac)
        assert arrivals(prog, h1, h2.ipv4, h2, timeout=0.3)[0] >= 5    # arrived in h2
        assert datarec(prog["xdp_stats_map"], 4)[0] >= 5              # XDP_REDIRECT


# =====================================================================================
# Kernel samples (samples/bpf, kernel-tree style: <uapi/...>, "bpf_helpers.h", legacy maps)
# =====================================================================================

@published
def test_samples_xdp1_drops_and_counts_per_protocol(topo):
    h1 = topo["h1"]
    with load("linux/samples/bpf/xdp1_kern.c") as prog:
        prog.attach(h1.outside)
        assert h1.ping(h1.gw4, count=5, interval=0.05, timeout=0.3) == 0
        prog.detach()
        assert percpu_total(prog["rxcnt"], 1) >= 5 and prog.counters()["DROP"] >= 5


@published
def test_samples_xdp2_swaps_udp_back_and_drops_the_rest(topo):
    h1 = topo["h1"]
    with load("linux/samples/bpf/xdp2_kern.c") as prog:
        r = prog.run(UDP_PKT)
        assert r.action == "XDP_TX" and (r.packet.src, r.packet.dst) == (UDP_PKT.dst, UDP_PKT.src)
        prog.attach(h1.outside)
        assert h1.ping(h1.gw4, count=5, interval=0.05, timeout=0.3) == 0
        prog.detach()
        assert percpu_total(prog["dropcnt"], 1) >= 5 and percpu_total(prog["dropcnt"], 17) == 1


@published
def test_samples_xdp_adjust_tail_answers_big_packets_with_icmp_too_big(topo):
    h1 = topo["h1"]
    with load("linux/samples/bpf/xdp_adjust_tail_kern.c") as prog:
        big = Ether(src=h1.mac, dst=h1.gw_mac) / IP(src=h1.ipv4, dst=h1.gw4) / UDP() / Raw(b"x" * 700)
        r = prog.run(big)
        assert r.action == "XDP_TX"
        out = r.packet
        assert (out[IP].dst, out[ICMP].type, out[ICMP].code) == (h1.ipv4, 3, 4)    # frag needed
        assert out[ICMP].nexthopmtu == 600 - 14 and out.dst == h1.mac
        assert prog["icmpcnt"][0] == 1
        prog.attach(h1.outside)
        assert h1.ping(h1.gw4, count=3, interval=0.05) == 3         # small packets pass
        prog.detach()


# =====================================================================================
# Kernel selftests (tools/testing/selftests/bpf/progs, -I tools/testing/selftests/bpf)
# =====================================================================================

@published
def test_selftest_xdp_dummy_two_programs(topo):
    h1 = topo["h1"]
    with selftest("xdp_dummy.c", func="__x64_sys_nop") as prog:
        assert set(prog.object.programs) == {"xdp_dummy_prog", "__x64_sys_nop"}
        prog.attach(h1.outside)
        assert h1.ping(h1.gw4, count=3, interval=0.05) == 3
        prog.detach()
        assert prog.counters()["PASS"] >= 3


@published
def test_selftest_xdp_tx_in_section_tx(topo):
    h1 = topo["h1"]
    with selftest("xdp_tx.c") as prog:                  # SEC("tx"), "bpf_helpers.h"
        assert prog.name == "xdp_tx" and prog.section == "tx"
        assert prog.run(Ether() / IP() / ICMP()).action == "XDP_TX"
        assert arrivals(prog, h1, h1.gw4, h1, count=3, timeout=0.3)[0] >= 3
        assert prog.counters()["TX"] >= 3


@published
def test_selftest_xdp_redirect_map_counted_by_its_own_count_program(topo):
    h1, h2 = topo["h1"], topo["h2"]
    with selftest("xdp_redirect_map.c", func="xdp_redirect_map_0") as prog:
        devmap_set(prog["tx_port"], 0, h2)
        counter = prog.program("xdp_count_0")              # the receiving side, as the selftest does
        # inside h2 its veth carries h2's default route (not this machine's): force=True
        counter.attach((h2.netns, h2.inside), force=True)
        neigh(h1, h1.gw4, h1.gw_mac)
        prog.attach(h1.outside)
        h1.ping(h2.ipv4, count=5, interval=0.05, timeout=0.3)
        prog.detach()
        counter.detach()
        assert prog["rxcnt"][0] >= 5                        # IPv4 frames that arrived in h2
        assert prog.counters()["REDIRECT"] >= 5


@published
def test_selftest_adjust_tail_shrink():
    with selftest("test_xdp_adjust_tail_shrink.c") as prog:
        assert prog.section == "xdp_adjust_tail_shrink"
        v4 = Ether() / IP() / TCP()                         # 54 bytes: shrinks too much
        assert len(v4) == 54 and prog.run(v4).action == "XDP_DROP"
        r = prog.run(Ether() / IP() / TCP() / Raw(b"y" * 46))
        assert r.action == "XDP_TX" and len(r.data) == 100 - 20


@published
def test_selftest_test_xdp_ip_tunnel_with_a_struct_keyed_map():
    with selftest("test_xdp.c") as prog:
        vip = {"daddr": {"v4": 0x0100000a}, "dport": 0x5000, "family": 2, "protocol": 6}   # 10.0.0.1:80
        prog["vip2tnl"][vip] = {"saddr": {"v4": 0x0200000a}, "daddr": {"v4": 0x0300000a}, "family": 2,
                                "dmac": [2, 0, 0, 0, 0, 9]}
        r = prog.run(Ether() / IP(dst="10.0.0.1") / TCP(dport=80))
        assert r.action == "XDP_TX"
        outer = r.packet[IP]
        assert (outer.src, outer.dst, outer.proto) == ("10.0.0.2", "10.0.0.3", 4)   # IP in IP
        assert r.packet.dst == "02:00:00:00:00:09"
        assert prog.run(Ether() / IP(dst="10.0.0.9") / TCP(dport=80)).action == "XDP_PASS"
        assert percpu_total(prog["rxcnt"], 6) == 1


@published
def test_selftest_shared_headers_are_found_without_the_makefiles_include_flag():
    """progs/test_xdp.c includes "test_iptunnel_common.h" from the directory above, which
    the selftests' Makefile passes as -I: a last-resort search one and two levels up."""
    with load(f"{SELF}/progs/test_xdp.c") as prog:
        assert prog.name == "_xdp_tx_iptunnel" and "vip2tnl" in prog.maps


@published
def test_selftest_update_frags_multibuffer():
    with selftest("test_xdp_update_frags.c") as prog:
        assert prog.frags and prog.section == "xdp.frags"
        frame = bytearray(5000)
        frame[0:4] = struct.pack("<I", 4000)                # where the marker is: in a fragment
        frame[4000:4016] = b"\xaa" * 16
        r = prog.run(bytes(frame))
        assert r.action == "XDP_PASS" and r.data[4000] == 0xbb and r.data[4015] == 0xbb
        frame[4000] = 0x11
        assert prog.run(bytes(frame)).action == "XDP_DROP"


@published
def test_selftest_devmap_entry_programs_by_section(topo):
    h2 = topo["h2"]
    with selftest("test_xdp_with_devmap_helpers.c") as prog:
        assert prog.name == "xdp_redir_prog"                # not the devmap entry program
        dm = prog.program("xdp_dummy_dm")                   # SEC("xdp_devmap/map_prog")
        assert dm.ref.expected_attach_type == kernel.BPF_XDP_DEVMAP
        devmap_set(prog["dm_ports"], 1, h2, egress_prog=dm)
        with pytest.raises(XDPLabError):                    # SEC("xdp_dummy"): the selftest's
            devmap_set(prog["dm_ports"], 2, h2,               # "invalid program on DEVMAP entry"
                       egress_prog=prog.program("xdp_dummy_prog"))
        assert prog.run(Ether() / IP() / ICMP()).action == "XDP_REDIRECT"


@published
def test_selftest_vlan_programs_and_a_tc_program_in_one_object():
    with selftest("test_xdp_vlan.c", func="xdp_drop_vlan_4011") as prog:
        vlan = lambda vid: Ether() / Dot1Q(vlan=vid) / IP() / ICMP()
        assert prog.run(vlan(4011)).action == "XDP_ABORTED"
        assert prog.run(vlan(5)).action == "XDP_PASS"
        change = prog.program("xdp_vlan_change")
        assert change.run(vlan(4011)).packet[Dot1Q].vlan == 0
        remove = prog.program("xdp_vlan_remove_outer")
        out = remove.run(vlan(4011)).packet
        assert Dot1Q not in out and out[IP] is not None
        assert prog.object.programs["_tc_progA"].prog_type == 3     # typed TC, loaded, not attached


@published
def test_selftest_fentry_on_an_xdp_program_is_refused_naming_trampolines():
    with pytest.raises(ObjectError) as e:
        selftest("test_xdp_bpf2bpf.c")
    assert "trace_on_entry (fentry/_xdp_tx_iptunnel)" in str(e.value)
    assert "trampolines" in str(e.value) and "EPERM" in str(e.value)


# =====================================================================================
# bpf-examples, and objects built the way their Makefiles build them
# =====================================================================================

@published
def test_bpf_examples_xdp_pass_in_section_xdp_slash_pass(topo):
    h1 = topo["h1"]
    with load("bpf-examples/bpf-link-hang/xdp-pass.c") as prog:
        assert prog.section == "xdp/pass"
        prog.attach(h1.outside)
        assert h1.ping(h1.gw4, count=3, interval=0.05) == 3
        prog.detach()
        assert prog.counters()["PASS"] >= 3


@published
def test_objects_built_like_their_makefiles(topo, tmp_path):
    h1 = topo["h1"]
    # xdp-tutorial's common.mk: clang -S -emit-llvm, then llc (its headers/ -> libbpf's)
    lesson = SRC / "xdp-tutorial/basic02-prog-by-name"
    ll, obj = tmp_path / "xdp_prog_kern.ll", tmp_path / "xdp_prog_kern.o"
    subprocess.run(["clang", "-S", "-target", "bpf", "-D", "__BPF_TRACING__", "-I/usr/include/bpf",
                    "-I/usr/include/x86_64-linux-gnu", "-Wall", "-Wno-unused-value", "-Wno-pointer-sign",
                    "-Wno-compare-distinct-pointer-types", "-Werror", "-O2", "-emit-llvm", "-c", "-g",
                    "-o", str(ll), str(lesson / "xdp_prog_kern.c")], check=True)
    subprocess.run(["llc", "-march=bpf", "-filetype=obj", "-o", str(obj), str(ll)], check=True)
    with xdplab.Program.from_file(obj, func="xdp2").load() as prog:
        assert prog.dialect.dialect == "elf" and prog.name == "xdp_drop"
        prog.attach(h1.outside)
        assert h1.ping(h1.gw4, count=3, interval=0.05, timeout=0.3) == 0
        prog.detach()
        assert prog.counters()["DROP"] >= 3                 # the object's counting wrapper
    # selftests' Makefile: clang -g -O2 --target=bpf -I. -idirafter system dirs
    st = SRC / SELF
    obj = tmp_path / "test_xdp.bpf.o"
    subprocess.run(["clang", "-g", "-Wall", "-Werror", "-Wno-compare-distinct-pointer-types",
                    "-D__TARGET_ARCH_x86", "-mlittle-endian",
                    f"-I{st}", "-idirafter", "/usr/include", "-idirafter", "/usr/include/x86_64-linux-gnu",
                    "-O2", "--target=bpf", "-c", str(st / "progs/test_xdp.c"), "-o", str(obj)], check=True)
    with xdplab.Program.from_file(obj).load() as prog:
        assert isinstance(prog, LibbpfProgram) and prog.name == "_xdp_tx_iptunnel"
        assert prog.run(Ether() / IP() / TCP()).action == "XDP_PASS"      # no tunnel for it
        assert "vip2tnl" in prog.maps and prog.counters()["PASS"] == 1


@published
def test_samples_xdp_redirect_map_bpf_linked_as_its_makefile_links_it(topo, tmp_path):
    """samples/bpf's *.bpf.c programs share maps defined in xdp_sample.bpf.c (extern): the
    Makefile compiles both against vmlinux.h and links them with `bpftool gen object`; its
    loader sizes the per-CPU record arrays and sets nr_cpus before load."""
    h1, h2 = topo["h1"], topo["h2"]
    samples = SRC / "linux/samples/bpf"
    with pytest.raises(ObjectError) as e:                  # the source alone: rx_cnt is extern
        load("linux/samples/bpf/xdp_redirect_map.bpf.c")
    assert "extern 'rx_cnt'" in str(e.value) and "bpftool gen object" in e.value.hint
    vm = dialects.vmlinux_dir()
    for f in ("xdp_redirect_map", "xdp_sample"):
        subprocess.run(["clang", "-O2", "-g", "--target=bpf", "-D__TARGET_ARCH_x86", f"-I{vm}", f"-I{samples}",
                        "-c", str(samples / f"{f}.bpf.c"), "-o", str(tmp_path / f"{f}.bpf.o")], check=True)
    linked = tmp_path / "xdp_redirect_map.skel.o"
    subprocess.run(["bpftool", "gen", "object", str(linked), str(tmp_path / "xdp_redirect_map.bpf.o"),
                    str(tmp_path / "xdp_sample.bpf.o")], check=True, capture_output=True)
    with pytest.raises(xdplab.UsageError, match="rx_cnt.*declare no max_entries") as e:
        xdplab.Program.from_file(linked).load()
    assert "map_sizes=" in e.value.hint
    ncpu = kernel.possible_cpus()
    sizes = {m: ncpu for m in ("rx_cnt", "redir_err_cnt", "cpumap_kthread_cnt")}
    sizes.update(cpumap_enqueue_cnt=ncpu * ncpu, exception_cnt=ncpu * 6)   # as its loader does
    with xdplab.Program.from_file(linked, func="xdp_redirect_map_general", map_sizes=sizes,
                                  globals={"nr_cpus": ncpu}).load() as prog:
        # tracepoints this kernel lacks are left out, the rest of the object loads
        assert all("has no tracepoint" in why for why in prog.object.not_loaded.values())
        assert prog.globals["nr_cpus"] == ncpu
        devmap_set(prog["tx_port_general"], 0, h2)
        r = prog.run(Ether(src=h1.mac, dst=h1.gw_mac) / IP() / ICMP())
        assert r.action == "XDP_REDIRECT" and (r.packet.src, r.packet.dst) == (h1.gw_mac, h1.mac)
        neigh(h1, h1.gw4, h1.gw_mac)
        assert arrivals(prog, h1, h2.ipv4, h2, timeout=0.3)[0] >= 5
        processed = sum(prog["rx_cnt"][cpu].processed for cpu in range(ncpu))
        assert processed == prog.counters()["REDIRECT"] >= 6        # the run() above counts too


@published
def test_samples_xdp_fwd_routes_with_the_fib(router_factory):
    """A kernel-tree sample (__force, cpu_to_be32, htons) forwarding with bpf_fib_lookup, in a
    router namespace. Its devmap (64 entries) is keyed by ifindex, and veths moved into a
    namespace keep the root namespace's (here in the thousands): map_sizes= makes room."""
    t = router_factory(hosts=("h1", "h2"))
    h1, h2 = t["h1"], t["h2"]
    with load("linux/samples/bpf/xdp_fwd_kern.c", map_sizes={"xdp_tx_ports": max(64, h2.ifindex + 1)}) as prog:
        assert prog.name == "xdp_fwd_prog" and prog.section == "xdp_fwd"
        assert h1.ping(h2.ipv4, count=1) == 1                  # the router learns h2's MAC
        # what xdp_fwd_user.c does, in the namespace whose devices it names
        t.in_router(prog["xdp_tx_ports"].set, h2.ifindex, h2.outside, check=False)
        pkt = Ether(src=h1.mac, dst=h1.gw_mac) / IP(src=h1.ipv4, dst=h2.ipv4, ttl=64) / ICMP()
        r = t.in_router(prog.run, pkt, ingress_ifindex=h1.ifindex)
        assert r.action == "XDP_REDIRECT"
        out = r.packet
        assert (out.src, out.dst, out[IP].ttl) == (h2.gw_mac, h2.mac, 63)
        check = out[IP].chksum
        del out[IP].chksum
        assert IP(bytes(out[IP])).chksum == check             # the incremental checksum is right
        before = prog.counters()["REDIRECT"]
        t.attach_host(prog.program("xdp_fwd_direct_prog"), "h2")   # h2's veth needs a peer program
        t.attach(prog, "h1")
        assert h1.ping(h2.ipv4, count=5, interval=0.05) == 5   # forwarded by XDP, answered
        t.detach()
        assert prog.counters()["REDIRECT"] - before >= 5


@published
def test_tutorial_af_xdp_kern_passes_every_other_packet_without_a_socket(topo):
    h1 = topo["h1"]
    with load("xdp-tutorial/advanced03-AF_XDP/af_xdp_kern.c") as prog:
        assert prog["xsks_map"].__class__.__name__ == "XskMap"
        for _ in range(3):
            assert prog.run(Ether() / IP() / ICMP()).action == "XDP_PASS"   # no socket bound
        assert int(sum(prog["xdp_stats_map"][0])) == 3
        prog.attach(h1.outside)
        assert h1.ping(h1.gw4, count=3, interval=0.05) == 3
        prog.detach()


@published
def test_selftest_redirect_multi_broadcasts_to_every_other_port(topo_factory):
    t = topo_factory(hosts=("h1", "h2", "h3"))
    h1, h2, h3 = t["h1"], t["h2"], t["h3"]
    with selftest("xdp_redirect_multi_kern.c") as prog:
        assert prog.name == "xdp_redirect_map_multi_prog"
        for i, h in enumerate((h1, h2, h3)):    # every port in map_all (the selftest keys them by
            devmap_set(prog["map_all"], i, h)    # ifindex: small in its netns, not in this root one)
        assert prog.run(Ether() / IP() / ICMP(), ifname=h1).action == "XDP_REDIRECT"
        neigh(h1, h1.gw4, h1.gw_mac)
        got = arrivals(prog, h1, h1.gw4, h2, h3, timeout=0.3)       # IPv4: broadcast, not to h1
        assert min(got) >= 5, got
