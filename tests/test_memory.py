"""Issue 16 on the real kernel: memory models and page pools, multi-buffer, RX hints
(device-bound programs), devmap broadcast. Everything runs on a topology of its own."""
from __future__ import annotations

import errno
import struct
import time

import pytest
from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Raw

import xdplab
from xdplab import kernel
from xdplab.tools import memory
from xdplab.kernel import features
from xdplab.net import redirect
from xdplab.net import traffic
from xdplab.errors import AttachError, NotSupported, UsageError, XDPLabError

ACT_SRC = r"""
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
struct { __uint(type, BPF_MAP_TYPE_DEVMAP); __uint(max_entries, 1);
         __type(key, __u32); __type(value, __u32); } out SEC(".maps");
volatile const int action = 2;

SEC("xdp")
int act(struct xdp_md *ctx)
{
    if (action == 4)
        return bpf_redirect_map(&out, 0, 0);
    return action;
}
char LICENSE[] SEC("license") = "GPL";
"""

NOFRAGS = (memory.BPF_DIR / "frags.c").read_text().replace('SEC("xdp.frags")', 'SEC("xdp")')


def flood_ping(host, n=200):
    host.run(["ping", "-f", "-c", str(n), "-W", "0.01", host.gw4], check=False)


def seen(prog) -> dict:
    return {k: int(v) for k, v in prog["seen"].to_dict().items()}


# --- capabilities ------------------------------------------------------------------

def test_every_capability_is_probed_on_this_kernel():
    caps = memory.capabilities()
    assert {r[0] for r in caps} == set(memory.PROBES)
    missing = [(n, why) for n, _, _, ok, why in caps if not ok]
    assert not missing                       # the host kernel (6.18) has all of them
    for name in memory.PROBES:
        memory.require(name)
    with pytest.raises(UsageError, match="unknown capability 'frags'.*xdp_frags"):
        memory.require("frags")


def test_missing_capability_names_the_version():
    probe = memory.Probe("nope", "a feature this kernel lacks", "99.1", lambda: "no such symbol")
    memory.PROBES["nope"] = probe
    try:
        with pytest.raises(NotSupported, match=r"needs Linux >= 99\.1.*no such symbol") as e:
            memory.require("nope")
        assert e.value.min_kernel == "99.1"
    finally:
        del memory.PROBES["nope"]
        features.unregister("nope")


# --- memory models and page pools -----------------------------------------------------

def test_veth_rx_queue_memory_model_is_page_shared(topo):
    h1 = topo["h1"]
    models = memory.memory_models(h1, lambda: h1.ping(h1.gw4, 3, interval=0.05))
    assert [m.queue for m in models] == [0]
    assert models[0].mem_type == "page_shared" and models[0].frames >= 3
    assert not kernel.xdp_state(h1.outside)           # detached again


def test_page_pool_recycles_under_drop_and_releases_at_detach(topo):
    h1 = topo["h1"]
    prog = xdplab.load(ACT_SRC, globals={"action": 1})
    with memory.PageWatch() as w:
        prog.attach(h1.outside)
        flood_ping(h1, 300)
        time.sleep(0.2)
        burst = w.totals(h1)
        prog.detach()
        time.sleep(0.3)
        after = w.totals(h1)
        rows = w.table(h1)
    assert prog.counters()["DROP"] >= 300
    # 300 frames copied into page_pool pages, but the pool took only one refill from the
    # page allocator: dropped pages go straight back to its cache (the fast path)
    assert burst["pools"] == 1 and 0 < burst["held"] < 300, burst
    assert burst["released"] == 0, burst
    # detaching the program tears veth's pool down: every page goes back to the allocator
    assert after["released"] == after["held"] == burst["held"], after
    assert rows[0].destroyed and rows[0].ifname == h1.outside and rows[0].in_flight == 0
    prog.close()


def test_redirected_frames_come_back_through_xdp_return_frame(topo):
    h1, h2 = topo["h1"], topo["h2"]
    prog = xdplab.load(ACT_SRC, globals={"action": 4})
    redirect.devmap_set(prog["out"].fd, 0, h2.outside, check=False)
    peer = redirect.ensure_peer_program(h2)
    try:
        with memory.PageWatch() as w:
            prog.attach(h1.outside)
            flood_ping(h1, 200)
            time.sleep(0.3)
            got = peer.counters()["PASS"]
            during = w.totals(h1)
            prog.detach()
            peer.close()
            deadline = time.monotonic() + 5       # page_pool_release retries once a second
            while True:
                time.sleep(0.5)
                after = w.totals(h1)
                if after["held"] == after["released"] or time.monotonic() > deadline:
                    break
            models = w.models()
    finally:
        redirect.cleanup()
    assert prog.counters()["REDIRECT"] >= 200 and got >= 200
    # the frames left h1's pool for h2, and came back to it when h2 was done with them
    # (xdp_return_frame): the pool did not have to take a page per frame
    assert 0 < during["held"] < 200, during
    assert after["held"] == after["released"], after            # nothing left in flight
    assert all(m.mem_type in memory.MEM_TYPES.values() for m in models), models
    prog.close()


def test_page_pool_netlink_lists_no_veth_pools(topo):
    h1 = topo["h1"]
    pools = memory.page_pools()
    assert all(set(p) >= {"id", "ifindex", "inflight"} for p in pools)
    assert memory.page_pools(h1) == []              # veth creates its pools without a netdev
    try:
        stats = memory.page_pool_stats()
    except NotSupported as e:
        assert "CONFIG_PAGE_POOL_STATS" in str(e)
    else:
        assert all("recycle_ring" in s for s in stats)
    with pytest.raises(UsageError, match="no interface 'xt-none'"):
        memory.page_pools("xt-none")


def test_page_watch_refuses_use_after_close():
    w = memory.PageWatch()
    w.close()
    with pytest.raises(xdplab.ClosedError):
        w.table()


# --- multi-buffer ----------------------------------------------------------------------

def test_jumbo_mtu_refuses_non_frags_and_frags_reads_past_first_buffer(topo):
    h1 = topo["h1"]
    assert memory.set_mtu(h1, 9000) == 1500
    plain = xdplab.load(NOFRAGS)
    with pytest.raises(AttachError, match="ERANGE") as e:
        plain.attach(h1.outside)
    assert "xdp.frags" in e.value.hint
    plain.close()
    prog = xdplab.Program.from_file(memory.BPF_DIR / "frags.c").load()
    assert prog.frags
    prog.attach(h1.outside)
    r = h1.run(["ping", "-c", "2", "-s", "8000", "-M", "do", h1.gw4], check=False)
    assert " 0% packet loss" in r.stdout, r.stdout
    s = seen(prog)
    assert s[0] == 14 + 20 + 8 + 8000                 # the whole frame
    assert s[1] <= memory.LINEAR_MAX < s[0]           # the first buffer holds only a part
    assert s[2] == ((5000 - 42) & 0xFF) + 1           # ping's pattern byte at offset 5000
    with pytest.raises(UsageError, match="mtu=100000"):
        memory.set_mtu(h1, 100000)
    prog.close()


def test_prog_run_takes_frames_larger_than_a_page():
    prog = xdplab.Program.from_file(memory.BPF_DIR / "frags.c").load()
    payload = bytes(i & 0xFF for i in range(9000))
    pkt = Ether() / IP(dst="10.0.0.1") / UDP(dport=9, sport=9) / Raw(payload)
    r = prog.run(pkt)
    assert r.action == "XDP_PASS" and r.data == bytes(pkt)        # fragments come back too
    s = seen(prog)
    assert s[0] == len(bytes(pkt)) and s[1] == memory.LINEAR_MAX
    assert s[2] == bytes(pkt)[5000] + 1
    prog.close()


def test_live_frames_refuse_jumbo_frames_and_say_why(topo):
    h1 = topo["h1"]
    memory.set_mtu(h1, 9000)
    big = IP(src=h1.ipv4, dst=h1.gw4) / UDP(dport=9) / Raw(b"x" * 5000)
    with pytest.raises(XDPLabError, match="must fit one page") as e:
        traffic.blast(big, via=h1, count=10)
    assert "memory.send" in e.value.hint
    # the rule is the kernel's: BPF_PROG_RUN live mode with a 5000 B frame -> EINVAL
    prog = xdplab.load(ACT_SRC, globals={"action": 1})
    frame = bytes(Ether() / big)
    with pytest.raises(OSError) as k:
        kernel.prog_test_run(prog.fd, frame, repeat=1, ctx=struct.pack("=6I", 0, len(frame), 0, h1.ifindex, 0, 0),
                              flags=kernel.BPF_F_TEST_XDP_LIVE_FRAMES)
    assert k.value.errno == errno.EINVAL
    prog.close()


# --- RX hints -------------------------------------------------------------------------

def test_rx_hints_on_veth_reach_tc_through_metadata(topo):
    h1 = topo["h1"]
    prog = memory.rx_hints_program(h1)
    assert prog.bound_to == (h1.ifindex, h1.outside)
    tc = memory.hints_reader()
    try:
        tc.attach(h1.outside, "ingress")
        prog.attach(h1.outside)
        assert h1.ping(h1.gw4, 2, interval=0.05) == 2
        x = memory.last_hints(prog)
        assert x.hash_err == 0 and x.hash != 0
        assert x.ts_err == 0                          # veth: the skb's (zero) hardware stamp
        assert x.vlan_err == -errno.ENODATA           # untagged
        t = memory.seen_hints(tc)
        assert t is not None and t.hash == x.hash     # TC read the same hints from the sk_buff
        assert tc["count"][1].value >= 2
        v = memory.vlan_tag_egress(h1, 5)
        h1.ping(h1.gw4, 1)
        v.close()
        x = memory.last_hints(prog)
        assert x.vlan_err == 0 and x.vlan_id == 5 and x.vlan_proto == 0x0081   # ETH_P_8021Q, network order
    finally:
        tc.close()
        prog.close()


def test_device_bound_program_attaches_only_to_its_device(topo):
    h1, h2 = topo["h1"], topo["h2"]
    prog = memory.rx_hints_program(h1)
    with pytest.raises(AttachError) as e:
        prog.attach(h2.outside)
    assert "device-bound to " + h1.outside in e.value.hint
    with pytest.raises(UsageError, match="BCC cannot load device-bound"):
        xdplab.load("int f(struct xdp_md *ctx) { return XDP_PASS; }", bind_to=h1)
    with pytest.raises(UsageError, match="bind_to='xt-none'"):
        xdplab.load((memory.BPF_DIR / "flood.c").read_text(), bind_to="xt-none")
    prog.close()


def test_driver_without_kfuncs_returns_eopnotsupp():
    name = f"xt{__import__('os').getpid() % 100:02d}-tap"
    with memory.Tap(name) as tap:
        prog = memory.rx_hints_program(tap.name)
        prog.attach(tap.name)
        tap.send(Ether() / IP(dst="10.0.0.1") / UDP(dport=9) / Raw(b"x" * 20), count=2)
        time.sleep(0.1)
        x = memory.last_hints(prog)
        prog.close()
    assert (x.hash_err, x.ts_err, x.vlan_err) == (-errno.EOPNOTSUPP,) * 3
    assert "EOPNOTSUPP" in repr(x)
    assert not kernel.ifindex(name)


# --- broadcast -------------------------------------------------------------------------

def test_devmap_broadcast_floods_every_port_but_ingress(topo_factory):
    t = topo_factory(hosts=("h1", "h2", "h3"))
    hosts = [t["h1"], t["h2"], t["h3"]]
    frame = (Ether(dst="ff:ff:ff:ff:ff:ff", src=hosts[0].mac) / IP(src=hosts[0].ipv4, dst="255.255.255.255")
             / UDP(dport=9) / Raw(b"flood"))
    import threading
    mine = lambda p: p.haslayer(Raw) and bytes(p[Raw].load) == b"flood"
    for peers, want in ((True, [0, 5, 5]), (False, [0, 0, 0])):
        with memory.Flood(hosts, peers=peers) as f:
            ready = [threading.Event() for _ in hosts]
            sniffers = [h.sniffer(lfilter=mine, started_callback=e.set) for h, e in zip(hosts, ready)]
            assert all(e.wait(10) for e in ready)
            c0 = f.counters()["REDIRECT"]
            hosts[0].send(frame, count=5)
            time.sleep(1)
            got = [len(s.stop()) for s in sniffers]
            got[0] -= 5                       # h1's capture also shows the 5 it sent
            assert f.counters()["REDIRECT"] - c0 >= 5
        # without an XDP program on the receiving veth's peer, redirected frames vanish
        assert got == want, (peers, got)
    with pytest.raises(UsageError, match="at least 2 hosts"):
        memory.Flood(hosts[:1])


# --- lab 12's exercise -------------------------------------------------------------------

def test_lab12_reference_passes_live_and_a_non_frags_program_fails(topo):
    from xdplab.labs import grading
    ref = grading.check_lab("12", topo=topo)
    assert ref.passed, ref
    assert any(i.kind == "live" and i.status == "pass" for i in ref.items)
    sol = grading.get("12").solution_path.read_text()
    wrong = grading.check_lab("12", sol.replace('SEC("xdp.frags")', 'SEC("xdp")'), topo=topo)
    bad = {i.name for i in wrong.items if i.status == "fail"}
    assert 'loaded as a multi-buffer program (SEC("xdp.frags"))' in bad
    assert any("MTU 9000" in n for n in bad), wrong           # refused on the jumbo grader host


def test_bad_arguments_are_refused_before_anything_is_created(topo):
    h1 = topo["h1"]
    with pytest.raises(UsageError, match="vlan_id=5000"):
        memory.vlan_tag_egress(h1, 5000)
    with pytest.raises(UsageError, match="tap name 'a b'"):
        memory.Tap("a b")
    with pytest.raises(UsageError, match="traffic=3"):
        memory.memory_models(h1, 3)
    with pytest.raises(UsageError, match="exists already"):
        memory.Tap(h1.outside)
    with pytest.raises(UsageError, match="mtu='big'"):
        memory.set_mtu(h1, "big")
    assert not kernel.xdp_state(h1.outside)
    tap = memory.Tap(f"xt{__import__('os').getpid() % 100:02d}-t2")
    tap.close()
    with pytest.raises(xdplab.ClosedError):
        tap.send(b"\0" * 60)
