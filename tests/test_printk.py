"""bpf_printk lines reach the stream of the program that printed them, and only that one."""
from __future__ import annotations

import os
import time

from scapy.all import IP, UDP, Ether

import xdplab
from xdplab import kernel
from xdplab.programs import printk

SRC = r"""
int {name}(struct xdp_md *ctx)
{{
    bpf_printk("{name} saw %d bytes", (int)(ctx->data_end - ctx->data));
    return XDP_PASS;
}}
"""


def test_each_program_gets_its_own_lines():
    a = xdplab.load(SRC.format(name="pa"))
    b = xdplab.load(SRC.format(name="pb"))
    assert a.spec.printk_tag != b.spec.printk_tag
    sa, sb = a.printk(), b.printk()
    assert (printk.TRACEFS / "instances" / f"xdplab-{os.getpid()}").is_dir()
    frame = bytes(Ether() / IP() / UDP() / (b"x" * 58))
    kernel.prog_test_run(a.fd, frame, repeat=3)
    kernel.prog_test_run(b.fd, frame[:60])
    assert sa.wait(3) == ["pa saw 100 bytes"] * 3
    assert sb.wait(1) == ["pb saw 60 bytes"]
    time.sleep(0.2)
    assert len(sa.lines()) == 3 and len(sb.lines()) == 1
    a.close(); b.close()


def test_stream_from_live_traffic_stops_on_detach(topo):
    h = topo["h1"]
    prog = xdplab.load(SRC.format(name="live"))
    prog.attach(h.outside)
    s = prog.printk()
    h.send(IP(src=h.ipv4, dst=h.gw4) / UDP(dport=9) / (b"y" * 30), count=2)
    lines = s.wait(2)
    assert [l for l in lines if l == "live saw 72 bytes"] == ["live saw 72 bytes"] * 2
    assert s.running
    prog.detach()
    deadline = time.monotonic() + 2
    while s.running and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not s.running
    prog.close()


def test_programs_without_printk_are_untagged():
    prog = xdplab.load("int quiet(struct xdp_md *ctx) { return XDP_PASS; }")
    assert not prog.spec.printk_tag
    prog.close()
