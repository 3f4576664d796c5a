"""XDP_TX, devmap (with egress programs) and cpumap on the real kernel, with the veth
TX-resources rule: frames go nowhere until the target's peer has an XDP program."""
from __future__ import annotations

import os
import time

import pytest
from scapy.all import ICMP, IP, UDP

import xdplab
from xdplab import kernel
from xdplab.net import redirect
from xdplab.errors import XDPLabError

SOL = "solutions/06-redirect"


def udp(src, dst, dport, n=1):
    return [IP(src=src.ipv4, dst=dst.ipv4) / UDP(sport=40000 + i, dport=dport) / b"xdplab"
            for i in range(n)]


def received(sniffer, dport):
    time.sleep(0.3)
    return sum(1 for p in sniffer.stop() if UDP in p and p[UDP].dport == dport)


def test_xdp_tx_echo_needs_peer_then_answers(topo):
    h1 = topo["h1"]
    echo = xdplab.Program.from_file(f"{SOL}/icmp_echo.c").load()
    reply = echo.run(IP(src=h1.ipv4, dst=h1.gw4) / ICMP(type=8, id=1, seq=1))
    assert reply.action == "XDP_TX" and reply.packet[ICMP].type == 0
    echo.attach(h1.outside)
    # veth XDP_TX goes to the peer's NAPI queue: without an XDP program there, lost
    assert h1.ping(h1.gw4, count=3, interval=0.1, timeout=0.3) == 0
    lost = echo.counters()["TX"]
    assert lost >= 3
    peer = redirect.ensure_peer_program(h1)
    assert peer is not None and redirect.peer_programs(h1)
    assert h1.ping(h1.gw4, count=5, interval=0.1, timeout=1) == 5
    assert echo.counters()["TX"] - lost >= 5
    assert peer.counters()["PASS"] >= 5        # the replies reached h1's veth0
    assert redirect.ensure_peer_program(h1) is peer          # idempotent
    assert redirect.remove_peer_program(h1)
    assert redirect.peer_programs(h1) == {}


def test_lab06_exercise_grading(topo):
    """The lab's exercise checks: the reference solution passes (crafted packets and ping -6
    on the grader's host, whose peer gets a program), a plain bounce does not."""
    from xdplab.labs import grading
    report = grading.check_lab("06", topo=topo)
    assert report.passed, report
    assert any(i.kind == "live" for i in report.items)
    bounce = grading.check_lab("06", "int bounce(struct xdp_md *ctx) { return XDP_TX; }", live=False)
    failed = {i.name for i in bounce.failures}
    assert "IPv6 addresses swapped" in failed and "UDP over IPv6 passes" in failed
    # the stack answers ping -6 when the program passes: the check must see who answered
    stub = grading.check_lab("06", "int stub(struct xdp_md *ctx) { return XDP_PASS; }", topo=topo)
    assert [i.name for i in stub.failures if i.kind == "live"] == [
        "... by the program: XDP_TX counted for each request"]
    assert redirect.peer_programs(grading.grader_host(topo)) == {}     # the live check cleaned up


def test_devmap_redirect_with_egress_program(topo):
    h1, h2 = topo["h1"], topo["h2"]
    fwd = xdplab.Program.from_file(f"{SOL}/devmap_fwd.c").load()
    egress = redirect.load_egress(open(xdplab.paths.LAB_BPF / SOL / "egress_filter.c").read())
    fwd["macs"][0] = redirect.mac_u64(h2.mac)
    fwd["macs"][1] = redirect.mac_u64(h2.gw_mac)
    with pytest.warns(redirect.RedirectWarning, match="PEER"):
        entry = redirect.devmap_set(fwd["tx_port"], 0, h2, egress_prog=egress)
    assert entry["ifname"] == h2.outside and entry["egress_prog_id"] == egress.id
    fwd.attach(h1.outside)

    # 1. no XDP on h2's veth0: REDIRECT is counted, nothing arrives, the egress hook never runs
    sn = h2.sniffer()
    h1.send(udp(h1, h2, 7, 8))
    assert received(sn, 7) == 0
    assert fwd.counters()["REDIRECT"] >= 8
    assert egress.counters().total == 0

    # 2. with a program on the peer: delivered, egress program ran on each frame
    peer = redirect.ensure_peer_program(h2)
    assert redirect.check_target(h2) == []
    before = fwd.counters()
    sn = h2.sniffer()
    h1.send(udp(h1, h2, 7, 8) + udp(h1, h2, 9, 4))
    assert received(sn, 7) == 8
    assert (fwd.counters() - before)["REDIRECT"] == 12
    assert egress.counters()["PASS"] >= 8 and egress.counters()["DROP"] == 4
    assert peer.counters()["PASS"] >= 8


def test_devmap_set_refuses_what_the_kernel_would(topo):
    """Map entries checked against the map's layout and the kernel's rules (raw maps and a
    raw program: no compile needed)."""
    h2 = topo["h2"]
    small = kernel.map_create(redirect.BPF_MAP_TYPE_DEVMAP, 4, 4, 4)        # BPF_DEVMAP
    with_prog = kernel.map_create(redirect.BPF_MAP_TYPE_DEVMAP_HASH, 4, 8, 4)
    plain = redirect.PeerProgram.__new__(redirect.PeerProgram)
    plain.fd = kernel.prog_load_xdp(redirect.XDP_PASS_INSNS)
    try:
        assert redirect.devmap_set(small, 1, h2.outside, check=False)["ifindex"] == h2.ifindex
        with pytest.raises(XDPLabError, match="no room for an egress program"):
            redirect.devmap_set(small, 0, h2, egress_prog=plain, check=False)
        with pytest.raises(XDPLabError, match="load_egress"):           # attach type not DEVMAP
            redirect.devmap_set(with_prog, 0, h2, egress_prog=plain, check=False)
        with pytest.raises(XDPLabError, match="no interface"):
            redirect.devmap_set(with_prog, 0, "xt-nonexistent", check=False)
        assert redirect.devmap_set(with_prog, 1000, h2, check=False)["egress_prog_id"] == 0
        assert redirect.map_delete(small, 1) and redirect.devmap_get(small, 1) is None
        assert redirect.map_delete(with_prog, 1000) and not redirect.map_delete(with_prog, 1000)
    finally:
        for fd in (small, with_prog, plain.fd):
            os.close(fd)


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="cpumap steering needs 2 CPUs")
def test_cpumap_builds_skb_on_the_target_cpu(topo):
    h1 = topo["h1"]
    cpu = os.cpu_count() - 1
    steer = xdplab.Program.from_file(f"{SOL}/cpumap.c").load()
    on_cpu = redirect.load_egress("int on_cpu(struct xdp_md *ctx) { return XDP_PASS; }", hook="cpumap")
    steer["target_cpu"][0] = cpu
    assert redirect.cpumap_set(steer["cpu_map"], cpu, qsize=192, prog=on_cpu)["prog_id"] == on_cpu.id
    steer.attach(h1.outside)
    assert h1.ping(h1.gw4, count=5, interval=0.1, timeout=1) == 5     # the stack answered
    assert steer.counters()["REDIRECT"] >= 5
    per_cpu = on_cpu["xdplab_actions"].to_dict()[2]                    # XDP_PASS, per CPU
    assert per_cpu[cpu]["packets"] >= 5
    assert sum(r["packets"] for i, r in enumerate(per_cpu) if i != cpu) == 0
    with pytest.raises(XDPLabError, match="ENODEV|No such device"):
        redirect.cpumap_set(steer["cpu_map"], 63)


def test_devmap_hash_keyed_by_ifindex(topo):
    """BPF_DEVMAP_HASH (created by redirect.load, since BCC cannot) keyed by the target's
    ifindex: a sparse key no array devmap of sane size could hold."""
    h1, h2 = topo["h1"], topo["h2"]
    src = (xdplab.paths.LAB_BPF / SOL / "devmap_fwd.c").read_text()
    src = src.replace("BPF_DEVMAP_PROG(tx_port, 8)", "BPF_DEVMAP_HASH(tx_port, 8)")
    src = src.replace("redirect_map(0, 0)", "redirect_map(TARGET, 0)")
    fwd = redirect.load(src, cflags=(f"-DTARGET={h2.ifindex}",))
    assert kernel.map_info(fwd["tx_port"].table.map_fd)["type"] == redirect.BPF_MAP_TYPE_DEVMAP_HASH
    fwd["macs"][0] = redirect.mac_u64(h2.mac)
    fwd["macs"][1] = redirect.mac_u64(h2.gw_mac)
    redirect.ensure_peer_program(h2)
    assert redirect.devmap_set(fwd["tx_port"], h2.ifindex, h2)["ifname"] == h2.outside
    fwd.attach(h1.outside)
    sn = h2.sniffer()
    h1.send(udp(h1, h2, 7, 5))
    assert received(sn, 7) == 5
    assert not [p for p in os.listdir("/sys/fs/bpf") if p.startswith(f"xdplab-{os.getpid()}-")]
