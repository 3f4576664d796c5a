"""Every object that wraps a kernel fd refuses use after close (issue 11.3), on the real kernel.

The dangerous case first: a closed program's fd number is handed to the next program the
process loads; attaching through the old object must not attach the new program.
"""
import os

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

import xdplab
from xdplab import kernel
from xdplab.net import traffic
from xdplab.net.afxdp import XSK
from xdplab.programs.capture import Recorder
from xdplab.errors import ClosedError
from xdplab.programs.printk import PrintkStream

from .helpers import DROP_ICMP, PASS_PROG

pytestmark = pytest.mark.kernel

COUNTING = r"""
BPF_ARRAY(seen, u64, 4);
int xdp_seen(struct xdp_md *ctx)
{
    u32 k = 0;
    u64 *v = seen.lookup(&k);
    if (v)
        *v += 1;
    return XDP_PASS;
}
"""
PRINTK = 'int xdp_talk(struct xdp_md *ctx) { bpf_printk("talk %d", 1); return XDP_PASS; }'
TC_PASS = "int tc_pass(struct __sk_buff *skb) { return TC_ACT_OK; }"
FRAME = bytes(Ether() / IP() / UDP() / (b"x" * 30))


def test_closed_program_does_not_attach_the_program_that_reused_its_fd(topo):
    h1 = topo["h1"]
    p = xdplab.load(PASS_PROG)
    fd = p.fd
    p.close()
    q = xdplab.load(DROP_ICMP)
    try:
        assert q.fd == fd, "the kernel hands the lowest free fd to the next program"
        with pytest.raises(ClosedError, match="xdp_pass is closed"):
            p.attach(h1.outside)
        assert kernel.xdp_state(h1.outside) == {}, "nothing was attached"
        assert not p.links
        with pytest.raises(ClosedError):
            xdplab.programs.program.attach(p, h1.outside)       # the module function refuses too
        with pytest.raises(ClosedError):
            p.fd
        link = q.attach(h1.outside)                      # the new program is unaffected
        assert kernel.xdp_state(h1.outside) == {"native": q.id} and link.program is q
    finally:
        q.close()
    assert kernel.xdp_state(h1.outside) == {}


def test_closed_program_maps_counters_and_helpers_refuse():
    p = xdplab.load(COUNTING)
    m = p["seen"]
    kernel.prog_test_run(p.fd, FRAME, repeat=3)
    assert m.to_dict()[0] == 3 and p.counters()["PASS"] == 3
    p.close()
    p.close()                                            # idempotent
    for use in (m.to_dict, m.to_numpy, m.clear, lambda: m[0], lambda: m.__setitem__(0, 1),
                lambda: p["seen"], lambda: p.maps["seen"], p.counters, lambda: p.run(FRAME),
                p.plot, p.capture, p.printk):
        with pytest.raises(ClosedError) as e:
            use()
        assert "closed" in str(e.value) and ("seen" in str(e.value) or "xdp_seen" in str(e.value))
        assert len(e.value._render_traceback_()) == 1, "a short message, not a traceback"
    assert "closed" in repr(p) and "closed" in repr(m) and "closed" in p._repr_html_()
    p.detach()                                           # nothing to detach: no error


def test_link_refuses_update_after_detach(topo):
    h1 = topo["h1"]
    with xdplab.load(PASS_PROG) as p, xdplab.load(DROP_ICMP) as q:
        link = p.attach(h1.outside)
        link.detach()
        link.close()                                     # = detach, idempotent
        with pytest.raises(ClosedError, match=f"link of xdp_pass on {h1.outside}"):
            link.update(q)
        assert kernel.xdp_state(h1.outside) == {} and "closed" in repr(link)
        live = p.attach(h1.outside)
        q.close()
        with pytest.raises(ClosedError, match="xdp_drop_icmp is closed"):
            live.update(q)                               # swapping in a closed program
        assert kernel.xdp_state(h1.outside) == {"native": p.id}


def test_tc_program_refuses_attach_after_close(topo):
    p = xdplab.load(TC_PASS, hook="tc")
    p.close()
    with pytest.raises(ClosedError, match="tc_pass is closed"):
        p.attach(topo["h1"].outside, "ingress")
    assert "closed" in repr(p)


def test_xsk_refuses_use_after_close(topo):
    h1 = topo["h1"]
    fds = len(os.listdir("/proc/self/fd"))
    xsk = XSK(h1.outside, 0, ring_size=64, num_frames=256)
    batch = xsk.recv_batch(8)
    xsk.close()
    xsk.close()
    for use in (lambda: xsk.recv_batch(8), lambda: xsk.send(FRAME), xsk.stats, xsk.ring_state,
                lambda: xsk.packets(1), xsk.drain, lambda: xsk.recv(1), xsk.complete, xsk.flush,
                xsk.bind, lambda: xsk.redirect(udp_port=9), xsk.plot):
        with pytest.raises(ClosedError, match=f"XSK on {h1.outside} queue 0 is closed"):
            use()
    with pytest.raises(ClosedError):
        batch.data
    assert "closed" in repr(xsk)
    assert len(os.listdir("/proc/self/fd")) == fds
    assert kernel.xdp_state(h1.outside) == {}


def test_capture_refuses_after_its_program_closed():
    p = xdplab.load(PASS_PROG, capture=True)
    cap = p.capture()
    kernel.prog_test_run(p.fd, FRAME, repeat=2)
    cap.flush()
    p.close()
    assert cap.closed and cap.stats()["captured"] == 4, "what was captured stays readable"
    assert len(cap.pairs()) == 2
    with pytest.raises(ClosedError, match="capture of xdp_pass is closed"):
        cap.clear()
    with pytest.raises(ClosedError, match="xdp_pass is closed"):
        p.capture()
    with pytest.raises(ClosedError, match="xdp_pass is closed"):
        Recorder(p)
    assert "closed" in repr(cap)
    cap.close()                                          # = stop, idempotent


def test_printk_stream_refuses_a_closed_program():
    p = xdplab.load(PRINTK)
    s = p.printk()
    kernel.prog_test_run(p.fd, FRAME)
    assert s.wait(1) == ["talk 1"]
    s.close()
    assert s.closed and s.lines() == ["talk 1"]
    p.close()
    with pytest.raises(ClosedError, match="xdp_talk is closed"):
        p.printk()
    with pytest.raises(ClosedError, match="xdp_talk is closed"):
        PrintkStream(p)


def test_generator_refuses_run_after_close(topo):
    h1 = topo["h1"]
    if not traffic.supported():
        pytest.skip("no BPF_PROG_RUN live frames on this kernel")
    g = traffic.Generator(IP(dst=h1.gw4) / UDP(dport=9), via=h1, attach_receiver=True)
    assert g.run(count=100, progress=False).sent == 100
    g.close()
    g.close()
    with pytest.raises(ClosedError, match=f"traffic generator out of veth0 \\(netns {h1.netns}\\) is closed"):
        g.run(count=100, progress=False)
    assert "closed" in repr(g)
    assert kernel.xdp_state(h1.outside) == {}, "the receiver went with close()"


def test_drop_detector_refuses_after_close():
    with xdplab.DropDetector() as dd:
        pass
    assert dd.closed and dd.summary().empty is not None     # what it recorded stays readable
    for use in (dd.start, dd.wait, dd.clear, dd.widget):
        with pytest.raises(ClosedError, match="DropDetector is closed"):
            use()
    assert dd.bpf is None, "not restarted"
    assert "closed" in repr(dd)
    never = xdplab.DropDetector()
    never.close()
    with pytest.raises(ClosedError):
        never.start()
