"""Maps typed by BTF (issue 13), on the real kernel: every listed map type, struct keys and
values, per-CPU values, pin / open from a pin, bad keys and values, use after close."""
from __future__ import annotations

import os
import struct

import numpy as np
from pathlib import Path
import pytest
from scapy.all import IP, UDP, Ether

import xdplab
from xdplab import kernel
from xdplab.kernel import procstate
from xdplab.programs import typedmaps as tm
from xdplab.kernel.btf import BTF, Builder
from xdplab.errors import ClosedError, MapKeyError, NotSupported, UsageError

pytestmark = pytest.mark.kernel
ROOT = Path(__file__).resolve().parent.parent

FLOWS = r"""
struct flow { u32 saddr; u16 dport; u8 proto; u8 pad; };
struct stats { u64 packets; u64 bytes; u8 last_ttl; };
BPF_HASH(flows, struct flow, struct stats, 64);
BPF_PERCPU_ARRAY(per_proto, struct stats, 256);
int count_flows(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data, *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    struct iphdr *ip = (void *)(eth + 1);
    struct udphdr *udp = (void *)(ip + 1);
    if ((void *)(udp + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
        return XDP_PASS;
    struct flow k = {.saddr = ip->saddr, .dport = bpf_ntohs(udp->dest), .proto = ip->protocol};
    struct stats zero = {}, *s = flows.lookup_or_try_init(&k, &zero);
    if (s) {
        s->packets++;
        s->bytes += data_end - data;
        s->last_ttl = ip->ttl;
    }
    u32 p = ip->protocol;
    struct stats *pp = per_proto.lookup(&p);
    if (pp)
        pp->packets++;
    return XDP_PASS;
}
"""


def udp(dport, ttl=64):
    return Ether() / IP(src="10.1.2.3", dst="10.0.0.1", ttl=ttl) / UDP(sport=1000, dport=dport) / (b"x" * 10)


SADDR = struct.unpack("<I", bytes([10, 1, 2, 3]))[0]       # as the program stores it (network order)


@pytest.fixture(scope="module")
def flows_prog():
    prog = xdplab.load(FLOWS)
    prog.run(udp(53), repeat=3)
    prog.run(udp(80, ttl=9), repeat=2)
    yield prog
    prog.close()


def test_bcc_struct_keys_and_values_by_field(flows_prog):
    m = tm.open(flows_prog["flows"])
    assert m.typed and repr(m) == "<HashMap flows (hash, struct flow -> struct stats, max 64)>"
    d = m.to_dict()
    assert len(d) == 2
    k53 = {"saddr": SADDR, "dport": 53, "proto": 17}
    v = m[k53]
    assert (v.packets, v.bytes, v.last_ttl) == (3, 3 * 52, 64)
    key = next(k for k in d if k.dport == 80)
    assert key.saddr == SADDR and key.proto == 17 and d[key].last_ttl == 9
    m[k53] = {"packets": 100}                      # missing fields are zero
    assert m[k53]._asdict() == {"packets": 100, "bytes": 0, "last_ttl": 0}
    m[(SADDR, 7, 6, 0)] = (1, 2, 3)                # tuples of every field, in order
    assert m[{"saddr": SADDR, "dport": 7, "proto": 6}].bytes == 2
    del m[(SADDR, 7, 6, 0)]
    assert (SADDR, 7, 6, 0) not in m and len(m) == 2
    assert list(m.to_df().columns) == ["key", "packets", "bytes", "last_ttl"]
    m.close()


def test_all_maps_of_a_program(flows_prog):
    maps = tm.of(flows_prog)
    assert {n: type(m).__name__ for n, m in maps.items()} == {
        "flows": "HashMap", "per_proto": "PerCpuArrayMap", "xdplab_actions": "PerCpuArrayMap"}
    assert maps["xdplab_actions"].sum(2)["packets"] == flows_prog.counters()["PASS"] == 5
    for m in maps.values():
        m.close()


@pytest.mark.parametrize("key,value,match", [
    ({"saddr": -1}, {}, r"key.saddr = -1 is out of range for u32"),
    ({"saddr": 1 << 32}, {}, r"key.saddr = 4294967296 is out of range for u32"),
    ({"sadr": 1}, {}, r"(?s)struct flow has no field 'sadr'.*its fields: saddr, dport, proto, pad"),
    ((1, 2, 3), {}, r"key has 3 items, struct flow has 4 fields"),
    (b"\0" * 5, {}, r"key of 5 bytes for map flows, whose keys are 8 bytes"),
    ({"saddr": 1}, {"packets": 1.5}, r"value.packets = 1.5: not an integer"),
    ({"saddr": 1}, {"last_ttl": 256}, r"value.last_ttl = 256 is out of range for u8"),
    ({"saddr": 1}, 5, r"value = 5 is not a struct stats"),
])
def test_bad_keys_and_values_are_typed_errors_that_change_nothing(flows_prog, key, value, match):
    m = tm.open(flows_prog["flows"])
    before = m.to_dict()
    with pytest.raises(UsageError, match=match):
        m[key] = value
    assert m.to_dict() == before
    with pytest.raises(MapKeyError, match="is not in map flows"):
        m[{"saddr": 9}]


def test_bcc_per_cpu_struct_values_are_numpy(flows_prog):
    m = tm.open(flows_prog["per_proto"])
    assert m.percpu and m.ncpus == kernel.possible_cpus()
    v = m[17]
    assert isinstance(v, np.ndarray) and v.shape == (m.ncpus,) and v.dtype.names == ("packets", "bytes", "last_ttl")
    assert v["packets"].sum() == 5 and m.sum(17)["packets"] == 5
    m[6] = {"packets": 2}                           # one value: every CPU
    assert list(m[6]["packets"]) == [2] * m.ncpus
    with pytest.raises(UsageError, match="possible CPUs"):
        m[6] = [{"packets": 1}] * (m.ncpus + 1)
    with pytest.raises(MapKeyError, match="index 256 is out of range for array per_proto"):
        m[256]
    with pytest.raises(UsageError, match="cannot be deleted"):
        del m[6]


def test_map_types_created_with_btf():
    ncpu = kernel.possible_cpus()
    flow = [("saddr", "u32"), ("dport", "u16"), ("pad", "u16")]
    for kind in ("hash", "lru_hash"):
        with tm.create(kind, flow, [("packets", "u64"), ("mac", "u8[6]")], 8, name=f"t_{kind}") as m:
            assert type(m).__name__ == "HashMap" and m.kind == kind
            m[{"saddr": 1, "dport": 2}] = {"packets": 3, "mac": bytes.fromhex("020000000001")}
            (k, v), = m.items()
            assert k == (1, 2, 0) and v.mac == bytes.fromhex("020000000001")
            with pytest.raises(UsageError, match=r"value.mac: 7 bytes do not fit"):
                m[k] = {"mac": b"1234567"}
    with tm.create("array", "u32", "s16", 4, name="t_array") as m:
        m[3] = -5
        assert m.to_dict() == {0: 0, 1: 0, 2: 0, 3: -5}
        with pytest.raises(UsageError, match=r"(?s)value = 40000 is out of range for __s16.*-32768\.\.32767"):
            m[0] = 40000
        m.clear()
        assert m[3] == 0
    for kind, cls in (("percpu_array", "PerCpuArrayMap"), ("percpu_hash", "PerCpuHashMap"),
                      ("lru_percpu_hash", "PerCpuHashMap")):
        with tm.create(kind, "u32", "u32", 4, name=f"t_{kind}") as m:
            assert type(m).__name__ == cls
            m[1] = list(range(10, 10 + ncpu))         # one value per CPU
            assert m[1].tolist() == list(range(10, 10 + ncpu)) and m.sum(1) == sum(range(10, 10 + ncpu))
            m[2] = np.full(ncpu, 7)
            assert (m[2] == 7).all()
    with tm.create("lpm_trie", [("prefixlen", "u32"), ("data", "u8[4]")], "u32", 16, name="t_lpm",
                   flags=1) as m:                      # BPF_F_NO_PREALLOC
        m["10.0.0.0/8"] = 8
        m["10.1.0.0/16"] = 16
        assert m["10.1.2.3/32"] == 16 and m["10.9.9.9/32"] == 8     # longest prefix wins
        assert sorted(m.prefix(k) for k in m.keys()) == ["10.0.0.0/8", "10.1.0.0/16"]
        with pytest.raises(UsageError, match="16 address bytes do not fit"):
            m["fc00::/7"] = 1
        with pytest.raises(MapKeyError):
            m["192.168.0.0/16"]


def test_redirect_maps_by_interface_name(topo):
    h1, h2 = topo["h1"], topo["h2"]
    with xdplab.load("BPF_DEVMAP(tx_port, 4);\nBPF_CPUMAP(cpus, 2);\n"
                     "int r(struct xdp_md *ctx) { return tx_port.redirect_map(0, 0) + cpus.redirect_map(0, 0); }") as prog:
        dm = tm.open(prog["tx_port"])
        assert type(dm).__name__ == "DevMap"
        dm.set(1, h2, check=False)                               # a lab host: its root-side veth
        dm.set(2, h1.outside, check=False)                       # an interface name
        assert dm[1]["ifname"] == h2.outside and dm[2]["ifindex"] == h1.ifindex
        assert {k: v["ifname"] for k, v in dm.items()} == {1: h2.outside, 2: h1.outside}
        with pytest.raises(MapKeyError, match="index 4 is out of range"):
            dm.set(4, h2, check=False)
        cm = tm.open(prog["cpus"])
        assert type(cm).__name__ == "CpuMap"
        cm[0] = 192
        assert cm[0]["qsize"] == 192
        with pytest.raises(UsageError, match="qsize = -1 is out of range"):
            cm[0] = -1
    with tm.create("devmap_hash", "u32", "u32", 8, name="t_devhash") as dh:
        dh.set(h2.ifindex, h2, check=False)                       # keyed by anything, e.g. ifindex
        assert dh[h2.ifindex]["ifname"] == h2.outside
        del dh[h2.ifindex]
        assert len(dh) == 0


def test_xskmap_takes_a_socket(topo):
    from xdplab.net.afxdp import XSK
    h1 = topo["h1"]
    src = ("BPF_XSKMAP(xsks, 4);\n"
           "int has_xsk(struct xdp_md *ctx) { u32 q = 0; return xsks.lookup(&q) ? XDP_DROP : XDP_PASS; }")
    frame = Ether() / IP() / UDP()
    with xdplab.load(src) as prog, XSK(h1.outside, 0) as xsk:
        m = tm.open(prog["xsks"])
        assert type(m).__name__ == "XskMap"
        assert prog.run(frame).action == "XDP_PASS"
        m[0] = xsk
        assert prog.run(frame).action == "XDP_DROP"          # the program sees the socket
        with pytest.raises(NotSupported, match="reading xskmap xsks from user space"):
            m[0]
        with pytest.raises(UsageError, match="is not an AF_XDP socket"):
            m[1] = "eth0"
        del m[0]
        assert prog.run(frame).action == "XDP_PASS"


def test_pin_open_from_pin_and_cleanup(flows_prog):
    m = tm.open(flows_prog["flows"])
    path = m.pin("flows-pinned")
    assert path == f"/sys/fs/bpf/xdplab-{os.getpid()}-{procstate.starttime()}-maps/flows-pinned"
    assert os.path.exists(path)
    with pytest.raises(UsageError, match="is taken"):
        m.pin("flows-pinned")
    again = tm.from_pin(path)
    assert again.to_dict() == m.to_dict() and repr(again) == repr(m)
    assert tm.open(path).info["id"] == m.info["id"]               # open() takes a path too
    again.close()
    tm.cleanup()
    assert not os.path.exists(path) and not tm.pin_dir().exists()
    with pytest.raises(UsageError, match="no BPF map pinned at"):
        tm.from_pin(path)
    with pytest.raises(UsageError, match="not under /sys/fs/bpf"):
        m.pin("/tmp/x")


def test_pinned_map_outlives_its_program():
    prog = xdplab.load("BPF_ARRAY(keep, u64, 2);\nint k(struct xdp_md *ctx) { return XDP_PASS; }")
    m = tm.open(prog["keep"])
    m[1] = 42
    path = m.pin()
    prog.close()
    with pytest.raises(ClosedError, match="map keep is closed"):
        m[1]                                    # the handle went with its program
    try:
        with tm.from_pin(path) as again:
            assert again[1] == 42               # the map did not: the pin holds it
    finally:
        tm.cleanup()


def test_every_wrapper_refuses_use_after_close():
    with tm.create("hash", "u32", "u64", 4, name="t_closed") as m:
        m[1] = 2
    for use in (lambda: m[1], lambda: m.__setitem__(1, 3), lambda: m.keys(), lambda: len(m),
                lambda: m.pin(), lambda: m.fd, lambda: m.clear(), lambda: m.__delitem__(1)):
        with pytest.raises(ClosedError, match="map t_closed is closed"):
            use()
    assert "closed" in repr(m)
    m.close()                                   # idempotent


def test_map_without_btf_falls_back_to_plain_ints():
    fd = kernel.map_create(1, 4, 8, 4, name="t_nobtf")
    try:
        m = tm.wrap(fd)
    finally:
        os.close(fd)
    with m:
        assert not m.typed and type(m).__name__ == "HashMap"
        m[3] = 1 << 40
        assert m.to_dict() == {3: 1 << 40}
        with pytest.raises(UsageError, match="out of range"):
            m[1 << 32] = 1


def test_btf_parser_kinds():
    b = Builder()
    u32 = b.int("__u32", 4)
    s8 = b.int("s8", 1, signed=True)
    color = b.enum("color", {"RED": 1, "BLUE": 2})
    arr = b.array(u32, 3, u32)
    rec = b.struct("rec", [("a", u32, 0), ("c", color, 4), ("t", s8, 8), ("xs", arr, 12)], 24)
    td = b.typedef("rec_t", rec)
    btf = BTF(b.bytes())
    assert btf.type_name(td) == "rec_t" and btf.resolve(td).name == "rec" and btf.size(td) == 24
    c = btf.codec(td)
    raw = c.encode({"a": 7, "c": "BLUE", "t": -3, "xs": [1, 2, 3]})
    v = c.decode(raw)
    assert v.a == 7 and v.c.name == "BLUE" and v.t == -3 and v.xs == [1, 2, 3]
    with pytest.raises(UsageError, match=r"value.c = 'GREEN' is not a value of enum color"):
        c.encode({"c": "GREEN"})
    with pytest.raises(UsageError, match=r"value.xs has 2 items, __u32\[3\] takes exactly 3"):
        c.encode({"xs": [1, 2]})
    dt = btf.numpy_dtype(rec)
    assert dt.names == ("a", "c", "t", "xs") and dt.itemsize == 24
    # the kernel takes this BTF too
    fd = kernel.btf_load(b.bytes())
    os.close(fd)


LIBBPF_FLOWS = r"""
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
struct flow { __u32 saddr; __u16 dport; __u8 proto; __u8 pad; };
struct stats { __u64 packets; __u64 bytes; };
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __type(key, struct flow);
    __type(value, struct stats);
    __uint(max_entries, 64);
} flows SEC(".maps");
struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __type(key, __u32);
    __type(value, __u64);
    __uint(max_entries, 4);
} hits SEC(".maps");
SEC("xdp")
int lb_flows(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data, *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    struct iphdr *ip = (void *)(eth + 1);
    struct udphdr *udp = (void *)(ip + 1);
    if ((void *)(udp + 1) > data_end || eth->h_proto != bpf_htons(0x0800))
        return XDP_PASS;
    struct flow k = {.saddr = ip->saddr, .dport = bpf_ntohs(udp->dest), .proto = ip->protocol};
    struct stats zero = {}, *s;
    bpf_map_update_elem(&flows, &k, &zero, BPF_NOEXIST);
    s = bpf_map_lookup_elem(&flows, &k);
    if (s) { s->packets++; s->bytes += data_end - data; }
    __u32 z = 0; __u64 *h = bpf_map_lookup_elem(&hits, &z); if (h) (*h)++;
    return XDP_PASS;
}
char _license[] SEC("license") = "GPL";
"""


def test_libbpf_object_maps_are_typed():
    """Maps of a libbpf-style object (xdplab.programs.libbpf) come typed from the object's BTF."""
    prog = xdplab.load(LIBBPF_FLOWS)
    try:
        prog.run(udp(53), repeat=3)
        flows, hits = prog["flows"], prog["hits"]
        assert isinstance(flows, tm.HashMap) and isinstance(hits, tm.PerCpuArrayMap)
        assert repr(flows) == "<HashMap flows (hash, struct flow -> struct stats, max 64)>"
        (k, v), = flows.items()
        assert (k.saddr, k.dport, k.proto) == (SADDR, 53, 17) and v.packets == 3
        assert hits.sum(0) == 3 and hits[0].shape == (kernel.possible_cpus(),)
        with pytest.raises(UsageError, match="key.dport = 70000 is out of range for __u16"):
            flows[{"dport": 70000}] = {}
        again = tm.open(flows.fd)                  # and by fd, as any other tool's map
        assert again.to_dict() == flows.to_dict()
        again.close()
    finally:
        prog.close()


def test_pins_of_a_killed_process_are_found_and_removed():
    """kill -9 skips atexit: the pin directory stays, named so that `xdplab down --all`
    (procstate.remove_dead) knows its process is gone and removes it."""
    import signal
    import subprocess
    import sys
    code = ("from xdplab.programs import typedmaps as tm\n"
            "m = tm.create('hash', 'u32', 'u64', 4, name='t_orphan')\n"
            "m[1] = 2\n"
            "print(m.pin(), flush=True)\n"
            "import time; time.sleep(600)\n")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env)
    try:
        path = child.stdout.readline().strip()
        assert path.startswith(f"/sys/fs/bpf/xdplab-{child.pid}-") and os.path.exists(path)
        from pathlib import Path
        assert Path(path).parent not in procstate.dead_pins()        # alive: not touched
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert os.path.exists(path)
    with tm.from_pin(path) as m:
        assert m[1] == 2                                              # the pin kept the map
    assert Path(path).parent in procstate.dead_pins()
    assert str(Path(path).parent) in procstate.remove_dead()
    assert not os.path.exists(path)


def test_bad_pin_names_are_refused():
    with tm.create("array", "u32", "u32", 1, name="t_pinname") as m:
        for bad in ("a/b", "..", "x/../y"):
            with pytest.raises(UsageError, match="not a plain name"):
                m.pin(bad)


KINDS = r"""
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
struct opaque;
struct kinds {
    union { __u32 word; __u16 half[2]; } u;
    float ratio;
    const volatile __u64 *ptr;
    struct opaque *fwd;
    enum { K_OFF = 0, K_ON = 7 } mode;
    __u8 flag:1, level:3;
    __s8 delta:4;
};
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __type(key, __u32);
    __type(value, struct kinds);
    __uint(max_entries, 2);
} kinds_map SEC(".maps");
volatile const __u32 threshold = 5;
__u64 seen = 0;
SEC("xdp")
int kinds_prog(struct xdp_md *ctx)
{
    __u32 k = 0;
    struct kinds *v = bpf_map_lookup_elem(&kinds_map, &k);
    if (v && threshold) { v->u.word += 1; v->level = 5; }
    seen++;
    return XDP_PASS;
}
char _license[] SEC("license") = "GPL";
"""


def test_btf_kinds_of_a_libbpf_object():
    """union, float, const/volatile pointers, fwd, enum, bitfields in a map value; and the
    object's .rodata/.bss (datasec + var) decoded by variable name."""
    prog = xdplab.load(KINDS)
    try:
        prog.run(udp(53), repeat=2)
        btf = BTF(prog.object.btf_raw())
        assert {"union", "float", "ptr", "const", "volatile", "fwd", "enum", "var", "datasec",
                "typedef", "struct", "array", "int"} <= {t.kind for t in btf.types}
        m = prog["kinds_map"]
        v = m[0]
        assert v.u.word == 2 and v.level == 5 and v.mode == 0 and v.mode.name == "K_OFF"
        m[1] = {"u": {"half": [1, 2]}, "ratio": 0.5, "mode": "K_ON", "flag": 1, "level": 6, "delta": -3}
        v = m[1]
        assert (v.u.word, v.ratio, v.mode, v.flag, v.level, v.delta) == (0x20001, 0.5, 7, 1, 6, -3)
        with pytest.raises(UsageError, match=r"value.level = 8 is out of range for a 3-bit field"):
            m[1] = {"level": 8}
        with pytest.raises(UsageError, match=r"set one member of union"):
            m[1] = {"u": {"word": 1, "half": [0, 0]}}
        with pytest.raises(UsageError, match=r"value.mode = 'K_MAYBE' is not a value of enum"):
            m[1] = {"mode": "K_MAYBE"}
        sections = {r.name.split(".")[-1]: tm.from_ref(r, prog.object.btf_raw())
                    for r in prog.object.map_refs() if r.name.endswith((".bss", ".rodata"))}
        assert sections["rodata"][0].threshold == 5 and sections["bss"][0].seen == 2
        assert repr(sections["bss"]).endswith("(array, 4 bytes -> .bss, max 1)>")
        for t in sections.values():
            t.close()
    finally:
        prog.close()


# --- one Python code for either dialect: prog["m"] is the same typed map ---------------------

_TWIN_BODY = r"""
    void *data = (void *)(long)ctx->data, *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    struct iphdr *ip = (void *)(eth + 1);
    struct udphdr *udp = (void *)(ip + 1);
    if ((void *)(udp + 1) > data_end || eth->h_proto != bpf_htons(0x0800) || ip->protocol != 17)
        return XDP_PASS;
    struct lpm_key lk = {.prefixlen = 32};
    __builtin_memcpy(lk.data, &ip->saddr, 4);
    __u32 z = 0, *blocked = LOOKUP(block, &lk);
    __u64 *h = LOOKUP(hits, &z);
    if (h)
        *h += 1;
    if (blocked)
        return XDP_DROP;
    struct flow k = {.saddr = ip->saddr, .dport = bpf_ntohs(udp->dest), .proto = ip->protocol};
    struct stats zero = {}, *s;
    UPDATE(flows, &k, &zero);
    s = LOOKUP(flows, &k);
    if (s) {
        s->packets++;
        s->bytes += data_end - data;
        s->last_ttl = ip->ttl;
    }
    return XDP_PASS;
}
"""
_TWIN_TYPES = ("struct flow { __u32 saddr; __u16 dport; __u8 proto; __u8 pad; };\n"
               "struct stats { __u64 packets; __u64 bytes; __u8 last_ttl; };\n"
               "struct lpm_key { __u32 prefixlen; __u8 data[4]; };\n")
TWIN_BCC = (_TWIN_TYPES +
            'BPF_TABLE("lru_hash", struct flow, struct stats, flows, 64);\n'
            "BPF_LPM_TRIE(block, struct lpm_key, __u32, 16);\n"
            "BPF_PERCPU_ARRAY(hits, __u64, 4);\n"
            "int twin(struct xdp_md *ctx)\n{"
            + _TWIN_BODY.replace("LOOKUP(block, ", "block.lookup(").replace("LOOKUP(hits, ", "hits.lookup(")
            .replace("LOOKUP(flows, ", "flows.lookup(").replace("UPDATE(flows, &k, &zero)", "flows.insert(&k, &zero)"))
TWIN_LIBBPF = ('#include "vmlinux.h"\n#include <bpf/bpf_helpers.h>\n#include <bpf/bpf_endian.h>\n' + _TWIN_TYPES +
               "struct { __uint(type, BPF_MAP_TYPE_LRU_HASH); __type(key, struct flow); "
               "__type(value, struct stats); __uint(max_entries, 64); } flows SEC(\".maps\");\n"
               "struct { __uint(type, BPF_MAP_TYPE_LPM_TRIE); __type(key, struct lpm_key); __type(value, __u32); "
               "__uint(max_entries, 16); __uint(map_flags, BPF_F_NO_PREALLOC); } block SEC(\".maps\");\n"
               "struct { __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY); __type(key, __u32); __type(value, __u64); "
               "__uint(max_entries, 4); } hits SEC(\".maps\");\n"
               'SEC("xdp")\nint twin(struct xdp_md *ctx)\n{'
               + _TWIN_BODY.replace("LOOKUP(", "bpf_map_lookup_elem(&").replace(
                   "UPDATE(flows, &k, &zero)", "bpf_map_update_elem(&flows, &k, &zero, BPF_NOEXIST)")
               + 'char _license[] SEC("license") = "GPL";\n')


def _exercise(prog, h) -> dict:
    """The same Python for a BCC-dialect and a libbpf-style program: real packets from a
    lab host, an LPM blocklist written by prefix, struct keys/values by field, per-CPU
    values, legacy to_dict/to_df(sum_cpus=...), a pin, typed errors."""
    flows, block, hits = prog["flows"], prog["block"], prog["hits"]
    kinds = (type(flows).__name__, flows.kind, type(block).__name__, type(hits).__name__)
    prog.attach(h.outside)
    send = lambda n, port: h.send(IP(src=h.ipv4, dst=h.gw4, ttl=33) / UDP(sport=4000, dport=port) / (b"t" * 30),
                                  count=n)
    send(3, 9)
    block[f"{h.ipv4.rsplit('.', 1)[0]}.0/24"] = 1                 # h1's subnet: dropped from now on
    send(2, 10)
    saddr = struct.unpack("<I", bytes(map(int, h.ipv4.split("."))))[0]
    key = {"saddr": saddr, "dport": 9, "proto": 17}
    v = flows[key]
    per_cpu = hits[0]
    with pytest.raises(UsageError, match=r"key.dport = 70000 is out of range"):
        flows[{"dport": 70000}] = {}
    with pytest.raises(UsageError, match=r"key 'ten/8' for LPM trie block"):
        block["ten/8"] = 1
    with pytest.raises(MapKeyError, match="is not in map flows"):
        flows[{"saddr": saddr, "dport": 10, "proto": 17}]         # blocked before it was counted
    path = flows.pin(f"twin-{prog.dialect.dialect}")
    with tm.from_pin(path) as pinned:
        from_pin = pinned.to_dict()
    flows.unpin()
    df = hits.to_df(sum_cpus=False)
    out = {"kinds": kinds, "flow": (v.packets, v.bytes, v.last_ttl, v["packets"]),
           "keys": sorted((k.dport, k.proto) for k in flows.keys()),
           "prefixes": [block.prefix(k) for k in block.keys()],
           "hits": hits.to_dict(sum_cpus=True)[0], "per_cpu": (type(per_cpu).__name__, int(per_cpu.sum())),
           "df": (list(df.columns), int(df.value.sum())), "pinned": from_pin == flows.to_dict(),
           "same via typedmaps": tm.of(prog)["flows"].to_dict() == flows.to_dict()}
    prog.detach()
    return out


def test_bcc_and_libbpf_maps_are_the_same_typed_maps(topo):
    """prog["m"] of a BCC-dialect program is the BTF-typed map a libbpf program gives:
    one Python function reads and writes both, on real packets, and gets the same answers."""
    h = topo["h1"]
    got = {}
    for dialect, src in (("bcc", TWIN_BCC), ("libbpf", TWIN_LIBBPF)):
        with xdplab.load(src) as prog:
            assert prog.dialect.dialect == dialect
            got[dialect] = _exercise(prog, h)
            assert prog.counters()["DROP"] == 2
    assert got["bcc"] == got["libbpf"], got
    assert got["bcc"]["kinds"] == ("HashMap", "lru_hash", "LpmTrieMap", "PerCpuArrayMap")
    assert got["bcc"]["flow"] == (3, 3 * 72, 33, 3) and got["bcc"]["keys"] == [(9, 17)]
    net = h.ipv4.rsplit(".", 1)[0]
    assert got["bcc"]["prefixes"] == [f"{net}.0/24"] and got["bcc"]["hits"] == 5
    assert got["bcc"]["per_cpu"] == ("ndarray", 5) and got["bcc"]["df"] == (["key", "cpu", "value"], 5)
    assert got["bcc"]["pinned"] and got["bcc"]["same via typedmaps"]


def test_bcc_maps_keep_their_bcc_api():
    """What code written for BCC tables does keeps working on the typed map: .table (BCC's
    table, Key/Leaf), m[k].value, ctypes keys and values, legacy to_numpy/to_df; the maps
    BCC's API does more with (perf buffers, program arrays) stay BCC tables."""
    import ctypes
    src = ("BPF_ARRAY(arr, u64, 4);\nBPF_PERF_OUTPUT(events);\nBPF_PROG_ARRAY(jmp, 2);\n"
           "int k(struct xdp_md *ctx) { u32 i = 1; u64 *v = arr.lookup(&i); if (v) *v += 1; return XDP_PASS; }")
    with xdplab.load(src) as prog:
        m = prog["arr"]
        assert isinstance(m, tm.ArrayMap) and m.typed
        prog.run(udp(53), repeat=2)
        assert m[1] == 2 and m[1].value == 2                          # BCC's ctypes idiom
        t = m.table
        t[t.Key(3)] = t.Leaf(7)                                      # BCC's own table
        assert m[3] == 7
        m[ctypes.c_uint32(2)] = ctypes.c_uint64(5)                  # ctypes keys and values
        assert m.to_dict() == {0: 0, 1: 2, 2: 5, 3: 7} and list(m.to_numpy()) == [0, 2, 5, 7]
        assert type(prog["events"]).__name__ == "Map" and type(prog["jmp"]).__name__ == "Map"
        assert hasattr(prog["events"].table, "open_perf_buffer")
    with pytest.raises(ClosedError, match="map arr is closed"):
        m[1]


REDIRECT_BCC = ("BPF_DEVMAP(tx_port, 4);\nBPF_CPUMAP(cpus, 2);\nBPF_ARRAY(where, u32, 1);\n"
                "int fwd(struct xdp_md *ctx)\n{\n    u32 z = 0, *w = where.lookup(&z);\n"
                "    if (w && *w == 1)\n        return cpus.redirect_map(0, 0);\n"
                "    return tx_port.redirect_map(0, 0);\n}\n")
REDIRECT_LIBBPF = ('#include "vmlinux.h"\n#include <bpf/bpf_helpers.h>\n'
                   "struct { __uint(type, BPF_MAP_TYPE_DEVMAP); __uint(key_size, 4); __uint(value_size, 4); "
                   "__uint(max_entries, 4); } tx_port SEC(\".maps\");\n"
                   "struct { __uint(type, BPF_MAP_TYPE_CPUMAP); __uint(key_size, 4); __uint(value_size, 4); "
                   "__uint(max_entries, 2); } cpus SEC(\".maps\");\n"
                   "struct { __uint(type, BPF_MAP_TYPE_ARRAY); __type(key, __u32); __type(value, __u32); "
                   "__uint(max_entries, 1); } where SEC(\".maps\");\n"
                   'SEC("xdp")\nint fwd(struct xdp_md *ctx)\n{\n    __u32 z = 0, *w = bpf_map_lookup_elem(&where, &z);\n'
                   "    if (w && *w == 1)\n        return bpf_redirect_map(&cpus, 0, 0);\n"
                   "    return bpf_redirect_map(&tx_port, 0, 0);\n}\n"
                   'char _license[] SEC("license") = "GPL";\n')


@pytest.mark.parametrize("src", [REDIRECT_BCC, REDIRECT_LIBBPF], ids=["bcc", "libbpf"])
def test_devmap_and_cpumap_entries_set_by_name_carry_real_packets(topo, src):
    """prog["tx_port"][0] = a lab host: h1's pings land in h2 (its peer program sees them);
    prog["cpus"][0] = a queue size: the pings pass to the stack on CPU 0 and are answered.
    The same Python for both dialects."""
    from xdplab.net import redirect
    h1, h2 = topo["h1"], topo["h2"]
    with xdplab.load(src) as prog:
        dm, cm = prog["tx_port"], prog["cpus"]
        assert (type(dm).__name__, type(cm).__name__) == ("DevMap", "CpuMap")
        peer = redirect.ensure_peer_program(h2)        # a veth takes redirected frames only then
        try:
            dm[0] = h2                                  # a lab host: its root-side veth
            assert dm[0]["ifname"] == h2.outside and dm.to_dict() == {0: dm[0]}
            with pytest.raises(MapKeyError, match="index 4 is out of range for devmap tx_port"):
                dm[4] = h2
            with pytest.raises(xdplab.XDPLabError, match="no interface"):
                dm[1] = "xl-no-such-if"
            prog.attach(h1.outside)
            before = peer.counters()["PASS"]
            assert h1.ping(h2.ipv4, count=3, interval=0.05, timeout=0.3) == 0   # h2 cannot answer back
            assert peer.counters()["PASS"] - before >= 3 and prog.counters()["REDIRECT"] >= 3
            cm[0] = 192
            assert cm[0]["qsize"] == 192
            with pytest.raises(UsageError, match="qsize = -1 is out of range"):
                cm[0] = -1
            prog["where"][0] = 1                        # now through the cpumap to the stack
            assert h1.ping(h1.gw4, count=3, interval=0.05) == 3
        finally:
            prog.detach()
            redirect.remove_peer_program(h2)


ARRAY_KEY_LIBBPF = ('#include "vmlinux.h"\n#include <bpf/bpf_helpers.h>\n'
                    "struct vip { __u32 addr[4]; __u16 port; __u16 proto; };\n"
                    "struct { __uint(type, BPF_MAP_TYPE_HASH); __type(key, struct vip); __type(value, __u64); "
                    "__uint(max_entries, 8); } vips SEC(\".maps\");\n"
                    'SEC("xdp")\nint pass(struct xdp_md *ctx)\n{\n    return XDP_PASS;\n}\n'
                    'char _license[] SEC("license") = "GPL";\n')


def test_keys_holding_arrays_make_a_dict():
    """A struct key with an array field (selftests' vip2tnl: __u32 addr[4]) decodes to a key
    that can be a dict key: to_dict() and items() work, and the key reads back by field."""
    with xdplab.load(ARRAY_KEY_LIBBPF) as prog:
        vips = prog["vips"]
        vips[{"addr": [10, 0, 0, 1], "port": 80, "proto": 6}] = 7
        (k, v), = vips.to_dict().items()
        assert tuple(k.addr) == (10, 0, 0, 1) and (k.port, k.proto, v) == (80, 6, 7)
        assert vips[{"addr": list(k.addr), "port": 80, "proto": 6}] == 7


def test_redirect_helpers_take_typed_maps(topo):
    """redirect.devmap_set() takes the typed map prog["tx_port"] (libbpf or BCC), not only
    a BCC table or an fd."""
    from xdplab.net import redirect
    for src in (REDIRECT_BCC, REDIRECT_LIBBPF):
        with xdplab.load(src) as prog:
            got = redirect.devmap_set(prog["tx_port"], 1, topo["h2"], check=False)
            assert got["ifindex"] == kernel.ifindex(topo["h2"].outside), got
