"""Issue 18: a workshop room on a real JupyterHub (configurable-http-proxy, FirstUseAuthenticator
with generated passwords, LabSpawner), three attendees running lab 01 at the same time
through the hub, the instructor's view, and nothing left when the hub stops."""
from __future__ import annotations

import json
import os
import re
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests

from tests import hubdrive as hd
from xdplab import kernel
from xdplab.net import topology
from xdplab.ui import workshop

pytestmark = pytest.mark.skipif(not workshop.CHP.exists() or workshop.LabSpawner is None,
                                reason="the workshop extra is not installed (XDPLAB_WORKSHOP=1 scripts/setup.sh)")

N = 3
NAMES = [f"attendee{i}" for i in range(1, N + 1)]
PREFIX_BASE = f"xw{os.getpid() % 100:02d}"
NET_BASE = 90                      # nets 90..93 (instructor 90): no test, notebook or bench uses them


@pytest.fixture(scope="module")
def room(tmp_path_factory):
    from tests.conftest import free_port
    d = tmp_path_factory.mktemp("room") / "room"
    proc, base = hd.start_hub(d, N, free_port(), PREFIX_BASE, NET_BASE, d.parent / "workshop.out")
    info = {"dir": d, "base": base, "proc": proc, "pw": hd.passwords(d), "room": workshop.Room.load(d)}
    yield info
    if proc.poll() is None:
        hd.stop_hub(proc)
    for a in info["room"].attendees:
        topology.remove_all(a.prefix)


def _parallel(fn, items):
    out, errs = {}, []

    def run(x):
        try:
            out[x] = fn(x)
        except Exception as e:          # reported below, with the attendee
            errs.append((x, e))
    ts = [threading.Thread(target=run, args=(x,)) for x in items]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errs, errs
    return out


def _status(room):
    s = hd.login(room["base"], "instructor", room["pw"]["instructor"])
    r = s.get(f"{room['base']}/services/xdplab-room/api/status", timeout=60)
    assert r.status_code == 200, (r.status_code, r.url)
    return {a["name"]: a for a in r.json()["attendees"]}, s


def test_setup_refuses_bad_rooms(tmp_path):
    with pytest.raises(workshop.UsageError, match="attendees"):
        workshop.plan(0)
    with pytest.raises(workshop.UsageError, match="1..90"):
        workshop.plan(91)
    with pytest.raises(workshop.UsageError, match="unique"):
        workshop.plan(names=["bob", "bob"])
    with pytest.raises(workshop.UsageError, match="net-base"):
        workshop.plan(60, net_base=100)
    people = workshop.plan(50)
    assert len({a.prefix for a in people}) == len({a.net for a in people}) == 51
    assert max(len(a.prefix) for a in people) + len("rrt") <= 15
    routers = {(a.net + 100) % 250 + 1 for a in people}
    assert not routers & {a.net for a in people}, "router nets collide with attendee nets"
    cfg = tmp_path / "room.toml"
    cfg.write_text('attendees = ["bob", "carol"]\n[passwords]\nbob = "a-long-password"\n')
    os.chmod(cfg, 0o644)
    with pytest.raises(workshop.UsageError, match="chmod 600"):
        workshop.read_config(cfg)
    os.chmod(cfg, 0o600)
    assert workshop.read_config(cfg)["attendees"] == ["bob", "carol"]


def test_attendees_cannot_touch_each_others_labs(topo_factory, monkeypatch):
    """Without the hub: a topology built for attendee alice (XDPLAB_OWNER) refuses bob's
    attach, replace, down and remove_all with an OwnerError naming alice; the instructor
    (no XDPLAB_OWNER) and alice herself may."""
    import xdplab
    monkeypatch.setenv("XDPLAB_OWNER", "alice")
    t = topo_factory()
    prog = xdplab.load("int f(struct xdp_md *c) { return XDP_PASS; }")
    try:
        link = prog.attach(t["h1"].outside)
        monkeypatch.setenv("XDPLAB_OWNER", "bob")
        mine = xdplab.load("int g(struct xdp_md *c) { return XDP_DROP; }")
        try:
            for what in (lambda: mine.attach(t["h1"].outside, replace=True),
                         lambda: mine.attach(t["h2"].outside), t.down,
                         lambda: topology.remove_all(t.prefix), t.up):
                with pytest.raises(xdplab.errors.OwnerError, match="attendee 'alice'"):
                    what()
            assert kernel.xdp_state(t["h1"].outside) == {"native": prog.id}, "alice's program was touched"
            assert t.is_up()
        finally:
            mine.close()
        monkeypatch.setenv("XDPLAB_OWNER", "alice")
        link.detach()
        monkeypatch.delenv("XDPLAB_OWNER")             # the instructor
        prog.attach(t["h2"].outside).detach()
    finally:
        prog.close()


def test_three_attendees_run_lab01_at_once(room):
    base, pw = room["base"], room["pw"]
    rm: workshop.Room = room["room"]
    with pytest.raises(PermissionError):
        hd.login(base, "attendee1", "not-the-password")
    with pytest.raises(PermissionError):
        hd.login(base, "stranger", "whatever-password")      # no account without the room's list
    sessions = {n: hd.login(base, n, pw[n]) for n in NAMES}
    _parallel(lambda n: hd.start_server(sessions[n], base, n), NAMES)
    kernels = {n: hd.Kernel(base, n, hd.make_token(sessions[n], base, n)) for n in NAMES}
    room["kernels"] = kernels
    # the solutions are not in anyone's working copy before the instructor releases them
    assert not any((rm.workdir(n) / "solutions").exists() for n in NAMES)

    # phase 1, all at once: lab 01 up to its exercise, graded as shipped (the TODO fails)
    cells = hd.lab01_cells()
    ex = next(i for i, c in enumerate(cells) if c.startswith("%%xdp --no-attach --name mine"))

    def phase1(n):
        rs = [kernels[n].execute(c) for c in cells[:ex + 2]]
        assert all(r["ok"] for r in rs), [r for r in rs if not r["ok"]]
        return kernels[n].execute("print(lab['h1'].outside, lab.net, prog.links[0].ifname)")["text"].split()
    where = _parallel(phase1, NAMES)
    view, _ = _status(room)
    for n in NAMES:
        a = rm.attendee(n)
        assert where[n] == [f"{a.prefix}h1", str(a.net), f"{a.prefix}h1"]
        lab01 = view[n]["labs"]["01-hello-xdp"]
        assert lab01["state"] == "failing" and "exercise:" in lab01["detail"], lab01
        assert "expected XDP_DROP" in lab01["detail"], lab01       # the grader's first failing item
    # disjoint: hosts, subnets and the programs attached to them
    progs = {n: kernel.xdp_state(f"{rm.attendee(n).prefix}h1") for n in NAMES}
    ids = [p["native"] for p in progs.values()]
    assert len(set(ids)) == N and all(ids), progs
    assert len({rm.attendee(n).net for n in NAMES}) == N

    # attendee1 cannot attach to, change or remove attendee2's interfaces and lab
    other = rm.attendee("attendee2").prefix
    r = kernels["attendee1"].execute(f"prog.attach({other + 'h1'!r}, replace=True)")
    assert not r["ok"] and r["error"].startswith("OwnerError") and "'attendee2'" in r["error"], r
    r = kernels["attendee1"].execute(f"xdplab.Topology(prefix={other!r}).down()")
    assert not r["ok"] and r["error"].startswith("OwnerError") and "'attendee2'" in r["error"], r
    r = kernels["attendee1"].execute(f"import subprocess; print(subprocess.run(['python', '-m', 'xdplab', 'down', "
                                     f"'--prefix', {other!r}], capture_output=True, text=True).stderr)")
    assert "attendee2" in r["text"], r
    assert kernel.xdp_state(f"{other}h1") == progs["attendee2"], "attendee2's program was touched"

    # phase 2, all at once: the exercise solved, graded, and the check cell
    def phase2(n):
        rs = [kernels[n].execute(hd.solved_exercise())] + [kernels[n].execute(c) for c in cells[ex + 1:]]
        assert all(r["ok"] for r in rs), [r for r in rs if not r["ok"]]
        return rs[-1]["text"]
    done = _parallel(phase2, NAMES)
    assert all("lab 01 done" in t for t in done.values()), done
    view, inst = _status(room)
    assert [view[n]["labs"]["01-hello-xdp"]["state"] for n in NAMES] == ["passed"] * N, view
    assert view["attendee1"]["labs"]["02-maps"]["state"] == "not tried"
    page = inst.get(f"{base}/services/xdplab-room/", timeout=60).text
    assert page.count("<td class='passed'>") == N and all(n in page for n in NAMES)

    # an attendee is not the instructor
    r = sessions["attendee1"].get(f"{base}/services/xdplab-room/api/status", timeout=60)
    assert r.status_code == 403 and "passed" not in r.text

    # the instructor resets attendee3's lab 01 and releases lab 01's solutions to everyone
    xsrf = re.search(r'const xsrf = "([^"]+)"', page).group(1)     # the page's forms carry it
    mine = rm.workdir("attendee3") / "labs" / "01-hello-xdp.ipynb"
    mine.write_text(mine.read_text().replace("TODO: drop ICMP", "my notes: drop ICMP"))
    r = inst.post(f"{base}/services/xdplab-room/reset", data={"user": "attendee3", "lab": "01", "_xsrf": xsrf},
                  headers={"Accept": "application/json"}, timeout=60)
    assert r.status_code == 200, r.text
    (restored, kept), = r.json()["reset"]
    assert "TODO: drop ICMP" in Path(restored).read_text() and "my notes" in Path(kept).read_text()
    r = inst.post(f"{base}/services/xdplab-room/release", data={"lab": "01", "_xsrf": xsrf},
                  headers={"Accept": "application/json"}, timeout=60)
    assert r.json() == {"released": "01-hello-xdp"}, r.text
    for n in NAMES:
        assert (rm.workdir(n) / "solutions" / "01-hello-xdp" / "drop_icmp_echo.c").exists()
        assert not (rm.workdir(n) / "solutions" / "02-maps").exists()
    view, _ = _status(room)
    assert view["attendee3"]["labs"]["01-hello-xdp"]["state"] == "not tried"
    assert view["attendee1"]["labs"]["01-hello-xdp"]["state"] == "passed"
    # a form post without the XSRF token is refused
    r = inst.post(f"{base}/services/xdplab-room/release", data={"lab": "02"}, timeout=60)
    assert r.status_code == 403


def test_no_credentials_get_only_the_login_page(room):
    base = room["base"]
    for path in ("/hub/home", "/user/attendee1/lab", "/user/attendee1/api/kernels",
                 "/services/xdplab-room/", "/services/xdplab-room/api/status", "/hub/admin"):
        r = requests.get(base + path, timeout=60)
        if r.history:                                    # redirected: to the login page
            assert r.url.split("?")[0].endswith("/hub/login"), (path, r.url)
            # the login form, and nothing of the room (only the URL asked for comes back, as next=)
            assert 'name="password"' in r.text, path
            assert not re.search(r"passed|failing|xdplab room|XDPLAB_|kernel_id|\"kernels\"", r.text), path
        else:
            assert r.status_code in (403, 401) or r.url.split("?")[0].endswith("/hub/login"), (path, r.status_code)
    for path in ("/hub/api/users", "/hub/api/users/attendee1"):
        r = requests.get(base + path, timeout=60)
        assert r.status_code == 403 and "attendee1" not in r.text, (path, r.status_code)
    # the wrong password, or none, on an attendee's server API
    r = requests.get(f"{base}/user/attendee1/api/kernels", headers={"Authorization": "token nope"},
                     timeout=60, allow_redirects=False)
    assert r.status_code in (302, 403), r.status_code


def test_secrets_readable_by_no_other_user(room):
    from tests.test_server import _scan_as_nobody
    d: Path = room["dir"]
    assert d.stat().st_mode & 0o777 == 0o700
    for f in ("passwords.txt", "jupyterhub_cookie_secret", "room.json"):
        assert (d / f).stat().st_mode & 0o077 == 0, f
    chp = [int(p) for p in os.listdir("/proc") if p.isdigit()
           and b"configurable-http-proxy" in Path(f"/proc/{p}/cmdline").read_bytes()
           and str(room["room"].proxy_api_port).encode() in Path(f"/proc/{p}/cmdline").read_bytes()]
    assert chp, "the proxy is not running"
    env = dict(l.split(b"=", 1) for l in Path(f"/proc/{chp[0]}/environ").read_bytes().split(b"\0") if b"=" in l)
    proxy_token = env[b"CONFIGPROXY_AUTH_TOKEN"].decode()
    assert proxy_token.encode() not in Path(f"/proc/{chp[0]}/cmdline").read_bytes()
    cookie = (d / "jupyterhub_cookie_secret").read_text().strip()
    for secret in [proxy_token, cookie, *room["pw"].values()]:
        read, found = _scan_as_nobody(secret, [d.parent, "/run/xdplab", "/tmp", "/var/log"])
        assert read > 100 and found == [], found


def test_stopping_the_hub_leaves_nothing(room):
    kernels = room.get("kernels")
    if not kernels:
        pytest.skip("needs the attendees of test_three_attendees_run_lab01_at_once")
    rm: workshop.Room = room["room"]
    # every attendee has a program attached when the hub stops
    ids = {}
    for n, k in kernels.items():
        r = k.execute("keep = xdplab.load('int f(struct xdp_md *c) { return XDP_PASS; }'); "
                      "keep.attach(lab['h2'].outside); print(keep.id)")
        assert r["ok"], r
        ids[n] = int(r["text"].split()[-1])
    pids = workshop.room_processes(rm.id)
    assert len(pids) >= 2 + 2 * N        # hub, proxy, service, and a server + kernel per attendee
    rc = hd.stop_hub(room["proc"])
    assert rc == 0
    assert not [p for p in pids if Path(f"/proc/{p}").exists()], "processes of the room are left"
    assert workshop.room_processes(rm.id) == []
    left = topology.leftovers(PREFIX_BASE)
    assert left == {"netns": [], "links": []}, left
    for n, pid in ids.items():
        r = subprocess.run(["bpftool", "prog", "show", "id", str(pid)], capture_output=True, text=True)
        assert r.returncode != 0, f"{n}'s program {pid} is still loaded: {r.stdout}"
    links = subprocess.run(["bpftool", "-j", "link", "show"], capture_output=True, text=True).stdout
    assert not any(l.get("prog_id") in ids.values() for l in json.loads(links or "[]"))
    assert not list(Path("/run/xdplab").glob(f"topology-{PREFIX_BASE}*"))
