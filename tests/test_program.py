"""Programs on the real kernel: compile, attach through bpf_link, count, replace, refuse."""
import signal
import time

import pytest

import xdplab
from xdplab import kernel
from xdplab.errors import AttachError, CompileError, VerifierError

from .helpers import DROP_ICMP, PASS_PROG, attach_in_child

pytestmark = pytest.mark.kernel


def test_pass_program_counts_pings(topo):
    h1 = topo["h1"]
    with xdplab.load(PASS_PROG) as prog:
        link = prog.attach(h1.outside)
        assert kernel.xdp_state(h1.outside) == {"native": prog.id}
        assert h1.ping(h1.gw4, count=4, interval=0.05) == 4
        c = prog.counters()
        assert c["PASS"] >= 4 and c["DROP"] == 0
        assert c.bytes["PASS"] >= 4 * 98          # an ICMP echo frame is 98 bytes
        assert link.attached
    assert kernel.xdp_state(h1.outside) == {}, "closing the program must detach it"


def test_drop_icmp_drops_exactly_the_pings(topo):
    h1 = topo["h1"]
    with xdplab.load(DROP_ICMP) as prog:
        prog.attach(h1.outside)
        assert h1.ping(h1.gw4, count=5, interval=0.05, timeout=0.3) == 0
        assert prog.counters()["DROP"] == 5


def test_generic_mode_attaches_as_skb_mode(topo):
    h1 = topo["h1"]
    with xdplab.load(DROP_ICMP) as prog:
        prog.attach(h1.outside, mode="generic")
        assert kernel.xdp_state(h1.outside) == {"generic": prog.id}
        assert h1.ping(h1.gw4, count=2, interval=0.05, timeout=0.3) == 0


def test_reattach_swaps_program_on_the_same_link(topo):
    h1 = topo["h1"]
    first = xdplab.load(PASS_PROG)
    link = first.attach(h1.outside)
    second = xdplab.load(DROP_ICMP)
    link2 = second.attach(h1.outside)
    assert link2 is link and link.program is second and not first.links
    assert kernel.xdp_state(h1.outside) == {"native": second.id}
    assert kernel.xdp_link_ids(h1.ifindex) == [link.id], "still one link: updated, not replaced"
    assert h1.ping(h1.gw4, count=2, interval=0.05, timeout=0.3) == 0
    first.close()
    assert link.attached, "closing the old program must not detach the link now owned by the new one"
    second.close()
    assert kernel.xdp_state(h1.outside) == {}


def test_detach_then_attach_elsewhere(topo):
    h1, h2 = topo["h1"], topo["h2"]
    with xdplab.load(PASS_PROG) as prog:
        prog.attach(h1.outside)
        prog.detach()
        assert kernel.xdp_state(h1.outside) == {}
        prog.attach(h2.outside)
        assert kernel.xdp_state(h2.outside) == {"native": prog.id}


def test_refuses_default_route_interface():
    dev = sorted(kernel.default_route_ifnames())
    if not dev:
        pytest.skip("this machine has no default route")
    with xdplab.load(PASS_PROG) as prog:
        with pytest.raises(AttachError, match="default route"):
            prog.attach(dev[0])
        assert kernel.xdp_state(dev[0]) == {}


def test_refuses_unknown_interface_and_bad_mode(topo):
    with xdplab.load(PASS_PROG) as prog:
        with pytest.raises(AttachError, match="no interface named"):
            prog.attach("xt-nosuchif")
        with pytest.raises(AttachError, match="unknown XDP mode"):
            prog.attach(topo["h1"].outside, mode="turbo")
        assert not prog.links


def test_refuses_program_of_another_process_unless_replace(topo):
    h1 = topo["h1"]
    child = attach_in_child(h1.outside)
    try:
        with xdplab.load(DROP_ICMP) as prog:
            with pytest.raises(AttachError, match="not attached by this process"):
                prog.attach(h1.outside)
            assert kernel.xdp_state(h1.outside) == {"native": child.prog_id}
            prog.attach(h1.outside, replace=True)
            assert kernel.xdp_state(h1.outside) == {"native": prog.id}
    finally:
        child.kill()
        child.wait()


def test_kill_9_of_owner_detaches_its_program(topo):
    h1 = topo["h1"]
    child = attach_in_child(h1.outside, DROP_ICMP)
    assert kernel.xdp_state(h1.outside) == {"native": child.prog_id}
    child.send_signal(signal.SIGKILL)
    child.wait()
    deadline = time.monotonic() + 5
    while kernel.xdp_state(h1.outside) and time.monotonic() < deadline:
        time.sleep(0.05)        # the kernel releases the link when the fd table goes
    assert kernel.xdp_state(h1.outside) == {}
    assert h1.ping(h1.gw4, count=1) == 1


def test_netlink_attached_program_is_refused_then_replaced(topo):
    """A program attached the old way (netlink, e.g. by `ip link set xdp`) is not ours."""
    h1 = topo["h1"]
    other = xdplab.load(PASS_PROG)
    with kernel.ipr() as ip:
        ip.link("set", index=h1.ifindex, xdp_fd=other.fd, xdp_flags=kernel.XDP_FLAGS_DRV_MODE)
    try:
        with xdplab.load(DROP_ICMP) as prog:
            with pytest.raises(AttachError):
                prog.attach(h1.outside)
            prog.attach(h1.outside, replace=True)
            assert kernel.xdp_state(h1.outside) == {"native": prog.id}
    finally:
        other.close()
    assert kernel.xdp_state(h1.outside) == {}


def test_compile_error_attaches_nothing(topo):
    with pytest.raises(CompileError, match="line 2"):
        xdplab.load("int bad(struct xdp_md *ctx) {\n  return nope;\n}")
    assert kernel.xdp_state(topo["h1"].outside) == {}


def test_verifier_error_names_line_and_attaches_nothing(topo):
    src = "int bad(struct xdp_md *ctx) {\n  unsigned char *p = (void *)(long)ctx->data;\n  return p[20];\n}"
    with pytest.raises(VerifierError) as e:
        xdplab.load(src)
    assert e.value.line == 3 and e.value.explanation.key == "packet-bounds"
    assert "invalid access to packet" in e.value.log
    assert kernel.xdp_state(topo["h1"].outside) == {}


def test_keyboard_interrupt_inside_with_block_detaches(topo):
    h1 = topo["h1"]
    with pytest.raises(KeyboardInterrupt):
        with xdplab.load(PASS_PROG) as prog:
            prog.attach(h1.outside)
            raise KeyboardInterrupt
    assert kernel.xdp_state(h1.outside) == {}


def test_maps_read_as_dict_numpy_and_dataframe(topo):
    h1 = topo["h1"]
    src = """
    BPF_PERCPU_ARRAY(pcpu, u64, 4);
    BPF_HASH(seen, u32, u64);
    int m(struct xdp_md *ctx) {
        u32 k = 2; u64 one = 1;
        u64 *v = pcpu.lookup(&k);
        if (v) *v += 1;
        seen.update(&k, &one);
        return XDP_PASS;
    }"""
    with xdplab.load(src) as prog:
        assert set(prog.maps) == {"xdplab_actions", "pcpu", "seen"}
        prog["seen"][7] = 9                      # preset from Python
        prog.attach(h1.outside)
        h1.ping(h1.gw4, count=3, interval=0.05)
        prog.detach()                            # freeze the counts before comparing
        total = prog.counters().total
        assert prog["pcpu"].to_dict(sum_cpus=True)[2] == total
        arr = prog["pcpu"].to_numpy()
        assert arr.shape == (4,) and arr[2] == total
        per_cpu = prog["pcpu"].to_df(sum_cpus=False)
        assert per_cpu[per_cpu.key == 2].value.sum() == total
        assert prog["seen"].to_dict() == {2: 1, 7: 9}
        assert set(prog.counters().to_df().columns) == {"packets", "bytes"}


def test_live_plot_samples_and_stops_on_detach(topo):
    h1 = topo["h1"]
    with xdplab.load(DROP_ICMP) as prog:
        prog.attach(h1.outside)
        plot = prog.plot(hz=4)
        assert plot.widget is not None              # a jupyter_bokeh BokehModel
        h1.ping(h1.gw4, count=10, interval=0.1, timeout=0.2)
        time.sleep(0.5)
        assert any(s["DROP"] > 0 for s in plot.samples)
        assert len(plot.source.data["t"]) == len(plot.samples)
        prog.detach()
        time.sleep(0.6)
        assert not plot.sampler.running, "the plot stops when the program is detached"
