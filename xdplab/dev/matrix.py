"""Kernel matrix: the smoke suite (``xdplab.dev.smoke``) on Debian kernels under qemu, and on the host.

    xdplab matrix                       # 6.1, 6.12 and the host kernel
    xdplab matrix --kernels 6.12 host   # a subset
    xdplab matrix --json                # machine-readable results

Each guest kernel is a Debian package (``apt-get download linux-image-<abi>-amd64-unsigned``
plus its headers and kbuild), extracted with ``dpkg-deb -x`` into the cache
(``/var/cache/xdplab/kernels/<release>/root``; kept between runs). qemu boots it with a
small initramfs of our own (static busybox + the 9p/virtio_net modules of that kernel)
which mounts THIS machine's root filesystem read-only over 9p (virtio-9p), puts tmpfs on
the writable places, points ``/lib/modules/<release>/{build,source}`` at the extracted
headers (BCC compiles against them) and runs ``python -m xdplab.dev.smoke`` from this
checkout. The guest's lab NIC is a virtio_net device with 2 x vCPUs queue pairs, backed
by a multi-queue tap in a private network namespace (the tap end is the smoke suite's
traffic peer), or by qemu's user-mode network when a tap cannot be made. The guest
prints one JSON line per check on the serial console; we parse those.

qemu runs with TCG (software CPU) unless /dev/kvm really runs a guest (probed once).
"""
from __future__ import annotations

import argparse
import gzip
import io
import json
import lzma
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from .. import paths
from .. import kernel
import socket

CACHE = Path(os.environ.get("XDPLAB_KERNEL_CACHE", "/var/cache/xdplab/kernels"))
REPO = paths.PACKAGE.parent      # the checkout (or site-packages) the guests mount
# series -> regex on the unsigned image package name; group 1 is the ABI ("6.1.0-56")
SERIES = {
    "6.1": re.compile(r"^linux-image-(6\.1\.0-\d+)-amd64-unsigned$"),
    "6.12": re.compile(r"^linux-image-(6\.12\.\d+\+deb\d+)-amd64-unsigned$"),
}
# modules the initramfs loads (with their dependencies): host root over 9p, the lab NIC,
# veth for lab topologies inside the guest
INITRD_MODULES = ("virtio_pci", "9pnet_virtio", "9p", "virtio_net", "veth")
RESULT_TAG = "XDPLAB-SMOKE "      # the smoke suite's JSON lines start with this
END_TAG = "XDPLAB-SMOKE-END"      # ... and its last line is this
GUEST_NET = ("10.231.0.1", "10.231.0.2")          # tap (peer), guest
USER_NET = ("10.0.2.2", "10.0.2.15")              # qemu user-mode gateway, guest
# the whole guest run (boot + smoke suite); TCG on a busy 2-core machine took > 900 s once the
# issue 16 checks joined (BCC compiles alone took 180-210 s per guest)
BOOT_TIMEOUT = float(os.environ.get("XDPLAB_MATRIX_TIMEOUT", 1800))


class MatrixError(Exception):
    pass


def _run(cmd, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


# --- progress ------------------------------------------------------------------------

class Progress:
    """One clear line per event: ``[  12.3s] 6.12  booting (tcg, 2 vCPU, 4 queues)``."""

    def __init__(self, out=None, quiet: bool = False):
        self.out = out or sys.stderr
        self.quiet = quiet
        self.t0 = time.monotonic()
        self._lock = threading.Lock()

    def __call__(self, kernel: str, msg: str) -> None:
        if self.quiet:
            return
        with self._lock:
            print(f"[{time.monotonic() - self.t0:6.1f}s] {kernel:<5} {msg}", file=self.out, flush=True)


# --- kernels: resolve, download, extract ---------------------------------------------

def _natural(s: str):
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", s)]


def resolve(series: str) -> str:
    """The newest ABI of ``series`` this machine's apt sources serve (``6.12.107+deb12``);
    falls back to the newest one already in the cache (offline runs)."""
    rx = SERIES[series]
    names = _run(["apt-cache", "pkgnames", f"linux-image-{series}"]).stdout.split()
    abis = sorted({m[1] for n in names if (m := rx.match(n))}, key=_natural)
    if abis:
        return abis[-1]
    cached = sorted((p.name.removesuffix("-amd64") for p in CACHE.glob(f"{series}*-amd64")
                     if (p / ".ready").exists() and rx.match(f"linux-image-{p.name}-unsigned")),
                    key=_natural)
    if cached:
        return cached[-1]
    raise MatrixError(f"no linux-image-{series}*-amd64 in the apt sources "
                      f"(check `apt-cache search linux-image-{series}`; 6.12 is in "
                      "bookworm-security / bookworm-backports)")


@dataclass
class Kernel:
    series: str
    abi: str

    @property
    def release(self) -> str:             # `uname -r` of the guest
        return f"{self.abi}-amd64"

    @property
    def dir(self) -> Path:
        return CACHE / self.release

    @property
    def root(self) -> Path:               # the extracted packages
        return self.dir / "root"

    @property
    def vmlinuz(self) -> Path:
        return self.root / "boot" / f"vmlinuz-{self.release}"

    @property
    def modules(self) -> Path:
        return self.root / "lib" / "modules" / self.release

    @property
    def headers(self) -> tuple[Path, Path]:   # build, source
        src = self.root / "usr" / "src"
        return src / f"linux-headers-{self.release}", src / f"linux-headers-{self.abi}-common"

    def bcc_headers(self, progress=None) -> tuple[Path, Path]:
        """Headers BCC compiles against in the guest. Debian 12's BCC (0.26) cannot parse
        newer kernels' include/linux/bpf.h (``struct bpf_wq``, 6.10+), so every kernel
        gets 6.1 headers, as on the host: XDP programs built by BCC do not depend on the
        kernel's internal structs. 6.1 uses its own; others the host's 6.1 headers
        (scripts/setup.sh) or those of the cached 6.1 kernel."""
        if self.series == "6.1":
            return self.headers
        host = Path(f"/lib/modules/{os.uname().release}")
        b, s = (host / "build").resolve(), (host / "source").resolve()
        if b.name.startswith("linux-headers-6.1.") and b.is_dir() and s.is_dir():
            return b, s
        return Kernel("6.1", resolve("6.1")).fetch(progress or (lambda k, m: None)).headers

    @property
    def ready(self) -> bool:
        return (self.dir / ".ready").exists()

    def packages(self) -> list[str]:
        """image + headers + the headers' -common and kbuild dependencies."""
        hdr = f"linux-headers-{self.release}"
        deps = _run(["apt-cache", "depends", hdr]).stdout
        extra = re.findall(r"Depends: (linux-(?:headers-\S+-common|kbuild-\S+))", deps)
        if not extra:
            raise MatrixError(f"apt does not know {hdr} (apt-get update?)")
        return [f"linux-image-{self.release}-unsigned", hdr, *dict.fromkeys(extra)]

    def fetch(self, progress) -> "Kernel":
        """Download and extract (once; cached)."""
        if self.ready:
            return self
        debs = CACHE / "debs"
        debs.mkdir(parents=True, exist_ok=True)
        pkgs = self.packages()
        progress(self.series, f"apt-get download {' '.join(pkgs)}")
        r = _run(["apt-get", "download", *pkgs], cwd=debs)
        if r.returncode:
            raise MatrixError(f"apt-get download failed: {r.stderr.strip()[-300:]}")
        tmp = self.dir.with_name(self.dir.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        (tmp / "root").mkdir(parents=True)
        for p in pkgs:
            deb = max(debs.glob(f"{p.replace('+', '?')}_*.deb"), key=lambda d: d.stat().st_mtime)
            progress(self.series, f"extracting {deb.name}")
            subprocess.run(["dpkg-deb", "-x", str(deb), str(tmp / "root")], check=True)
        shutil.rmtree(self.dir, ignore_errors=True)
        tmp.rename(self.dir)
        (self.dir / ".ready").write_text(" ".join(pkgs) + "\n")
        return self


# --- initramfs ---------------------------------------------------------------------------

def _ko_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    if path.suffix == ".xz":
        return lzma.decompress(data)
    if path.suffix == ".zst":
        raise MatrixError(f"{path.name}: zstd-compressed modules are not supported yet")
    return data


def _module_closure(kernel: Kernel, wanted) -> list[tuple[str, bytes]]:
    """(name, .ko bytes) for ``wanted`` and everything they depend on (modinfo
    ``depends=``), dependencies first; built-in modules are skipped."""
    index = {}
    for p in (kernel.modules / "kernel").rglob("*.ko*"):
        index[p.name.split(".ko")[0].replace("-", "_")] = p
    builtin = {Path(l).name.split(".ko")[0].replace("-", "_")
               for l in (kernel.modules / "modules.builtin").read_text().split()}
    order, seen = [], set()

    def visit(name):
        name = name.replace("-", "_")
        if name in seen or name in builtin:
            return
        seen.add(name)
        if name not in index:
            raise MatrixError(f"{kernel.release}: module {name} not found")
        data = _ko_bytes(index[name])
        m = re.search(rb"\x00depends=([^\x00]*)\x00", data)
        for dep in (m[1].decode().split(",") if m and m[1] else []):
            visit(dep)
        order.append((name, data))

    for w in wanted:
        visit(w)
    return order


def cpio(entries) -> bytes:
    """A newc cpio archive of (path, mode, data|symlink-target) entries."""
    out = io.BytesIO()
    for ino, (name, mode, data) in enumerate([*entries, ("TRAILER!!!", 0, b"")], 1):
        data = data.encode() if isinstance(data, str) else data
        nb = name.encode() + b"\0"
        hdr = ("070701" + "".join(f"{v:08x}" for v in (
            ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(nb), 0))).encode()
        out.write(hdr + nb + b"\0" * (-(110 + len(nb)) % 4) + data + b"\0" * (-len(data) % 4))
    return out.getvalue()


INIT = r"""#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
say() { echo "xdplab-init: $*"; }
say "loading modules"
for m in /mods/*.ko; do insmod "$m" || say "insmod $m failed"; done
run=$(sed -n 's/.*xdplab\.run=\([^ ]*\).*/\1/p' /proc/cmdline)
say "mounting the host root (9p, read-only)"
mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=512000 hostroot /newroot || {
    say "cannot mount the host root"; poweroff -f; }
R=/newroot
mount -t proc proc $R/proc; mount -t sysfs sys $R/sys; mount -t devtmpfs dev $R/dev
mkdir -p $R/dev/pts $R/dev/shm
mount -t devpts devpts $R/dev/pts; mount -t tmpfs shm $R/dev/shm
for d in /tmp /run /root /var/tmp /var/log /lib/modules; do mount -t tmpfs -o mode=1777 tmp $R$d; done
# the checkout may live under one of those (CI clones into /tmp): it comes as a share of its own
mkdir -p $R@REPO@ 2>/dev/null
mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=512000 xdplabsrc $R@REPO@ || {
    say "cannot mount the checkout @REPO@"; poweroff -f; }
mount -t bpf bpf $R/sys/fs/bpf
mount -t tracefs tracefs $R/sys/kernel/tracing
mount -t debugfs debugfs $R/sys/kernel/debug
mkdir -p $R/lib/modules/@RELEASE@ $R/run/netns
ln -s @BUILD@ $R/lib/modules/@RELEASE@/build
ln -s @SOURCE@ $R/lib/modules/@RELEASE@/source
ln -s @MODULES@/kernel $R/lib/modules/@RELEASE@/kernel
say "running $run"
chroot $R /bin/sh "$run"
say "exit $?"
poweroff -f
"""


def static_busybox() -> Path:
    """A statically linked busybox: Debian's busybox-static (scripts/setup.sh installs it),
    else downloaded and extracted into the cache."""
    for p in (Path("/bin/busybox"), CACHE / "busybox" / "bin" / "busybox"):
        if p.exists() and b"ld-linux" not in p.read_bytes()[:4096]:   # no PT_INTERP: static
            return p
    debs = CACHE / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    r = _run(["apt-get", "download", "busybox-static"], cwd=debs)
    if r.returncode:
        raise MatrixError(f"apt-get download busybox-static failed: {r.stderr.strip()[-300:]}")
    deb = max(debs.glob("busybox-static_*.deb"), key=lambda d: d.stat().st_mtime)
    subprocess.run(["dpkg-deb", "-x", str(deb), str(CACHE / "busybox")], check=True)
    return CACHE / "busybox" / "bin" / "busybox"


def initramfs(kernel: Kernel, progress=None) -> Path:
    """Build ``<cache>/<release>/initramfs.cpio.gz`` (kept while its init is the same)."""
    build, source = kernel.bcc_headers(progress)
    init = (INIT.replace("@RELEASE@", kernel.release).replace("@REPO@", str(REPO)).replace("@BUILD@", str(build))
            .replace("@SOURCE@", str(source)).replace("@MODULES@", str(kernel.modules)))
    path = kernel.dir / "initramfs.cpio.gz"
    stamp, key = kernel.dir / "initramfs.key", f"{INITRD_MODULES}\n{init}"
    if path.exists() and stamp.exists() and stamp.read_text() == key:
        return path
    entries = [(d, 0o40755, b"") for d in ("bin", "dev", "proc", "sys", "newroot", "mods")]
    entries += [("init", 0o100755, init), ("bin/busybox", 0o100755, static_busybox().read_bytes())]
    entries += [(f"mods/{i:02d}-{name}.ko", 0o100644, data)
                for i, (name, data) in enumerate(_module_closure(kernel, INITRD_MODULES))]
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(gzip.compress(cpio(entries), 1))
    tmp.rename(path)
    stamp.write_text(key)
    return path


# --- qemu -------------------------------------------------------------------------------

_kvm_ok: bool | None = None


def kvm_works(kernel: Kernel) -> bool:
    """/dev/kvm can exist and still not run guests (nested virtualisation off): boot the
    kernel with KVM and wait a few seconds for its first console line."""
    global _kvm_ok
    stamp = CACHE / "kvm-probe"
    boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    if _kvm_ok is None and stamp.exists() and stamp.read_text().split()[:1] == [boot_id]:
        _kvm_ok = stamp.read_text().split()[1] == "yes"
    if _kvm_ok is None:
        _kvm_ok = False
        if os.access("/dev/kvm", os.R_OK | os.W_OK):
            try:
                r = subprocess.run(
                    ["qemu-system-x86_64", "-accel", "kvm", "-cpu", "host", "-m", "256", "-display",
                     "none", "-nodefaults", "-serial", "stdio", "-no-reboot", "-kernel",
                     str(kernel.vmlinuz), "-append", "console=ttyS0 panic=-1 earlyprintk=ttyS0"],
                    capture_output=True, text=True, timeout=6)
                out = r.stdout
            except subprocess.TimeoutExpired as e:
                out = (e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
            _kvm_ok = "Linux version" in out
        stamp.write_text(f"{boot_id} {'yes' if _kvm_ok else 'no'}\n")
    return _kvm_ok


class GuestNet:
    """A private network namespace with a multi-queue tap: the guest's peer."""

    def __init__(self, tag: str, queues: int):
        self.ns = f"xdplab-mx-{os.getpid()}-{tag.replace('.', '')}"
        self.tap = "mxtap0"
        self.queues = queues
        self.peer, self.guest = GUEST_NET

    def __enter__(self):
        cmds = [["ip", "netns", "add", self.ns],
                ["ip", "-n", self.ns, "tuntap", "add", "dev", self.tap, "mode", "tap", "multi_queue"],
                ["ip", "-n", self.ns, "addr", "add", f"{self.peer}/24", "dev", self.tap],
                ["ip", "-n", self.ns, "link", "set", self.tap, "up"],
                ["ip", "-n", self.ns, "link", "set", "lo", "up"]]
        for c in cmds:
            r = _run(c)
            if r.returncode:
                self.__exit__()
                raise MatrixError(f"{' '.join(c)}: {r.stderr.strip()}")
        return self

    def __exit__(self, *exc):
        _run(["ip", "netns", "del", self.ns])

    def feed_udp(self, port: int, stop: threading.Event) -> threading.Thread:
        """Send a small UDP datagram to the guest every 50 ms (AF_XDP check's traffic)."""

        def loop():
            s = kernel.netns_socket(self.ns)
            with s:
                while not stop.wait(0.05):
                    try:
                        s.sendto(b"xdplab-smoke", (self.guest, port))
                    except OSError:
                        pass            # no ARP answer yet (guest still booting)
        t = threading.Thread(target=loop, daemon=True)
        t.start()
        return t

    def qemu_args(self, mac: str) -> tuple[list[str], list[str]]:
        """(prefix to run qemu inside the netns, netdev/device args)"""
        q = self.queues
        return (["ip", "netns", "exec", self.ns],
                ["-netdev", f"tap,id=lab,ifname={self.tap},script=no,downscript=no,vhost=off,queues={q}",
                 "-device", f"virtio-net-pci,netdev=lab,mac={mac},mq=on,vectors={2 * q + 2}"])


@dataclass
class GuestRun:
    kernel: str
    release: str = ""
    results: dict = field(default_factory=dict)   # check -> {"status", "detail"}
    console: list = field(default_factory=list)
    boot_s: float = 0.0
    total_s: float = 0.0
    accel: str = ""
    net: str = ""
    error: str = ""


def run_guest(kernel: Kernel, smoke_args=(), *, vcpus: int = 2, memory: int = 2048,
              progress=None, timeout: float = BOOT_TIMEOUT, command: str | None = None) -> GuestRun:
    """Boot ``kernel`` under qemu and run the smoke suite inside (or the shell
    ``command``, from this checkout's directory, with the lab NIC up as eth0)."""
    progress = progress or (lambda k, m: None)
    res = GuestRun(kernel.series, kernel.release)
    t0 = time.monotonic()
    initrd = initramfs(kernel, progress)
    accel = "kvm" if kvm_works(kernel) else "tcg"
    res.accel = accel
    queues = 2 * vcpus
    (CACHE / "run").mkdir(parents=True, exist_ok=True)   # not /tmp: the guest mounts tmpfs there
    rundir = Path(tempfile.mkdtemp(prefix="guest-", dir=CACHE / "run"))
    net, stop_feed = None, threading.Event()
    try:
        try:
            net = GuestNet(kernel.series, queues).__enter__()
            prefix, netargs = net.qemu_args("52:54:00:58:4c:02")
            peer, addr, res.net = net.peer, net.guest, f"tap, {queues} queues"
            net.feed_udp(4242, stop_feed)
            smoke_args = [*smoke_args, "--udp-feed"]
        except MatrixError as e:
            progress(kernel.series, f"no tap ({e}); qemu user-mode network, 1 queue")
            prefix, (peer, addr) = [], USER_NET
            netargs = ["-netdev", "user,id=lab", "-device", "virtio-net-pci,netdev=lab,mac=52:54:00:58:4c:02"]
            res.net = "user-mode, 1 queue"
        script = rundir / "stage2.sh"
        args = " ".join(f"'{a}'" for a in ("--dev", "eth0", "--peer", peer, *smoke_args))
        script.write_text(
            "export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root\n"
            "ip link set lo up\n"
            f"ip link set eth0 up && ip addr add {addr}/24 dev eth0\n"
            f"ethtool -L eth0 combined {vcpus} 2>/dev/null\n"
            f"cd {REPO} && export PYTHONDONTWRITEBYTECODE=1 PYTHONPATH={REPO}\n"
            + (command or f"{sys.executable} -m xdplab.dev.smoke {args}") + "\n")
        script.chmod(0o755)
        cmd = [*prefix, "qemu-system-x86_64", "-nodefaults", "-no-reboot", "-display", "none",
               "-serial", "stdio", "-m", str(memory), "-smp", str(vcpus),
               *(["-accel", "kvm", "-cpu", "host"] if accel == "kvm" else
                 ["-accel", "tcg,thread=multi", "-cpu", "max"]),
               "-kernel", str(kernel.vmlinuz), "-initrd", str(initrd),
               "-append", f"console=ttyS0 loglevel=3 panic=-1 net.ifnames=0 xdplab.run={script}",
               "-virtfs", "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap",
               "-virtfs", f"local,path={REPO},mount_tag=xdplabsrc,security_model=none,readonly=on,multidevs=remap",
               *netargs]
        progress(kernel.series, f"booting {kernel.release} ({accel}, {vcpus} vCPU, virtio_net {res.net})")
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        timed_out = threading.Event()
        timer = threading.Timer(timeout, lambda: (timed_out.set(), proc.kill()))
        timer.start()
        ended = False
        try:
            for raw in proc.stdout:
                line = raw.decode(errors="replace").rstrip("\r\n")
                res.console.append(line)
                if line.startswith("xdplab-init: running") and not res.boot_s:
                    res.boot_s = time.monotonic() - t0
                    progress(kernel.series, f"booted in {res.boot_s:.0f} s; "
                             + ("running the command" if command else "smoke suite running"))
                ended = ended or END_TAG in line
                i = line.find(RESULT_TAG)
                if i >= 0:
                    try:
                        r = json.loads(line[i + len(RESULT_TAG):])
                    except ValueError:
                        continue
                    res.results[r["check"]] = r
                    progress(kernel.series, f"{r['check']}: {r['status']}"
                             + (f" ({r['detail']})" if r.get("detail") else ""))
            proc.wait()
        finally:
            timer.cancel()
        if timed_out.is_set():
            res.error = f"timeout after {timeout:.0f} s"
        elif proc.returncode:
            res.error = f"qemu exited {proc.returncode}"
        elif command is None and not ended:
            res.error = "the smoke suite stopped early (console below)"
    finally:
        stop_feed.set()
        if net:
            net.__exit__()
        shutil.rmtree(rundir, ignore_errors=True)
    res.total_s = time.monotonic() - t0
    return res


def run_host(smoke_args=(), progress=None) -> GuestRun:
    """The smoke suite on this machine's kernel (veth lab hosts, no virtio_net)."""
    progress = progress or (lambda k, m: None)
    res = GuestRun("host", os.uname().release, accel="native", net="veth")
    t0 = time.monotonic()
    progress("host", f"smoke suite on {res.release}")
    proc = subprocess.Popen([sys.executable, "-m", "xdplab.dev.smoke", *smoke_args], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    ended = False
    for line in proc.stdout:
        res.console.append(line.rstrip("\n"))
        ended = ended or line.startswith(END_TAG)
        if line.startswith(RESULT_TAG):
            r = json.loads(line[len(RESULT_TAG):])
            res.results[r["check"]] = r
            progress("host", f"{r['check']}: {r['status']}" + (f" ({r['detail']})" if r.get("detail") else ""))
    proc.wait()
    if not ended:
        res.error = f"the smoke suite stopped early (exit {proc.returncode})"
    res.total_s = time.monotonic() - t0
    return res


# --- the matrix ---------------------------------------------------------------------------

def run_matrix(kernels=("6.1", "6.12", "host"), smoke_args=(), progress=None,
               parallel: bool = True, command: str | None = None) -> list[GuestRun]:
    """Fetch, boot and run; guests run in parallel threads (qemu is the work)."""
    progress = progress or Progress()
    runs: dict[str, GuestRun] = {}

    def one(series):
        try:
            if series == "host":
                runs[series] = run_host(smoke_args, progress)
                return
            k = Kernel(series, resolve(series)).fetch(progress)
            runs[series] = run_guest(k, smoke_args, progress=progress, command=command,
                                     vcpus=1 if parallel and len(kernels) > 2 else 2)
        except Exception as e:                      # one broken kernel must not hide the others
            runs[series] = GuestRun(series, error=f"{type(e).__name__}: {e}")
        progress(series, "done" + (f": ERROR {runs[series].error}" if runs[series].error else ""))

    guests = [k for k in kernels if k != "host"]
    if "host" in kernels:          # host first, alone: it is quick and shares no CPU with guests
        one("host")
    threads = [threading.Thread(target=one, args=(k,)) for k in guests]
    for t in threads:
        t.start()
        if not parallel:
            t.join()
    for t in threads:
        t.join()
    return [runs[k] for k in kernels]


def table(runs: list[GuestRun]) -> str:
    """kernel x check: pass / skip (reason) / FAIL (reason)."""
    checks = list(dict.fromkeys(c for r in runs for c in r.results))
    head = ["check"] + [f"{r.kernel} ({r.release})" if r.release and r.kernel != r.release else r.kernel
                        for r in runs]
    rows = []
    for c in checks:
        row = [c]
        for r in runs:
            x = r.results.get(c)
            if x is None:
                row.append("-" if not r.error else "not run")
            else:
                s = {"pass": "pass", "skip": "skip", "fail": "FAIL"}[x["status"]]
                row.append(s + (f": {x['detail']}" if x["status"] != "pass" and x.get("detail") else ""))
        rows.append(row)
    rows.append(["(run)"] + [(f"ERROR {r.error}" if r.error else "ok")
                             + f", {r.total_s:.0f} s" + (f", {r.accel}" if r.accel else "") for r in runs])
    width = [min(max(len(x) for x in col), 60) for col in zip(head, *rows)]
    fmt = lambda row: " | ".join((x if len(x) <= w else x[:w - 1] + "…").ljust(w) for x, w in zip(row, width))
    return "\n".join([fmt(head), "-+-".join("-" * w for w in width), *map(fmt, rows)])


def failed(runs: list[GuestRun]) -> bool:
    return any(r.error or any(x["status"] == "fail" for x in r.results.values()) for r in runs)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="xdplab matrix", description=__doc__.split("\n\n")[0])
    p.add_argument("--kernels", nargs="+", default=["6.1", "6.12", "host"],
                   choices=[*SERIES, "host"], help="kernels to run (default: all)")
    p.add_argument("--serial", action="store_true", help="one guest at a time")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.add_argument("--exec", dest="command", metavar="CMD",
                   help="run the shell command CMD in each guest (cwd: this checkout; the virtio_net "
                        "lab NIC is eth0) instead of the smoke suite, and print its output")
    p.add_argument("--sabotage", choices=["drop"], help=argparse.SUPPRESS)   # tests: a wrong program
    a = p.parse_args(argv)
    if a.command and "host" in a.kernels:
        a.kernels = [k for k in a.kernels if k != "host"] or p.error("--exec runs in guests only")
    if os.geteuid() != 0:
        print("xdplab matrix needs root (netns, tap, BPF)", file=sys.stderr)
        return 2
    smoke_args = ["--sabotage", a.sabotage] if a.sabotage else []
    t0 = time.monotonic()
    runs = run_matrix(a.kernels, smoke_args, Progress(quiet=a.quiet), parallel=not a.serial,
                      command=a.command)
    wall = time.monotonic() - t0
    if a.command:
        for r in runs:
            start = next((i for i, l in enumerate(r.console) if l.startswith("xdplab-init: running")), -1)
            print(f"--- {r.kernel} ({r.release}) ---", *r.console[start + 1:], sep="\n")
        return 1 if any(r.error for r in runs) else 0
    if a.json:
        print(json.dumps({"wall_s": round(wall, 1), "runs": [
            {k: v for k, v in r.__dict__.items() if k != "console"} for r in runs]}, indent=1))
    else:
        print(table(runs))
        print(f"\nmatrix wall time {wall:.0f} s")
        for r in runs:
            if r.error:
                print(f"\n--- {r.kernel}: last console lines ---\n" + "\n".join(r.console[-25:]))
    return 1 if failed(runs) else 0


if __name__ == "__main__":
    sys.exit(main())
