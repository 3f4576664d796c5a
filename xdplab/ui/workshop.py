"""A conference workshop on one machine: JupyterHub serves a room, every attendee gets a lab
of their own, the instructor sees the room (``./lab workshop --attendees N``).

Built on JupyterHub, not beside it:

- **Hub and proxy**: ``jupyterhub`` (PyPI) with ``configurable-http-proxy`` (npm, installed
  by ``scripts/setup.sh`` into ``/opt/xdplab-chp`` when ``XDPLAB_WORKSHOP=1``), on 127.0.0.1
  unless ``--ip`` says otherwise.
- **Accounts**: ``firstuseauthenticator.FirstUseAuthenticator`` (PyPI
  ``jupyterhub-firstuseauthenticator``), with every account's password generated here and
  seeded through its own ``reset_password()`` before the hub starts: no name works
  without its password, and no one can claim a name first. The passwords go to
  ``<room>/passwords.txt`` (0600) for the instructor to hand out; attendees can change theirs
  at ``/hub/auth/change-password``. A config file may name the attendees and give passwords.
- **Spawner**: ``LabSpawner``, JupyterHub's ``SimpleLocalProcessSpawner`` (no system users:
  BPF needs root, so every single-user server runs as root) plus each attendee's lab:
  ``XDPLAB_PREFIX`` ``<base><index>-`` and ``XDPLAB_NET`` ``<net base> + index`` (its router
  labs take ``(net + 100) % 250 + 1``: both ranges are disjoint for up to ``MAX_ATTENDEES``),
  ``XDPLAB_OWNER`` (xdplab then refuses other attendees' interfaces and topologies),
  working copies of the labs in ``<room>/attendees/<name>`` (``XDPLAB_WORKDIR``: ``./lab
  reset`` works there), an IPython startup file that records check cells
  (``xdplab.room``), and a private 0700 runtime dir. When a server stops, its lab's hosts go.
- **Instructor view**: the hub service ``xdplab-room`` (``xdplab.room``), admin only through
  hub OAuth, at ``/services/xdplab-room/``.

Secrets: the room directory is 0700 (passwords, the password database, the hub's cookie
secret and database, results); the proxy's auth token reaches configurable-http-proxy in
its environment, as JupyterHub does it, which only root can read (the processes run as
root). Nothing secret is on a command line.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import UsageError, XDPLabError
from . import workspace
from ..labs.grading import SOLUTIONS
from ..net import labstate
from ..net import topology
from ..kernel.procstate import remove_dead
import tomllib
import asyncio

ROOT = Path(__file__).resolve().parents[2]        # the directory that holds the xdplab package
DEFAULT_ROOM = Path(os.environ.get("XDPLAB_ROOM_DIR", "/var/lib/xdplab/workshop"))
CHP_PREFIX = Path(os.environ.get("XDPLAB_CHP_PREFIX", "/opt/xdplab-chp"))
CHP = CHP_PREFIX / "node_modules" / ".bin" / "configurable-http-proxy"
SERVICE = "xdplab-room"
MAX_ATTENDEES = 90              # nets base..base+90 and their router nets never overlap
DEFAULT_NET_BASE = 20           # attendee i: 10.<20+i>.x.x, router labs 10.<121+i>.x.x
DEFAULT_PREFIX_BASE = "w"
_USER = re.compile(r"^[a-z][a-z0-9_.-]{0,31}$")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Attendee:
    name: str
    index: int
    prefix: str
    net: int
    admin: bool = False


@dataclass
class Room:
    """What ``./lab workshop`` set up (``<room>/room.json``; nothing secret in it)."""

    dir: str
    attendees: list
    instructor: str
    ip: str = "127.0.0.1"
    port: int = 8000
    hub_port: int = 0
    proxy_api_port: int = 0
    service_port: int = 0
    id: str = ""

    @property
    def path(self) -> Path:
        return Path(self.dir)

    def attendee(self, name: str) -> Attendee:
        for a in self.attendees:
            if a.name == name:
                return a
        raise UsageError(f"no attendee named {name!r} in this room",
                         hint="attendees: " + ", ".join(a.name for a in self.attendees))

    def workdir(self, name: str) -> Path:
        return self.path / "attendees" / name

    def results(self, name: str) -> Path:
        return self.path / "results" / f"{name}.jsonl"

    def runtime(self, name: str) -> Path:
        return self.path / "run" / name

    def save(self) -> None:
        data = asdict(self)
        _write_private(self.path / "room.json", json.dumps(data, indent=1))

    @classmethod
    def load(cls, d) -> "Room":
        data = json.loads((Path(d) / "room.json").read_text())
        data["attendees"] = [Attendee(**a) for a in data["attendees"]]
        return cls(**data)


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` with mode 0600 from the start (never briefly readable)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    tmp.replace(path)


def read_config(path) -> dict:
    """A room file (TOML): ``instructor = "ana"``, ``attendees = ["bob", "carol"]``, optional
    ``[passwords]`` (``bob = "..."``). A file holding passwords must be private (0600)."""
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text())
    except OSError as e:
        raise UsageError(f"workshop config {str(p)!r}: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise UsageError(f"workshop config {str(p)!r} is not TOML: {e}",
                         hint='e.g. instructor = "ana"\\nattendees = ["bob", "carol"]') from None
    unknown = set(data) - {"instructor", "attendees", "passwords"}
    if unknown:
        raise UsageError(f"workshop config {str(p)!r}: unknown key(s) {sorted(unknown)}",
                         hint="accepted: instructor, attendees, passwords")
    if data.get("passwords") and p.stat().st_mode & 0o077:
        raise UsageError(f"workshop config {str(p)!r} holds passwords but other users can read it "
                         f"(mode {p.stat().st_mode & 0o777:o})", hint=f"chmod 600 {p}")
    return data


def plan(attendees=None, names=None, instructor: str = "instructor", prefix_base: str = DEFAULT_PREFIX_BASE,
         net_base: int = DEFAULT_NET_BASE) -> list[Attendee]:
    """The room's accounts: the instructor (index 0, admin) and attendees 1..N, each with
    a prefix and a net of their own. Refuses (UsageError) what would collide or not fit."""
    if names is None:
        if isinstance(attendees, bool) or not isinstance(attendees, int) or attendees < 1:
            raise UsageError(f"--attendees {attendees!r}: give a number of attendees >= 1")
        names = [f"attendee{i}" for i in range(1, attendees + 1)]
    names = list(names)
    if not names or len(names) > MAX_ATTENDEES:
        raise UsageError(f"{len(names)} attendees: one machine takes 1..{MAX_ATTENDEES} "
                         "(each needs two /16 nets of 10.0.0.0/8)",
                         hint="larger rooms: zero-to-jupyterhub on Kubernetes (README, Running a workshop)")
    everyone = [instructor, *names]
    for n in everyone:
        if not isinstance(n, str) or not _USER.match(n):
            raise UsageError(f"account name {n!r}: use lower-case letters, digits, '_', '.', '-' "
                             "(starting with a letter, at most 32)")
    if len(set(everyone)) != len(everyone):
        raise UsageError(f"account names must be unique: {everyone}")
    last = net_base + len(names)
    if net_base < 1 or last > 149:
        raise UsageError(f"--net-base {net_base}: attendees take nets {net_base}..{last} and their "
                         f"router labs {(net_base + 100) % 250 + 1}.. — they must stay within 1..250 "
                         "without overlapping", hint=f"use a net base of 1..{149 - len(names)}")
    if not re.fullmatch(r"[a-z][a-z0-9]{0,5}", prefix_base):
        raise UsageError(f"--prefix-base {prefix_base!r}: 1..6 lower-case letters/digits, starting "
                         "with a letter (interface names take 15 characters)")
    return [Attendee(n, i, f"{prefix_base}{i}-", net_base + i, admin=(i == 0))
            for i, n in enumerate(everyone)]


def seed_passwords(room: Room, given: dict | None = None) -> dict:
    """Every account's password: kept from ``passwords.txt`` (a restart), given in the
    config, or generated; written to ``passwords.txt`` (0600) and seeded into the
    FirstUseAuthenticator's database (bcrypt hashes, 0600)."""
    f = room.path / "passwords.txt"
    old = {}
    if f.exists():
        for line in f.read_text().splitlines():
            if line and not line.startswith("#"):
                name, _, pw = line.partition(" ")
                old[name] = pw
    pws = {}
    for a in room.attendees:
        pws[a.name] = (given or {}).get(a.name) or old.get(a.name) or secrets.token_urlsafe(9)
    _write_private(f, "# xdplab workshop accounts: name password (hand each attendee theirs)\n"
                   + "".join(f"{n} {p}\n" for n, p in pws.items()))
    # JupyterHub's authenticator: requirements-workshop.txt, not a dependency of the library
    from firstuseauthenticator import FirstUseAuthenticator
    auth = FirstUseAuthenticator(dbm_path=str(room.path / "passwords.dbm"), min_password_length=8)
    for n, p in pws.items():
        if len(p) < 8:
            raise UsageError(f"password of {n!r} is {len(p)} characters: the hub takes at least 8")
        auth.reset_password(n, p)
    for p in room.path.glob("passwords.dbm*"):
        os.chmod(p, 0o600)
    return pws


def hub_config_text(room: Room) -> str:
    return ("# written by ./lab workshop: the settings are in xdplab.ui.workshop.configure\n"
            "from xdplab.ui.workshop import configure\n"
            f"configure(c, {str(room.path)!r})\n")


def configure(c, room_dir) -> None:
    """Fill JupyterHub's config ``c`` for the room in ``room_dir`` (jupyterhub_config.py)."""
    room = Room.load(room_dir)
    d = room.path
    py = sys.executable
    c.JupyterHub.ip = room.ip
    c.JupyterHub.port = room.port
    c.JupyterHub.hub_ip = "127.0.0.1"
    c.JupyterHub.hub_port = room.hub_port
    c.JupyterHub.cookie_secret_file = str(d / "jupyterhub_cookie_secret")
    c.JupyterHub.db_url = f"sqlite:///{d / 'jupyterhub.sqlite'}"
    c.JupyterHub.pid_file = str(d / "jupyterhub.pid")
    c.JupyterHub.cleanup_servers = True         # stopping the hub stops every attendee's server
    c.JupyterHub.cleanup_proxy = True
    c.ConfigurableHTTPProxy.command = [str(CHP)]
    c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{room.proxy_api_port}"
    c.ConfigurableHTTPProxy.pid_file = str(d / "jupyterhub-proxy.pid")
    c.ConfigurableHTTPProxy.should_start = True
    c.JupyterHub.authenticator_class = "firstuseauthenticator.FirstUseAuthenticator"
    c.FirstUseAuthenticator.dbm_path = str(d / "passwords.dbm")
    c.FirstUseAuthenticator.create_users = False      # only the room's accounts exist
    c.FirstUseAuthenticator.min_password_length = 8
    c.Authenticator.allowed_users = {a.name for a in room.attendees}
    c.Authenticator.admin_users = {a.name for a in room.attendees if a.admin}
    c.JupyterHub.spawner_class = LabSpawner
    c.LabSpawner.room_dir = str(d)
    c.Spawner.cmd = [str(Path(py).with_name("jupyterhub-singleuser"))]
    c.Spawner.default_url = "/lab/tree/labs/00-welcome.ipynb"
    c.Spawner.start_timeout = 300               # a busy 2-core machine starts 30 servers slowly
    c.Spawner.http_timeout = 300
    c.JupyterHub.services = [{
        "name": SERVICE, "url": f"http://127.0.0.1:{room.service_port}",
        "command": [py, "-m", "xdplab.ui.room", "--room", str(d)],
        "oauth_no_confirm": True, "display": True,
        "environment": {"PYTHONPATH": str(ROOT), "XDPLAB_ROOM": room.id}}]


try:                                # jupyterhub is an optional dependency (the workshop extra)
    from jupyterhub.spawner import SimpleLocalProcessSpawner
    from traitlets import Unicode, default
except ImportError:                 # pragma: no cover - configure() is never called without it
    SimpleLocalProcessSpawner, Unicode = object, None

if Unicode is not None:
    class LabSpawner(SimpleLocalProcessSpawner):
        """SimpleLocalProcessSpawner + an xdplab lab per attendee (see the module doc)."""

        room_dir = Unicode(config=True, help="the workshop's room directory")

        @property
        def room(self) -> Room:
            return Room.load(self.room_dir)

        @default("home_dir")
        def _home_default(self):            # the attendee's workspace
            return str(Room.load(self.room_dir).workdir(self.user.name))

        def get_args(self):
            args = super().get_args()
            home = Path(self.home_dir)
            return [*args, "--allow-root", f"--ServerApp.root_dir={home}",
                    *workspace.jupyter_args(home)]

        def get_env(self):
            env = super().get_env()
            room = self.room
            a = room.attendee(self.user.name)
            home = room.workdir(a.name)
            env.update(attendee_env(room, a))
            env["HOME"] = str(home)
            return env

        async def start(self):
            prepare(self.room, self.room.attendee(self.user.name))
            return await super().start()

        async def stop(self, now=False):
            try:
                await super().stop(now=now)
            finally:
                a = self.room.attendee(self.user.name)
                await asyncio.get_running_loop().run_in_executor(None, take_down, a.prefix)
else:                               # pragma: no cover
    LabSpawner = None


def attendee_env(room: Room, a: Attendee) -> dict:
    """The environment of an attendee's server, kernels and terminals (nothing secret)."""
    home = room.workdir(a.name)
    return {"XDPLAB_PREFIX": a.prefix, "XDPLAB_NET": str(a.net), "XDPLAB_OWNER": a.name,
            "XDPLAB_WORKDIR": str(home), "XDPLAB_ROOM": room.id,
            "XDPLAB_RESULTS": str(room.results(a.name)),
            "IPYTHONDIR": str(home / ".ipython"),
            "JUPYTER_RUNTIME_DIR": str(room.runtime(a.name)),
            "PYTHONPATH": str(ROOT)}


STARTUP = """\
# written by ./lab workshop: check cells and graded exercises are recorded for the instructor
try:
    import xdplab.ui.room
    xdplab.ui.room.install(get_ipython())
except Exception as e:          # the lab works without the instructor view
    print("xdplab workshop: results are not recorded:", e)
"""


def prepare(room: Room, a: Attendee) -> None:
    """The attendee's workspace: working copies (never overwritten), released solutions,
    the IPython startup file, a private runtime dir."""
    home = room.workdir(a.name)
    workspace.working_copies(dest=home)
    for lab in released(room):
        release_to(room, lab, [a])
    startup = home / ".ipython" / "profile_default" / "startup"
    startup.mkdir(parents=True, exist_ok=True)
    (startup / "00-xdplab-room.py").write_text(STARTUP)
    rt = room.runtime(a.name)
    rt.mkdir(parents=True, exist_ok=True)
    os.chmod(rt, 0o700)
    room.results(a.name).parent.mkdir(parents=True, exist_ok=True)


def released(room: Room) -> list[str]:
    try:
        return json.loads((room.path / "released.json").read_text())
    except (OSError, ValueError):
        return []


def release_to(room: Room, lab_dir: str, attendees) -> None:
    src = SOLUTIONS / lab_dir
    for a in attendees:
        dst = room.workdir(a.name) / "solutions" / lab_dir
        if not dst.exists():
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copytree(src, dst)


def release(room: Room, lab: str) -> str:
    """Give everyone (also attendees who start later) the reference solutions of ``lab``."""
    stem = workspace.find_lab(lab).stem
    if not (SOLUTIONS / stem).is_dir():
        have = ", ".join(sorted(p.name for p in SOLUTIONS.iterdir() if p.is_dir()))
        raise UsageError(f"lab {stem} has no reference solutions to release", hint=f"labs with solutions: {have}")
    rel = released(room)
    if stem not in rel:
        _write_private(room.path / "released.json", json.dumps(rel + [stem]))
    release_to(room, stem, [a for a in room.attendees if room.workdir(a.name).exists()])
    return stem


def take_down(prefix: str) -> list[str]:
    """Remove an attendee's lab hosts (every topology under ``prefix``)."""
    removed = []
    try:
        removed += labstate.down(prefix)
    except XDPLabError:
        pass
    left = topology.remove_all(prefix)
    return removed + left["links"] + [f"netns {n}" for n in left["netns"]]


def room_processes(room_id: str) -> list[int]:
    """Processes (besides this one) started for the room: their environment names it."""
    me, out = os.getpid(), []
    needle = f"XDPLAB_ROOM={room_id}".encode() + b"\0"
    for p in os.listdir("/proc"):
        if not p.isdigit() or int(p) == me:
            continue
        try:
            with open(f"/proc/{p}/environ", "rb") as f:
                if needle in f.read() + b"\0":
                    out.append(int(p))
        except OSError:
            pass
    return out


def sweep(room: Room) -> list[str]:
    """After the hub: end what the room started and remove every attendee's lab."""
    left = []
    pids = room_processes(room.id)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for p in pids:
            try:
                os.kill(p, sig)
            except ProcessLookupError:
                pass
        end = time.monotonic() + 5
        while time.monotonic() < end and (pids := [p for p in pids if Path(f"/proc/{p}").exists()
                                                   and _state(p) != "Z"]):
            time.sleep(0.1)
        if not pids:
            break
    for a in room.attendees:
        left += take_down(a.prefix)
    remove_dead()
    return left


def _state(pid: int) -> str:
    try:
        s = Path(f"/proc/{pid}/stat").read_text()
        return s[s.rindex(")") + 2]
    except (OSError, ValueError):
        return "Z"


def setup_room(d: Path, attendees=None, config=None, ip="127.0.0.1", port=8000,
               prefix_base=DEFAULT_PREFIX_BASE, net_base=DEFAULT_NET_BASE) -> tuple[Room, dict]:
    cfg = read_config(config) if config else {}
    people = plan(attendees if not cfg.get("attendees") else None, cfg.get("attendees"),
                  cfg.get("instructor", "instructor"), prefix_base, net_base)
    if not CHP.exists():
        raise XDPLabError(f"configurable-http-proxy is not installed at {CHP}",
                          hint="XDPLAB_WORKSHOP=1 scripts/setup.sh installs it (./lab workshop does)")
    d = Path(d)
    try:
        pid = int((d / "jupyterhub.pid").read_text())
        if b"jupyterhub" in Path(f"/proc/{pid}/cmdline").read_bytes():
            raise XDPLabError(f"a hub already serves the room {d} (pid {pid})",
                              hint="stop it first (Ctrl-C where it runs, or kill -TERM its ./lab workshop), "
                                   "or give another --room")
    except (OSError, ValueError):
        pass
    d.mkdir(parents=True, exist_ok=True)
    os.chmod(d, 0o700)
    for sub in ("attendees", "results", "run"):
        (d / sub).mkdir(exist_ok=True)
    room = Room(str(d), people, people[0].name, ip, port, _free_port(), _free_port(), _free_port(),
                id=secrets.token_hex(6))
    room.save()
    pws = seed_passwords(room, cfg.get("passwords"))
    (d / "jupyterhub_config.py").write_text(hub_config_text(room))
    return room, pws


def serve(room: Room, ready=None) -> int:
    """Run JupyterHub for ``room`` until it ends (SIGTERM/SIGINT stop it), then sweep."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("JUPYTERHUB_", "CONFIGPROXY_", "JPY_")) and k not in ("XDPLAB_OWNER",)}
    env["XDPLAB_ROOM"] = room.id
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    log = open(room.path / "jupyterhub.log", "a")
    os.chmod(room.path / "jupyterhub.log", 0o600)
    hub = subprocess.Popen([str(Path(sys.executable).with_name("jupyterhub")),
                            "-f", str(room.path / "jupyterhub_config.py")],
                           cwd=room.path, env=env, stdout=log, stderr=subprocess.STDOUT,
                           start_new_session=True)

    def forward(sig, _frame):
        if hub.poll() is None:
            hub.send_signal(signal.SIGTERM)
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, forward)
    try:
        rc = hub.wait()
    finally:
        if hub.poll() is None:
            hub.kill()
        left = sweep(room)
        print(f"xdplab workshop: hub stopped (exit {hub.returncode}); removed the attendees' labs"
              + (f": {', '.join(left)}" if left else ""), flush=True)
    return rc


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="./lab workshop", description="Serve a workshop room through JupyterHub")
    p.add_argument("--attendees", type=int, help="number of attendees (accounts attendee1..N)")
    p.add_argument("--config", help="TOML room file: instructor, attendees (names), [passwords]")
    p.add_argument("--ip", default="127.0.0.1", help="address the hub listens on (default: loopback only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--room", default=str(DEFAULT_ROOM), help=f"the room's private directory (default {DEFAULT_ROOM})")
    p.add_argument("--prefix-base", default=DEFAULT_PREFIX_BASE, help="attendee i's hosts are <base><i>-h1 ...")
    p.add_argument("--net-base", type=int, default=DEFAULT_NET_BASE, help="attendee i's hosts are on 10.<base+i>.x.x")
    args = p.parse_args(argv)
    if args.attendees is None and not args.config:
        p.error("give --attendees N or --config FILE")
    try:
        room, pws = setup_room(Path(args.room), args.attendees, args.config, args.ip, args.port,
                               args.prefix_base, args.net_base)
    except XDPLabError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    workspace.install_kernelspec()
    host = args.ip if args.ip not in ("0.0.0.0", "::", "") else socket.gethostname()
    print(f"\n  xdplab workshop for {len(room.attendees) - 1} attendees: http://{host}:{args.port}/\n"
          f"  accounts and passwords (0600): {room.path / 'passwords.txt'}\n"
          f"  instructor ({room.instructor}): http://{host}:{args.port}/services/{SERVICE}/\n"
          f"  hub log: {room.path / 'jupyterhub.log'}   (Ctrl-C stops the hub and removes every lab)\n",
          flush=True)
    return serve(room)


if __name__ == "__main__":
    sys.exit(main())
