"""AF_XDP sockets (xdplab.net.afxdp) on the real kernel: RX counts and bytes, TX echo,
XDP_STATISTICS, error cases, and a teardown that leaves no fd, mmap or program behind."""
from __future__ import annotations

import os
import socket
import time

import numpy as np
import pytest

from xdplab import AttachError, ClosedError, CompileError, NotSupported, XDPLabError

from xdplab import kernel
from xdplab.net.afxdp import DESC, XSK, XSKError, redirect_program

PORT = 4242
HDR = 14 + 20 + 8          # Ethernet + IPv4 + UDP


@pytest.fixture(scope="module")
def udp_prog():
    """One XSKMAP program (UDP port 4242 -> the queue's XSK) shared by the tests: BCC
    compiles take seconds. Each socket attaches it and detaches it when closed."""
    prog = redirect_program(udp_port=PORT)
    yield prog
    prog.close()


def udp_client(host):
    """A UDP socket living in the lab host's netns."""
    return host.socket(timeout=1.0)


def wait_for(cond, timeout=2.0):
    deadline = time.monotonic() + timeout
    while not cond() and time.monotonic() < deadline:
        time.sleep(0.01)
    return cond()


def redirect_and_send(xsk, prog, host, n):
    """Steer UDP 4242 into ``xsk`` with the shared ``prog``, send ``n`` datagrams from
    ``host``, wait until the program redirected them all; returns ``xsk.stats()``."""
    prog = xsk.redirect(program=prog)
    c0 = prog.counters()                              # the program is shared: use deltas
    s = udp_client(host)
    for _ in range(n):
        s.sendto(b"x" * 20, (host.gw4, PORT))
    s.close()
    assert wait_for(lambda: (prog.counters() - c0)["REDIRECT"] == n)
    return xsk.stats()


def own_resources(fd):
    """Open fds and shared mappings of this process (the XSK's rings are socket:[inode])."""
    inode = os.readlink(f"/proc/self/fd/{fd}") if fd >= 0 else None
    maps = [l for l in open("/proc/self/maps") if inode and inode in l]
    return len(os.listdir("/proc/self/fd")), maps


def test_receive_exactly_what_was_sent(topo, udp_prog):
    h = topo["h1"]
    payloads = [bytes([i]) * (10 + 7 * i) for i in range(20)]
    with XSK(h.outside, 0) as xsk:
        prog = xsk.redirect(program=udp_prog)
        c0 = prog.counters()                          # the program is shared: use deltas
        s = udp_client(h)
        for p in payloads[:12]:
            s.sendto(p, (h.gw4, PORT))
        stack = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        stack.bind((h.gw4, PORT + 1))
        stack.settimeout(1.0)
        s.sendto(b"other port", (h.gw4, PORT + 1))       # not ours: XDP_PASS
        assert stack.recv(100) == b"other port"           # ... and the stack delivered it
        stack.close()
        h.ping(h.gw4, count=2)                            # ICMP: XDP_PASS too
        frames = xsk.recv(12, timeout=2)
        assert [f.data[HDR:] for f in frames] == payloads[:12]
        assert sum(len(f) for f in frames) == sum(HDR + len(p) for p in payloads[:12])
        assert frames[0].scapy()["UDP"].dport == PORT
        # batch API: the rest, as numpy
        for p in payloads[12:]:
            s.sendto(p, (h.gw4, PORT))
        assert wait_for(lambda: xsk.rings["rx"].level() == 8)
        b = xsk.recv_batch(64)
        assert len(b) == 8 and b.nbytes == sum(HDR + len(p) for p in payloads[12:])
        assert list(b.lengths) == [HDR + len(p) for p in payloads[12:]]
        d = b.data                                        # every frame, zero padded
        assert d.shape == (8, HDR + len(payloads[19]))
        for row, p in zip(d, payloads[12:]):
            assert bytes(row[HDR:HDR + len(p)]) == p and not row[HDR + len(p):].any()
        assert bytes(b[7][HDR:]) == payloads[19]
        b.release()
        assert xsk.recv_batch(64, timeout=0.2).nbytes == 0   # nothing more arrived
        c = prog.counters() - c0
        assert c["REDIRECT"] == 20 and c["PASS"] >= 3
        assert xsk.rings["fill"].level() == xsk.sizes["fill"]   # every frame given back
        s.close()


def test_leaving_a_packets_loop_loses_nothing(topo, udp_prog):
    """Frames packets() took off the ring but did not yield stay pending and come first
    next time; drain() throws away the pending ones and the ring's."""
    h = topo["h1"]
    with XSK(h.outside, 0) as xsk:
        xsk.redirect(program=udp_prog)
        s = udp_client(h)
        for i in range(10):
            s.sendto(b"%d" % i, (h.gw4, PORT))
        assert wait_for(lambda: xsk.rings["rx"].level() == 10)
        for f in xsk.packets():
            break                                     # took 10 off the ring, yielded one
        assert f.data[HDR:] == b"0" and xsk.pending == 9 and "pending=9" in repr(xsk)
        assert [f.data[HDR:] for f in xsk.recv(9, timeout=0.2)] == [b"%d" % i for i in range(1, 10)]
        assert xsk.pending == 0
        for i in range(3):
            s.sendto(b"x", (h.gw4, PORT))
        assert wait_for(lambda: xsk.rings["rx"].level() == 3)
        next(xsk.packets())
        assert xsk.pending == 2 and xsk.drain() == 2 and xsk.drain() == 0
        assert xsk.rings["fill"].level() == xsk.sizes["fill"]
        s.close()


def test_batch_data_gathers_each_frame_even_at_the_umem_end():
    """Batch.data on a plain UMEM array: frames of different lengths, one of them in the
    last chunk, where a window as wide as the longest frame would run past the end."""
    from types import SimpleNamespace
    from xdplab.net.afxdp import Batch
    umem = np.arange(4 * 2048, dtype=np.uint32).astype(np.uint8)
    descs = np.array([(256, 100, 0), (2048 + 256, 40, 0), (4 * 2048 - 30, 30, 0)], DESC)
    d = Batch(SimpleNamespace(umem=umem), descs).data
    assert d.shape == (3, 100)
    for row, (a, n, _) in zip(d, descs.tolist()):
        assert (row[:n] == umem[a:a + n]).all() and not row[n:].any()


def test_tx_echo_round_trip(topo, udp_prog):
    """100 datagrams in, 100 replies out in one send() (copy-mode TX takes at most 32
    descriptors per sendto(), so this needs the kick-and-reclaim loop)."""
    from scapy.all import IP, UDP, Ether
    h = topo["h1"]
    with XSK(h.outside, 0) as xsk:
        xsk.redirect(program=udp_prog)
        free0 = len(xsk._tx_free)
        s = udp_client(h)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        msgs = [f"echo {i}".encode() * (1 + i % 7) for i in range(100)]
        for m in msgs:
            s.sendto(m, (h.gw4, PORT))
        replies = []
        for f in xsk.recv(len(msgs), timeout=2):
            p = f.scapy()
            replies.append(Ether(src=p.dst, dst=p.src) / IP(src=p[IP].dst, dst=p[IP].src)
                           / UDP(sport=p[UDP].dport, dport=p[UDP].sport) / bytes(p[UDP].payload))
        assert xsk.send(replies) == 100
        got = [s.recvfrom(2048) for _ in msgs]
        assert [r[0] for r in got] == msgs
        assert all(r[1] == (h.gw4, PORT) for r in got)
        assert xsk.tx_outstanding == 0 and len(xsk._tx_free) == free0   # all completed
        assert xsk.stats()["tx_invalid_descs"] == 0
        s.close()


def test_statistics_rx_ring_full_and_invalid_tx(topo, udp_prog):
    h = topo["h1"]
    with XSK(h.outside, 0, rx_size=16, fill_size=32, tx_size=32, comp_size=32,
             num_frames=64) as xsk:
        st = redirect_and_send(xsk, udp_prog, h, 40)
        assert st["rx_ring_full"] == 24, st           # 16 fit the RX ring, 24 found it full
        assert len(xsk.recv(40, timeout=0.2)) == 16
        # a TX descriptor pointing outside the UMEM is rejected and counted
        xsk.rings["tx"].put(np.array([(xsk.num_frames * xsk.frame_size, 60, 0)], DESC))
        kernel.xsk_kick(xsk.fd)
        assert xsk.stats()["tx_invalid_descs"] == 1
        assert "rx_ring_full=24" in repr(xsk) and "XDP_STATISTICS" in xsk._repr_html_()


def test_fill_ring_empty_is_counted(topo, udp_prog):
    h = topo["h1"]
    with XSK(h.outside, 0, rx_size=64, fill_size=8, num_frames=64) as xsk:
        st = redirect_and_send(xsk, udp_prog, h, 20)
        assert st["rx_fill_ring_empty_descs"] == 12 and st["rx_ring_full"] == 0, st
        assert len(xsk.recv_batch(64)) == 8


def test_errors_are_clear_and_leak_nothing(topo, udp_prog):
    h = topo["h1"]
    fds = len(os.listdir("/proc/self/fd"))
    with pytest.raises(XSKError, match="no interface named"):
        XSK(h.prefix + "nope", 0)
    with pytest.raises(XSKError, match="has no queue 5"):
        XSK(h.outside, 5)
    with pytest.raises(XSKError, match="not a power of two"):
        XSK(h.outside, 0, ring_size=1000)
    with pytest.raises(XSKError, match="frame_size"):
        XSK(h.outside, 0, frame_size=3000)
    with pytest.raises(NotSupported, match="zero-copy.*veth"):
        XSK(h.outside, 0, mode="zerocopy")
    with XSK(h.outside, 0) as xsk:
        with pytest.raises(XSKError, match="already bound"):
            xsk.bind()
        with pytest.raises(XSKError, match="already has an AF_XDP socket"):
            XSK(h.outside, 0)                         # same queue, second socket: EBUSY
        with pytest.raises(CompileError) as e:
            xsk.redirect("no_such_variable == 1")     # a bad filter is a compile error
        assert "no_such_variable" in str(e.value) and xsk.program is None
    with XSK("lo", 0) as xsk:                         # lo has no native XDP
        with pytest.raises(AttachError, match="not supported|Operation"):
            xsk.redirect(mode="native", program=udp_prog)
        assert xsk.program is None
    assert len(os.listdir("/proc/self/fd")) == fds
    assert kernel.xdp_state(h.outside) == {} and kernel.xdp_state("lo") == {}


def test_close_releases_everything(topo, udp_prog):
    h = topo["h1"]
    fds0 = len(os.listdir("/proc/self/fd"))
    xsk = XSK(h.outside, 0)
    prog = xsk.redirect(program=udp_prog)
    n, maps = own_resources(xsk.fd)
    assert len(maps) == 4 and n > fds0                # four rings mapped
    inode = os.readlink(f"/proc/self/fd/{xsk.fd}")
    assert kernel.xdp_state(h.outside) == {"native": prog.id}
    view = xsk.recv_batch(1)                          # a batch outliving the socket
    plot = xsk.plot(interval=0.02)                    # live view: a thread reading the rings
    assert wait_for(lambda: len(plot.samples) >= 2)
    assert plot.samples[-1]["fill"] == xsk.sizes["fill"]
    xsk.close()
    assert not plot._thread.is_alive()                # close() stopped it before unmapping
    xsk.close()                                       # idempotent
    assert "closed" in repr(xsk)
    assert len(os.listdir("/proc/self/fd")) == fds0
    assert not [l for l in open("/proc/self/maps") if inode in l]
    assert kernel.xdp_state(h.outside) == {}
    with pytest.raises(ClosedError, match="closed.*released"):
        view.data
    # the queue is free again: a new socket binds
    with XSK(h.outside, 0) as again:
        assert again.bound
    assert len(os.listdir("/proc/self/fd")) == fds0


def test_receiver_comparison_waits_for_a_late_sender(topo, monkeypatch):
    """On a loaded machine the sender's thread may get its first frame out after a
    receiver's whole window: the receivers counted 0 and the ring filled behind them
    (received=0, queued=8192). The window opens at the first frame."""
    from xdplab.tools import receive_paths
    from xdplab.net import traffic
    run = traffic.Generator.run

    def late(self, *a, **kw):                  # a sender that starts 0.6 s late
        time.sleep(0.6)
        return run(self, *a, **kw)

    monkeypatch.setattr(traffic.Generator, "run", late)
    r = receive_paths.compare(topo["h1"], seconds=0.2, progress=False)
    assert [t.receiver for t in r.trials] == list(receive_paths.RECEIVERS)
    for t in r.trials:
        assert t.received > 0 and t.seconds < 0.2 + 0.6, t   # the wait is not in the window
        if t.receiver in receive_paths.AF_XDP:
            assert t.offered == t.received + t.drops + t.queued, t
    assert kernel.xdp_state(topo["h1"].outside) == {}


def test_receiver_comparison_accounts_for_every_frame(topo):
    """receive_paths.compare (lab 10 and benchmarks/bench_afxdp.py): each receiver gets frames
    from the live-frames sender, and every frame the XDP program sent its way was received,
    dropped by the socket (and counted), or still queued when the trial ended."""
    from xdplab.tools import receive_paths
    h = topo["h1"]
    cpus = os.sched_getaffinity(0)
    r = receive_paths.compare(h, seconds=0.3, progress=False)
    assert os.sched_getaffinity(0) == cpus                 # the pinning was undone
    assert kernel.xdp_state(h.outside) == {}               # nothing left attached
    assert [t.receiver for t in r.trials] == list(receive_paths.RECEIVERS)
    for t in r.trials:
        assert t.received > 0 and 0 < t.cpu <= t.seconds + 0.05, t
        missing = t.offered - t.received - t.drops - t.queued
        if t.receiver in receive_paths.AF_XDP:
            assert missing == 0, t
        else:
            # AF_PACKET also sees frames no XDP verdict counted (the root netns's own
            # IPv6 control packets out of the veth): never fewer, a few more at most
            assert -20 <= missing <= 0, t
    assert r.ratio("af_xdp batch") == r.pps("af_xdp batch") / r.pps("af_packet")
    text, html = str(r), r._repr_html_()
    assert all(name in text and name in html for name in receive_paths.RECEIVERS)
    assert "AF_PACKET" in html and r.plot() is not None
    with pytest.raises(XDPLabError, match="unknown receiver"):
        receive_paths.compare(h, receivers=("af_xdp turbo",))
