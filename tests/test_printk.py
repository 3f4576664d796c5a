"""bpf_printk lines reach the stream of the program that printed them, and only that one."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from scapy.all import IP, UDP, Ether

import xdplab
from xdplab import kernel
from xdplab.kernel import procstate
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
    assert (printk.TRACEFS / "instances" / f"xdplab-{procstate.stamp()}").is_dir()
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


def test_instance_and_tags_name_the_process_not_just_its_pid():
    start = procstate.starttime()
    assert printk.tag_prefix() == f"xl{os.getpid()}t{start:x}."
    assert procstate.stamp() == f"{os.getpid()}-{start}"
    assert procstate.alive(os.getpid(), start) and not procstate.alive(os.getpid(), start + 1)
    assert procstate.stamp_alive(procstate.stamp()) and not procstate.stamp_alive(f"{os.getpid()}-{start + 1}")


# A process whose pid a killed one had: it finds the dead one's instances (old name
# xdplab-<pid>, and the new name with another start time) full of lines with its own tag
# prefix, as when a reused pid met a kill -9'd predecessor. Its stream shows only its own line.
REUSED_PID = r"""
import os, sys, time
from scapy.all import Ether, IP, UDP
import xdplab
from xdplab import kernel
from xdplab.programs import printk
from xdplab.kernel import procstate
inst = printk.TRACEFS / "instances"
SRC = 'int reuse(struct xdp_md *ctx) { bpf_printk("mine %d", 1); return XDP_PASS; }'
prog = xdplab.load(SRC)
stale = [inst / f"xdplab-{os.getpid()}", inst / f"xdplab-{os.getpid()}-{procstate.starttime() + 7}"]
for d in stale:
    d.mkdir()
    (d / "events" / "bpf_trace" / "bpf_trace_printk" / "enable").write_text("1\n")
frame = bytes(Ether() / IP() / UDP() / (b"x" * 20))
kernel.prog_test_run(prog.fd, frame, repeat=5)     # the "dead" process's lines, same tag
assert all("mine 1" in (d / "trace").read_text() for d in stale)
s = prog.printk()
kernel.prog_test_run(prog.fd, frame)
lines = s.wait(1)
time.sleep(0.5)
print(len(s.lines()), s.dir if hasattr(s, "dir") else printk._reader.dir)
print(" ".join(str(d) for d in stale))
"""


def test_a_reused_pid_never_streams_a_dead_process_lines():
    """Issue 11.4: instances/xdplab-<pid> outlived a kill -9; a new process with that pid
    streamed the dead program's buffered lines. Now it has an instance of its own, and
    the stale ones (their process is gone) are removed when its reader starts."""
    r = subprocess.run([sys.executable, "-c", REUSED_PID], capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent)))
    assert r.returncode == 0, r.stderr[-3000:]
    (count, own), stale = r.stdout.splitlines()[0].split(), r.stdout.splitlines()[1].split()
    try:
        assert count == "1", f"the stream got {count} lines, 1 was printed after it started"
        assert own not in stale
        assert not (printk.TRACEFS / "instances" / Path(own).name).exists()      # atexit removed it
    finally:
        for d in stale:
            if os.path.isdir(d):
                procstate.remove_instance(Path(d))
