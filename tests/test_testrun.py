"""BPF_PROG_RUN on crafted packets: verdicts, output packets, timing, maps, ctx."""
import ctypes
import struct

import pytest
from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.l2 import Ether

import xdplab
from xdplab.programs import prog_run
from xdplab.errors import XDPLabError

from .helpers import DROP_ICMP

pytestmark = pytest.mark.kernel

REWRITE = r"""
BPF_HASH(blocked, u32, u64, 16);
BPF_ARRAY(seen_ifindex, u32, 2);

int xdp_rewrite(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    struct iphdr *ip = (void *)(eth + 1);
    u32 k0 = 0, k1 = 1, saddr;
    u32 *slot;
    u64 *hits;

    slot = seen_ifindex.lookup(&k0);
    if (slot)
        *slot = ctx->ingress_ifindex;
    slot = seen_ifindex.lookup(&k1);
    if (slot)
        *slot = ctx->rx_queue_index;
    if ((void *)(ip + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
        return XDP_PASS;
    saddr = ip->saddr;
    hits = blocked.lookup(&saddr);
    if (hits) {
        __sync_fetch_and_add(hits, 1);
        return XDP_DROP;
    }
    ip->ttl = 7;            /* leaves the checksum stale on purpose: the diff shows both */
    return XDP_TX;
}
"""


@pytest.fixture(scope="module")
def rewrite():
    with xdplab.load(REWRITE) as p:
        yield p


def udp(src="10.1.1.1"):
    return Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / IP(src=src, dst="10.2.2.2") / UDP(dport=9)


def test_verdict_and_output_packet(rewrite):
    r = rewrite.run(udp())
    assert r.action == "XDP_TX" and r == "tx"
    assert r.packet[IP].ttl == 7 and r.packet_in[IP].ttl == 64
    assert r.data != r.data_in and len(r.data) == len(r.data_in)
    assert ("IP.ttl", 64, 7) in r.diff
    assert "IP.ttl" in repr(r) and "<table>" in r._repr_html_()


def test_ip_packet_gets_an_ethernet_header_and_bytes_work():
    with xdplab.load(DROP_ICMP) as p:
        assert p.run(IP(dst="10.0.0.1") / ICMP()).action == "XDP_DROP"
        assert p.run(bytes(udp())).action == "XDP_PASS"
        assert not p.run(bytes(udp())).modified


def test_repeat_counts_every_run_and_reports_duration():
    with xdplab.load(DROP_ICMP) as p:
        r = p.run(IP(dst="10.0.0.1") / ICMP(), repeat=1000)
        assert r.repeat == 1000 and r.ns_per_packet > 0
        assert p.counters()["DROP"] == 1000
        assert "1000 runs" in repr(r)


def test_preset_map_changes_verdict_and_is_updated(rewrite):
    blocked = rewrite.maps["blocked"]
    blocked.table[ctypes.c_uint32(int.from_bytes(bytes([10, 9, 9, 9]), "little"))] = ctypes.c_uint64(0)
    assert rewrite.run(udp("10.9.9.9"), repeat=5).action == "XDP_DROP"
    assert rewrite.run(udp("10.1.1.1")).action == "XDP_TX"
    assert list(blocked.to_dict().values()) == [5]


def test_ctx_ingress_ifindex_by_name_and_rx_queue(rewrite, topo):
    h1 = topo["h1"]
    seen = rewrite.maps["seen_ifindex"]
    r = rewrite.run(udp(), ifname=h1.outside)
    assert r.ingress_ifindex == h1.ifindex
    assert seen[0].value == h1.ifindex and seen[1].value == 0
    rewrite.run(udp(), ifname=h1)                      # a lab Host means its root-side veth
    assert seen[0].value == h1.ifindex
    rewrite.run(udp(), ingress_ifindex=1)              # lo
    assert seen[0].value == 1
    with pytest.raises(XDPLabError, match="RX queues"):
        rewrite.run(udp(), ifname=h1.outside, rx_queue=5)   # veth has 1 RX queue
    with pytest.raises(XDPLabError, match="no interface"):
        rewrite.run(udp(), ifname="xdplab-nope0")


def test_metadata_in_front_of_the_packet(rewrite):
    r = rewrite.run(udp(), meta=b"\x01\x02\x03\x04")
    assert r.action == "XDP_TX" and len(r.data) == len(r.data_in)
    assert r.meta == b"\x01\x02\x03\x04"


def test_metadata_the_program_writes_is_apart_from_the_packet():
    """The output of a run starts at data_meta: the metadata the program grew is split off
    into ``r.meta`` and the frame stays the frame."""
    from xdplab.dev.smoke import META_XDP                 # grows 4 bytes, writes a magic there
    with xdplab.load(META_XDP) as p:
        r = p.run(udp())
        assert r.action == "XDP_PASS" and r.data == r.data_in and not r.modified
        assert r.meta == struct.pack("=I", 0x58444C42)
        assert "4 B of metadata" in repr(r)
        r = p.run(udp(), meta=b"abcd")                 # 4 given + 4 grown
        assert r.meta == struct.pack("=I", 0x58444C42) + b"abcd" and r.data == r.data_in


def test_errors():
    with xdplab.load(DROP_ICMP) as p:
        with pytest.raises(XDPLabError, match="at least an Ethernet header"):
            p.run(b"\x00" * 5)
        fd_closed = p
    with pytest.raises(XDPLabError, match="closed"):
        fd_closed.run(udp())
    with pytest.raises(TypeError):
        prog_run.run("not a program", udp())


def test_expect_passes_and_fails_readably():
    with xdplab.load(DROP_ICMP) as p:
        prog_run.expect(p, IP(dst="10.0.0.1") / ICMP(), "drop")
        prog_run.expect(p, udp(), "XDP_PASS", output=udp())
        prog_run.expect(p, udp(), "pass", output=lambda pkt: pkt[UDP].dport == 9)
        with pytest.raises(AssertionError, match=r"expected XDP_PASS, got XDP_DROP\n  packet: .*ICMP"):
            prog_run.expect(p, IP(dst="10.0.0.1") / ICMP(), "XDP_PASS")
        wrong_ttl = udp()
        wrong_ttl[IP].ttl = 1
        with pytest.raises(AssertionError, match="IP.ttl: expected 1, got 64"):
            prog_run.expect(p, udp(), "pass", output=wrong_ttl)
    with pytest.raises(ValueError):
        prog_run.normalize_action("XDP_MAYBE")
