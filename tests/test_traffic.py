"""The XDP traffic generator (BPF_PROG_RUN live frames) on real veths."""
import os
import subprocess
import threading
import time

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Raw

import xdplab
from xdplab import kernel
from xdplab.kernel import features
from xdplab.net import traffic
from xdplab.errors import XDPLabError

from .helpers import DROP_UDP9

pytestmark = pytest.mark.kernel

RX_FIELDS = r"""
BPF_HASH(sports, u16, u64, 1024);
BPF_HASH(srcs, u32, u64, 1024);

int xdp_rx_fields(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data, *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    struct iphdr *ip = (void *)(eth + 1);
    struct udphdr *udp = (void *)(ip + 1);
    u64 one = 1, *v;
    u16 sport;
    u32 src;

    if ((void *)(udp + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP) || ip->protocol != IPPROTO_UDP)
        return XDP_PASS;
    sport = bpf_ntohs(udp->source);
    src = bpf_ntohl(ip->saddr);
    v = sports.lookup(&sport);
    if (v) __sync_fetch_and_add(v, 1); else sports.update(&sport, &one);
    v = srcs.lookup(&src);
    if (v) __sync_fetch_and_add(v, 1); else srcs.update(&src, &one);
    return XDP_PASS;
}
"""


@pytest.fixture(scope="module", autouse=True)
def live_frames():
    if not features.have("live_frames"):
        pytest.skip(features.skip_message("live_frames"))


@pytest.fixture(scope="module")
def rx_prog():
    with xdplab.load(DROP_UDP9) as p:
        yield p


@pytest.fixture
def rx(rx_prog, topo):
    """The receiver attached to h1's root-side veth; ``rx.delta()`` = DROP counted since."""
    rx_prog.attach(topo["h1"].outside)
    start = rx_prog.counters()
    rx_prog.delta = lambda: rx_prog.counters() - start
    yield rx_prog
    rx_prog.detach()


def udp9(h, size=18):
    return IP(src=h.ipv4, dst=h.gw4) / UDP(sport=1000, dport=9) / Raw(b"x" * size)


def test_every_frame_sent_is_counted_by_the_receiver(topo, rx):
    h1 = topo["h1"]
    r = traffic.blast(udp9(h1), via=h1, count=50_000, progress=False)
    assert r.sent == 50_000 and r.seconds > 0 and r.pps > 0 and r.ns_per_packet > 0
    assert r.frame_len == 60 and r.cpus == (r.cpus[0],)
    assert r.xmit_errors == 0, "one CPU, batches of 64: the veth ring (256) never overflows"
    c = rx.delta()
    assert c["DROP"] == r.sent and c.bytes["DROP"] == 60 * r.sent
    assert "Mpps" in repr(r) and "Mpps" in r._repr_html_()


def test_vary_fields_in_the_program_with_valid_checksums(topo):
    h1 = topo["h1"]
    from scapy.all import AsyncSniffer
    with xdplab.load(RX_FIELDS) as rx:
        rx.attach(h1.outside)
        with traffic.Generator(udp9(h1), via=h1, vary={"sport": range(2000, 2010),
                                                       "src": "10.99.0.0/30"}) as g:
            r = g.run(count=4000, progress=False)
            sports, srcs = rx.maps["sports"].to_dict(), rx.maps["srcs"].to_dict()
            # the frames passed to the stack, slowly enough for scapy to see them all
            ready = threading.Event()
            sn = AsyncSniffer(iface=h1.outside, filter="udp port 9", store=True,
                              started_callback=ready.set)
            sn.start()
            assert ready.wait(10)
            for _ in range(10):                        # small bursts: scapy is slow
                g.run(count=10, progress=False)
                time.sleep(0.02)
            time.sleep(0.3)
            pkts = sn.stop()
    assert r.sent == 4000
    assert sports == {p: 400 for p in range(2000, 2010)}
    assert srcs == {(10 << 24) | (99 << 16) | i: 1000 for i in range(4)}
    assert len(pkts) >= 20, "the sniffer should see most of 10 bursts of 10"
    for p in pkts:
        fixed = Ether(bytes(p))
        del fixed[IP].chksum, fixed[UDP].chksum
        fixed = Ether(bytes(fixed))
        assert p[IP].chksum == fixed[IP].chksum and p[UDP].chksum == fixed[UDP].chksum, p.summary()


def test_two_cpus_send_what_was_asked_and_drops_are_accounted(topo, rx):
    h1 = topo["h1"]
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs 2 CPUs")
    with traffic.Generator(udp9(h1), via=h1) as g:
        r = g.run(count=200_000, cpus=2, progress=False)
    assert r.sent == 200_000 and sum(r.per_cpu.values()) == r.sent and len(r.cpus) == 2
    received = rx.delta()["DROP"]
    # two producers share one veth RX ring: the overflow is counted by the sending veth
    # (tx_queue_0_xdp_xmit_errors), whose per-queue stats two CPUs update without a lock
    assert abs(received + r.xmit_errors - r.sent) <= r.sent // 1000, (received, r.xmit_errors)


def test_rate_cap_and_duration(topo, rx):
    h1 = topo["h1"]
    r = traffic.blast(udp9(h1), via=h1, duration=0.3, rate=20_000, progress=False)
    assert r.sent > 0
    chunk = 20_000 * traffic.CHUNK_SECONDS
    assert r.sent <= 20_000 * r.seconds + chunk, "never ahead of schedule by more than one chunk"
    assert rx.delta()["DROP"] == r.sent


def test_peer_without_xdp_is_refused_with_the_reason(topo):
    h1 = topo["h1"]
    with pytest.raises(XDPLabError, match="dropped silently.*peer.*no XDP program") as e:
        traffic.Generator(udp9(h1), via=h1)
    assert "attach_receiver=True" in str(e.value)
    with xdplab.load("int xdp_generic(struct xdp_md *ctx) { return XDP_PASS; }") as p:
        p.attach(h1.outside, mode="generic")
        with pytest.raises(XDPLabError, match="only a generic-mode program"):
            traffic.Generator(udp9(h1), via=h1)


def test_attach_receiver_in_the_host_netns(topo):
    """From the root side into the host: the generator attaches an XDP_PASS program to
    veth0 INSIDE the netns (through run_in_netns); the bpf_link belongs to the process."""
    h1 = topo["h1"]
    frame = Ether(src=h1.gw_mac, dst=h1.mac) / IP(src=h1.gw4, dst=h1.ipv4) / UDP(dport=9)
    with traffic.Generator(frame, via=h1.outside, attach_receiver=True) as g:
        state = kernel.run_in_netns(h1.netns, kernel.xdp_state, h1.inside)
        assert state == {"native": g.receiver_program.id}
        r = g.run(count=1000, progress=False)
        assert r.sent == 1000
        # the receiver passes everything: the root side's own IPv6 chatter (ND, MLD) may add one or two
        assert r.sent <= g.receiver_program.counters()["PASS"] <= r.sent + 5
    assert kernel.run_in_netns(h1.netns, kernel.xdp_state, h1.inside) == {}


def test_redirect_to_another_interface(topo):
    h1, h2 = topo["h1"], topo["h2"]
    frame = Ether(src=h2.gw_mac, dst=h2.mac) / IP(src=h2.gw4, dst=h2.ipv4) / UDP(dport=9)
    with traffic.Generator(frame, via=h1.outside, redirect_to=h2.outside, attach_receiver=True) as g:
        assert "bpf_redirect" in g.prog.spec.source
        r = g.run(count=500, progress=False)
        assert r.sent == 500 and r.sent <= g.receiver_program.counters()["PASS"] <= r.sent + 5
    assert kernel.run_in_netns(h2.netns, kernel.xdp_state, h2.inside) == {}


def test_argument_errors(topo, rx):
    h1 = topo["h1"]
    with pytest.raises(XDPLabError, match="cannot transmit XDP frames"):
        traffic.Generator(Ether() / IP() / UDP(), via="lo")
    with pytest.raises(XDPLabError, match="no interface"):
        traffic.Generator(udp9(h1), via="xdplab-nope0")
    with pytest.raises(XDPLabError, match="cannot vary 'ttl'"):
        traffic.Generator(udp9(h1), via=h1, vary={"ttl": range(1, 5)})
    with pytest.raises(XDPLabError, match="needs a UDP or TCP"):
        traffic.generator_source(bytes(Ether() / IP()), {"sport": range(1, 3)})
    with traffic.Generator(udp9(h1), via=h1) as g:
        with pytest.raises(XDPLabError, match="count=N"):
            g.run()
        with pytest.raises(XDPLabError, match="batch_size"):
            g.run(count=10, batch_size=1000)
        with pytest.raises(XDPLabError, match="CPUs"):
            g.run(count=10, cpus=[999])
    with pytest.raises(XDPLabError, match="takes at most"):
        traffic.Generator(udp9(h1, size=3000), via=h1)


def test_find_peer_tells_apart_namespaces_with_the_same_ifindex_pair():
    """Two namespaces each hold a veth at ifindex 40 whose peer, at 41, is in a third and a
    fourth namespace: from either peer, the ifindex pair alone matches both; the netnsid the
    peer's namespace gives each one decides."""
    from .conftest import TEST_PREFIX
    tag = f"{TEST_PREFIX}{os.getpid() % 100:02d}fp"
    names = [f"{tag}{x}" for x in "abcd"]
    try:
        for n in names:
            kernel.netns_create(n)
        for near, far in ((names[0], names[2]), (names[1], names[3])):
            kernel.run_in_netns(near, lambda far=far: subprocess.run(
                ["ip", "link", "add", "v0", "index", "40", "type", "veth", "peer", "name", "w0", "index", "41",
                 "netns", far], check=True))
        assert traffic.find_peer("w0", names[2]) == (names[0], "v0")
        assert traffic.find_peer("w0", names[3]) == (names[1], "v0")
        assert traffic.find_peer("v0", names[1]) == (names[3], "w0")
    finally:
        for n in names:
            if os.path.exists(f"/run/netns/{n}"):
                kernel.netns_remove(n)
