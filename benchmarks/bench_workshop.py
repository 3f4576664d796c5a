"""Workshop sizing (issue 18): a real hub with N attendees who all run lab 01 (exercise solved,
check cell included) at the same time; per N: pass rate, wall time, memory per attendee
(PSS of its single-user server + kernels, from /proc/<pid>/smaps_rollup), the hub's own
(hub + proxy + room service), load average. Not a test: a measurement for the README.

    PYTHONPATH=. /opt/xdplab-venv/bin/python benchmarks/bench_workshop.py 3 6 9 12
Stops early when fewer than all attendees pass (something degraded)."""
from __future__ import annotations

import os
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests import hubdrive as hd            # noqa: E402
from xdplab.net import topology       # noqa: E402
from xdplab.ui import workshop


# not x<letters><digits>: a pytest session whose pid ends in those digits takes such names for
# its own leftovers (tests/conftest.py) and removes them when it ends
PREFIX = "bw"


def pss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def env_of(pid: int) -> dict:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    return dict(l.decode(errors="replace").split("=", 1) for l in raw.split(b"\0") if b"=" in l)


def memory(room_id: str) -> tuple[dict, int]:
    """PSS (KiB) per attendee (XDPLAB_OWNER) and of the rest of the room (hub, proxy, service)."""
    per, rest = {}, 0
    for p in workshop.room_processes(room_id):
        e = env_of(p)
        if e.get("XDPLAB_OWNER"):
            per[e["XDPLAB_OWNER"]] = per.get(e["XDPLAB_OWNER"], 0) + pss_kib(p)
        else:
            rest += pss_kib(p)
    return per, rest


def one(n: int, port: int) -> dict:
    d = Path(tempfile.mkdtemp(prefix="xdplab-bench-room-")) / "room"
    proc, base = hd.start_hub(d, n, port, PREFIX, 30, d.parent / "workshop.out")
    try:
        pw = hd.passwords(d)
        names = [f"attendee{i}" for i in range(1, n + 1)]
        t0 = time.monotonic()
        sess = {a: hd.login(base, a, pw[a]) for a in names}
        res, errs = {}, []

        def attendee(a):
            try:
                hd.start_server(sess[a], base, a, timeout=600)
                k = hd.Kernel(base, a, hd.make_token(sess[a], base, a))
                rs = hd.run_lab01(k, solve=True)
                res[a] = bool(rs) and rs[-1]["ok"] and "lab 01 done" in rs[-1]["text"]
                if not res[a]:
                    errs.append((a, rs[-1]["error"]))
            except Exception as e:          # a degraded room: count it, say why
                res[a] = False
                errs.append((a, repr(e)[:200]))
        ts = [threading.Thread(target=attendee, args=(a,)) for a in names]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        wall = time.monotonic() - t0
        per, rest = memory(workshop.Room.load(d).id)
        load = os.getloadavg()
    finally:
        t1 = time.monotonic()
        hd.stop_hub(proc, timeout=600)
        stop_s = time.monotonic() - t1
    left = topology.leftovers(PREFIX)
    return {"n": n, "passed": sum(res.values()), "wall_s": wall, "stop_s": stop_s,
            "mib_per_attendee": (sum(per.values()) / max(len(per), 1)) / 1024, "hub_mib": rest / 1024,
            "load": load, "errors": errs, "left": left}


def main(argv) -> int:
    from tests.conftest import free_port
    sizes = [int(x) for x in argv] or [3, 6, 9, 12]
    print(f"{os.cpu_count()} cores, {os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') >> 30} GiB; "
          f"load average at start {os.getloadavg()}", flush=True)
    print(f"{'N':>3} {'passed':>7} {'wall s':>7} {'MiB/attendee':>13} {'hub MiB':>8} {'stop s':>7}  load 1/5/15")
    for n in sizes:
        r = one(n, free_port())
        print(f"{r['n']:>3} {r['passed']:>3}/{r['n']:<3} {r['wall_s']:>7.0f} {r['mib_per_attendee']:>13.0f} "
              f"{r['hub_mib']:>8.0f} {r['stop_s']:>7.0f}  {'/'.join(f'{x:.1f}' for x in r['load'])}"
              + (f"  left: {r['left']}" if any(r["left"].values()) else ""), flush=True)
        for a, e in r["errors"]:
            print(f"      {a}: {e}", flush=True)
        if r["passed"] < r["n"]:
            print(f"degraded at {n} attendees: stopping", flush=True)
            break
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
