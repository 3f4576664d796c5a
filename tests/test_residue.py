"""kill -9 of a process that uses everything at once leaves nothing behind (issue 11.4).

A child process runs a printk stream, a capture, a drop detector, an AF_XDP socket and a
traffic generator on a test topology, and reports every BPF object its fds hold. It is
killed with SIGKILL (no atexit, no finalizers). What the kernel frees with the process
(programs, maps, links, perf buffers, the XSK) must be gone at once; what cannot be
(the tracefs instance, bpffs pins, state files) must be gone after ``xdplab down --all``,
the documented cleanup for what a crashed run left.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from xdplab import kernel

from xdplab.kernel import procstate

from xdplab.net import topology

from .helpers import ROOT

pytestmark = [pytest.mark.kernel, pytest.mark.slow]

CHILD = r"""
import json, os, sys, threading, time
from scapy.all import IP, UDP
import xdplab
from xdplab.net import afxdp
from xdplab.programs import printk
from xdplab.kernel import procstate
from xdplab.net import topology
from xdplab.net import traffic
from xdplab.tools.drops import DropDetector

t = topology.Topology(prefix=sys.argv[1], net=int(sys.argv[2]))
h1, h2 = t["h1"], t["h2"]
prog = xdplab.load('int kid(struct xdp_md *ctx) { bpf_printk("kid %d", ctx->data_end - ctx->data); '
                   'return XDP_PASS; }', capture=xdplab.Capture(filter="udp", snaplen=64))
prog.attach(h1.outside)
stream = prog.printk()
cap = prog.capture()
dd = DropDetector().start()
xsk = afxdp.XSK(h2.outside, 0)
xsk.redirect(udp_port=4242)
gen = traffic.Generator(IP(src=h1.ipv4, dst=h1.gw4) / UDP(sport=7, dport=9), via=h1)
threading.Thread(target=gen.run, kwargs=dict(duration=300, rate=2000, progress=False), daemon=True).start()
deadline = time.monotonic() + 60
while (len(stream.lines()) < 3 or not cap.samples) and time.monotonic() < deadline:
    time.sleep(0.1)

ids = {"prog": set(), "map": set(), "link": set()}
perf = sockets = 0
for fd in os.listdir("/proc/self/fd"):
    try:
        target = os.readlink(f"/proc/self/fd/{fd}")
        info = open(f"/proc/self/fdinfo/{fd}").read()
    except OSError:
        continue
    perf += target == "anon_inode:[perf_event]"
    sockets += target.startswith("socket:")
    for line in info.splitlines():
        key, _, value = line.partition(":")
        if key in ("prog_id", "map_id", "link_id"):
            ids[key[:-3]].add(int(value))
print(json.dumps({"pid": os.getpid(), "stamp": procstate.stamp(), "instance": str(printk._reader.dir),
                  "printk_lines": len(stream.lines()), "captured": len(cap.samples), "perf_fds": perf,
                  "xsk_fd": xsk.fd, "ids": {k: sorted(v) for k, v in ids.items()}}), flush=True)
time.sleep(600)
"""


def bpftool_ids(kind: str) -> set[int]:
    out = subprocess.run(["bpftool", "-j", kind, "show"], capture_output=True, text=True, check=True).stdout
    return {o["id"] for o in json.loads(out or "[]")}


def probe_events(pid: int) -> list[str]:
    """kprobe/uprobe events BCC names after the process (p_<fn>_bcc_<pid>)."""
    out = []
    for f in ("kprobe_events", "uprobe_events"):
        try:
            out += [l for l in Path("/sys/kernel/tracing", f).read_text().splitlines() if f"bcc_{pid}" in l]
        except OSError:
            pass
    return out


def residue(pid: int, stamp: str, ids: dict, topo) -> dict:
    """Everything of the child's that still exists, by kind."""
    left = {kind: sorted(set(ids[kind]) & bpftool_ids(kind)) for kind in ("prog", "map", "link")}
    up = [h for h in topo if h.ifindex and (topology.NETNS_DIR / h.netns).exists()]
    left["xdp attached"] = [h.outside for h in up if kernel.xdp_state(h.outside)] + \
        [f"{h.netns}:{h.inside}" for h in up if kernel.run_in_netns(h.netns, kernel.xdp_state, h.inside)]
    left["tracefs instances"] = sorted(p.name for p in procstate.TRACEFS_INSTANCES.iterdir()
                                       if p.name.startswith(f"xdplab-{pid}"))
    left["pins"] = sorted(p.name for p in procstate.BPFFS.iterdir() if p.name.startswith(f"xdplab-{pid}"))
    left["probe events"] = probe_events(pid)
    left["state files"] = sorted(str(p) for p in procstate.STATE_DIR.rglob("*")
                                 if stamp in p.name or p.is_file() and stamp in p.read_text(errors="replace"))
    left["process"] = [str(pid)] if Path(f"/proc/{pid}").exists() else []
    return left


def test_kill_9_leaves_nothing_after_down_all(topo):
    t = topo
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    child = subprocess.Popen([sys.executable, "-c", CHILD, t.prefix, str(t.net)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = child.stdout.readline()
        assert line, "the child died: " + child.stderr.read()[-3000:]
        info = json.loads(line)
        pid, stamp, ids = info["pid"], info["stamp"], info["ids"]
        # it is all there while the child runs, and the checks below can see it
        assert info["printk_lines"] >= 3 and info["captured"] >= 1 and info["perf_fds"] >= 2, info
        alive = residue(pid, stamp, ids, t)
        assert all(alive[k] for k in ("prog", "map", "link", "xdp attached", "tracefs instances")), alive
        assert len(ids["prog"]) >= 4, ids       # the program, drop detector probes, XSK redirect, generator
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)

    # what the kernel frees with the process is freed (programs and maps asynchronously)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        after_kill = residue(pid, stamp, ids, t)
        if not any(after_kill[k] for k in ("prog", "map", "link", "xdp attached")):
            break
        time.sleep(0.5)
    r = subprocess.run([sys.executable, "-m", "xdplab", "doctor"], capture_output=True, text=True, env=env,
                       timeout=180)
    doctor = next((l for l in r.stdout.splitlines() if "leftovers" in l), "")
    down = subprocess.run([sys.executable, "-m", "xdplab", "down", "--all", "--prefix", t.prefix],
                          capture_output=True, text=True, env=env, timeout=120)
    after_down = residue(pid, stamp, ids, t)
    counts = lambda r: {k: len(v) for k, v in r.items()}
    print(f"\nwhile alive: {counts(alive)}, perf fds {info['perf_fds']}"
          f"\nresidue after kill -9: {counts(after_kill)}\nresidue after down --all: {counts(after_down)}")
    assert not any(after_kill[k] for k in ("prog", "map", "link", "xdp attached", "probe events",
                                           "pins", "process")), after_kill
    if after_kill["tracefs instances"]:
        assert "WARN" in doctor and "tracefs instances" in doctor, r.stdout
    assert down.returncode == 0, down.stderr
    assert not any(after_down.values()), after_down


def test_down_all_removes_only_what_dead_processes_left():
    """A name is live only while the process with that pid *and* start time runs: ours
    (this process) stays, one with our pid and another start time (a dead process whose
    pid we got) is reported by doctor and removed by down --all: a tracefs instance, a
    bpffs pin directory with a map in it, a JupyterLab private directory."""
    mine, dead = procstate.stamp(), f"{os.getpid()}-{procstate.starttime() + 1}"
    made = {}
    for who, stamp in (("mine", mine), ("dead", dead)):
        inst = procstate.TRACEFS_INSTANCES / f"{procstate.INSTANCE_PREFIX}{stamp}-t"
        inst.mkdir(exist_ok=True)
        pins = procstate.BPFFS / f"{procstate.PIN_PREFIX}{stamp}-t"
        pins.mkdir(exist_ok=True)
        fd = kernel.map_create(2, 4, 4, 1, name="residue")          # BPF_MAP_TYPE_ARRAY
        kernel.obj_pin(fd, str(pins / "m"))
        os.close(fd)
        srv = procstate.SERVER_DIRS / f"server-test{who}"
        srv.mkdir(parents=True, exist_ok=True)
        (srv / "serve.pid").write_text(stamp)
        made[who] = [inst, pins, srv]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    try:
        assert {p for ps in procstate.dead().values() for p in ps} >= set(made["dead"])
        assert not {p for ps in procstate.dead().values() for p in ps} & set(made["mine"])
        r = subprocess.run([sys.executable, "-m", "xdplab", "down", "--all", "--prefix", "xzz-"],
                           capture_output=True, text=True, env=env, timeout=120)
        assert r.returncode == 0, r.stderr
        assert all(str(p) in r.stdout and not p.exists() for p in made["dead"]), r.stdout
        assert all(p.exists() for p in made["mine"])
    finally:
        for p in made["mine"] + made["dead"]:
            if p.exists():
                if p.parent == procstate.TRACEFS_INSTANCES:
                    procstate.remove_instance(p)
                elif p.parent == procstate.BPFFS:
                    for f in p.iterdir():
                        f.unlink()
                    p.rmdir()
                else:
                    (p / "serve.pid").unlink()
                    p.rmdir()
