"""xdplab bench: a performance lab and a regression harness for XDP (issue 15).

    from xdplab import bench
    res = bench.run(short=True)          # paths (live frames), per-program cost, CPU cost
    res.table()                          # medians with min-max, per path
    res.chart()                          # bokeh: ours beside the paper's (another machine, another NIC)
    res.save("baseline.json")
    bench.compare(bench.load("baseline.json"), res)     # flags what slowed beyond the noise

From the shell: ``xdplab bench [--short] [--json OUT] [--html OUT] [--compare BASELINE]``.

**The link.** Two network namespaces of our own (``xb<pid>-g``, ``xb<pid>-r``) joined by
a veth pair ``g0``-``r0`` with one queue per CPU, plus ``r1``-``s1`` for redirects; all
of it removed at the end. Frames (64 B on the wire: 60 B + FCS, UDP to port 9, source
port varied so every frame is its own flow) come from xdplab's live-frames generator
(BPF_PROG_RUN + BPF_F_TEST_XDP_LIVE_FRAMES) running on ``g0``: its XDP_TX hands them to
veth's ``ndo_xdp_xmit``, which queues them on ``r0``'s ring for the CPU that sent them and
schedules ``r0``'s NAPI **on that same CPU**. So each receive CPU also runs its own
generator: the rates below are what one CPU does when it both makes and takes the frames
(the generator's own share is measured apart: ``gen only`` = frames into an XDP_DROP peer
that drops at once is the cheapest receiver; see ``paths``).

**Noise.** One warm-up round, then ``rounds`` rounds in which every case runs once
(interleaved: drift hits all cases alike); each case reports its median with min-max and
the MAD. The load average is recorded before and after; the CPUs used are stated.

**Regression.** ``compare`` turns each figure into a cost (ns/packet: ``1e9/pps`` for
rates) and flags a case whose median cost rose by more than ``max(floor, z * SE)``, where
SE combines both runs' standard errors of the median (1.2533 * 1.4826 * MAD / median /
sqrt(n)). Fewer than 3 repetitions on either side: reported, never flagged.
"""
from __future__ import annotations

import json
import math
import os
import re
import statistics
import struct
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from .. import paths
from ..errors import UsageError, XDPLabError
from ..programs import program
from ..net import traffic
from .. import kernel
from ..errors import AttachError
from ..net.traffic import Generator
from .drops import DropDetector
from ..net import redirect

BPF = paths.LAB_BPF or paths.PACKAGE_BPF     # the checkout's bpf/ (solutions, programs labs provide)

#: CoNEXT 2018 (Høiland-Jørgensen et al., "The eXpress Data Path"), one core, mlx5
#: (ConnectX-5, 100 Gbit/s), 64 B frames, Xeon E5-1650 v4. Another machine, another NIC.
PAPER = {
    "xdp_drop": ("XDP drop", 24.0),
    "dpdk_drop": ("DPDK drop", 43.5),
    "ipt_raw_drop": ("Linux raw drop", 4.8),
    "conntrack_drop": ("Linux conntrack drop", 1.8),
    "xdp_tx": ("XDP_TX", 16.5),           # 16-17 Mpps
    "router_xdp": ("XDP router", 5.36),
    "router_linux": ("Linux router", 1.74),
}
PAPER_HOOK_NS = 13.3            # an XDP_PASS program that only counts (4.8 -> 4.5 Mpps)

FRAME_LEN = 60                  # + 4 B FCS = 64 B on the wire

# --- statistics and the regression rule (pure: tested on recorded numbers) ------------------

Z = 3.0                         # SEs a slowdown must exceed
FLOOR = 0.03                    # ... and never less than 3 %: run-to-run drift (frequency, caches)
MIN_N = 3


def summary(values) -> dict:
    v = [float(x) for x in values]
    if not v:
        return {"n": 0}
    med = statistics.median(v)
    mad = statistics.median(abs(x - med) for x in v)
    return {"n": len(v), "median": med, "min": min(v), "max": max(v), "mad": mad, "values": v}


def _cost(entry: dict) -> list[float]:
    """ns per packet for every repetition (rates become their inverse)."""
    if entry.get("unit") == "pps":
        return [1e9 / x for x in entry["values"] if x > 0]
    return list(entry["values"])


def rel_se(costs) -> float:
    """Relative standard error of the median of ``costs`` (robust: from the MAD)."""
    s = summary(costs)
    if s["n"] < 2 or s["median"] <= 0:
        return float("inf")
    return 1.2533 * 1.4826 * s["mad"] / s["median"] / math.sqrt(s["n"])


def normalized(entry: dict, ref: dict | None) -> list[float]:
    """Costs of ``entry`` per round divided by the reference's cost in the same round (the
    hook's own cost, measured interleaved): what the machine's state does to both cancels."""
    c = _cost(entry)
    if not ref or len(_cost(ref)) != len(c):
        return c
    return [x / r for x, r in zip(c, _cost(ref)) if r > 0]


def judge(base: dict, cur: dict, *, z: float = Z, floor: float = FLOOR, base_ref: dict | None = None,
          cur_ref: dict | None = None) -> dict:
    """One case: {'change': +0.12, 'threshold': 0.05, 'verdict': 'SLOWER'|'faster'|'same'|'too few runs'}.
    ``change`` is the relative change of the median cost (ns/packet; with references given,
    of the cost relative to the reference measured in the same rounds); positive = slower."""
    if base_ref and cur_ref:
        b, c = normalized(base, base_ref), normalized(cur, cur_ref)
    else:
        b, c = _cost(base), _cost(cur)
    if len(b) < MIN_N or len(c) < MIN_N:
        mb, mc = (statistics.median(b) if b else 0), (statistics.median(c) if c else 0)
        return {"change": (mc / mb - 1) if mb else 0.0, "threshold": None, "verdict": "too few runs"}
    mb, mc = statistics.median(b), statistics.median(c)
    change = mc / mb - 1
    thr = max(floor, z * math.hypot(rel_se(b), rel_se(c)))
    verdict = "SLOWER" if change > thr else "faster" if change < -thr else "same"
    return {"change": change, "threshold": thr, "verdict": verdict}


def compare(baseline, current, *, z: float = Z, floor: float = FLOOR) -> "Comparison":
    """Judge every case present in both (``Results`` or their dicts)."""
    b = baseline.data if isinstance(baseline, Results) else baseline
    c = current.data if isinstance(current, Results) else current
    rows = []
    for section in ("paths", "programs"):
        bref, cref = (b.get(section, {}).get(REF), c.get(section, {}).get(REF)) if section == "programs" else (None, None)
        for key, cur in c.get(section, {}).items():
            base = b.get(section, {}).get(key)
            if not base or "values" not in base or "values" not in cur:
                continue
            refs = {} if key == REF else {"base_ref": bref, "cur_ref": cref}
            rows.append({"section": section, "case": key, "unit": cur.get("unit"),
                         "base": statistics.median(base["values"]),
                         "current": statistics.median(cur["values"]), **judge(base, cur, z=z, floor=floor, **refs)})
    return Comparison(rows)


@dataclass
class Comparison:
    rows: list

    @property
    def flagged(self) -> list[str]:
        return [f"{r['section']}/{r['case']}" for r in self.rows if r["verdict"] == "SLOWER"]

    def table(self) -> str:
        out = [f"{'case':34} {'base':>10} {'now':>10} {'change':>8} {'threshold':>9}  verdict"]
        for r in self.rows:
            u = "Mpps" if r["unit"] == "pps" else "ns"
            f = (lambda x: f"{x / 1e6:7.2f}{u}") if u == "Mpps" else (lambda x: f"{x:8.1f}{u}")
            thr = f"{r['threshold']:8.1%}" if r["threshold"] is not None else "       -"
            out.append(f"{r['section'][:4] + '/' + r['case']:34} {f(r['base']):>10} {f(r['current']):>10} "
                       f"{r['change']:+7.1%} {thr:>9}  {r['verdict']}")
        out.append(f"flagged: {', '.join(self.flagged) or 'nothing'}")
        return "\n".join(out)

    __str__ = table

    def __repr__(self):
        return f"<Comparison {len(self.rows)} cases, flagged: {self.flagged or 'nothing'}>"


# --- results ---------------------------------------------------------------------------

@dataclass
class Results:
    data: dict = field(default_factory=dict)

    def save(self, path) -> Path:
        p = Path(path)
        p.write_text(json.dumps(self.data, indent=1, sort_keys=True))
        return p

    def ratio(self, a: str, b: str) -> float | None:
        """median(a) / median(b) of two paths (rates), measured in this run."""
        pa, pb = self.data.get("paths", {}).get(a), self.data.get("paths", {}).get(b)
        if not pa or not pb or not pa.get("n") or not pb.get("n") or not pb["median"]:
            return None
        return pa["median"] / pb["median"]

    def targets(self) -> dict:
        return {"XDP_DROP / iptables raw DROP (target >= 5)": self.ratio("xdp_drop@1cpu", "ipt_raw_drop@1cpu"),
                "XDP_DROP / tc drop (target >= 2)": self.ratio("xdp_drop@1cpu", "tc_drop@1cpu"),
                "drop detector on / off, XDP_DROP (target >= 0.95)":
                    self.ratio("xdp_drop_detector@1cpu", "xdp_drop@1cpu")}

    def table(self) -> str:
        m = self.data.get("meta", {})
        out = [f"xdplab bench — kernel {m.get('kernel')}, {m.get('cpus')} CPUs, "
               f"load average {m.get('loadavg_before')} -> {m.get('loadavg_after')}, "
               f"{m.get('rounds')} interleaved rounds of {m.get('frames'):,} frames per path (+1 warm-up)"]
        if self.data.get("paths"):
            g = self.data.get("generator_alone", {}).get("median")
            out.append(f"\n{'path':28} {'Mpps':>7} {'min-max':>13} {'rx ns':>6}  what the frame goes through"
                       + (f"   (rx ns = ns/frame minus the generator alone, {g:.0f} ns)" if g else ""))
            for k, v in self.data["paths"].items():
                if not v.get("n"):
                    out.append(f"{k:28} {'-':>7} {'':13}  skipped: {v.get('skipped')}")
                    continue
                rx = f"{1e9 / v['median'] * int(k.split('@')[1][:-3]) - g:6.0f}" if g else ""
                out.append(f"{k:28} {v['median'] / 1e6:7.2f} {v['min'] / 1e6:6.2f}-{v['max'] / 1e6:<6.2f} {rx:>6}  {v['path']}")
        if self.data.get("programs"):
            out.append(f"\n{'program (BPF_PROG_RUN, 64 B UDP frame)':56} {'ns/pkt':>7} {'min-max':>13} {'- hook':>7}")
            hook = self.data.get("hook_ns")
            for k, v in self.data["programs"].items():
                if not v.get("n"):
                    out.append(f"{k:56} skipped: {v.get('skipped')}")
                    continue
                net = f"{v['median'] - hook:7.1f}" if hook is not None else ""
                out.append(f"{k:56} {v['median']:7.1f} {v['min']:6.1f}-{v['max']:<6.1f} {net}")
            out.append(f"hook cost (empty XDP_PASS program): {hook:.1f} ns/packet "
                       f"(paper: {PAPER_HOOK_NS} ns, another machine)" if hook is not None else "")
        if self.data.get("cpu_cost"):
            out.append(f"\nreceiver CPU (softirq share of the CPU) at fixed offered rates")
            for case, rows in self.data["cpu_cost"].items():
                out.append(f"  {case:16} " + "  ".join(f"{r['offered'] / 1e6:.2f} Mpps: {r['softirq']:.0%}"
                                                          for r in rows))
        t = {k: v for k, v in self.targets().items() if v is not None}
        if t:
            out.append("\nratios in this run: " + "; ".join(f"{k} = {v:.2f}" for k, v in t.items()))
        if m.get("lacks"):
            out.append("this machine lacks: " + "; ".join(m["lacks"]))
        return "\n".join(out)

    __str__ = table

    def __repr__(self):
        return (f"<bench Results: {len(self.data.get('paths', {}))} paths, "
                f"{len(self.data.get('programs', {}))} programs>")

    def chart(self):
        """Bokeh bars: our medians (with min-max whiskers) beside the paper's figures."""
        from bokeh.models import ColumnDataSource, Whisker
        from bokeh.plotting import figure
        ours = [(k, v) for k, v in self.data.get("paths", {}).items() if v.get("n") and k.endswith("@1cpu")]
        names = [k.replace("@1cpu", "") for k, _ in ours]
        cats = [f"{n} (this VM, veth)" for n in names]
        paper = [(f"{lab} (paper: mlx5, other machine)", mpps) for k, (lab, mpps) in PAPER.items()]
        p = figure(y_range=cats + [c for c, _ in paper], height=30 * (len(cats) + len(paper)) + 80,
                   width=760, x_axis_label="Mpps (one receive CPU, 64 B frames)",
                   title="xdplab bench: this VM on veth (blue) vs the XDP paper, CoNEXT 2018 (grey): "
                         "another machine, another NIC")
        src = ColumnDataSource({"y": cats, "x": [v["median"] / 1e6 for _, v in ours],
                                "lo": [v["min"] / 1e6 for _, v in ours], "hi": [v["max"] / 1e6 for _, v in ours]})
        p.hbar(y="y", right="x", height=0.7, source=src, color="#1f77b4")
        p.add_layout(Whisker(source=src, base="y", lower="lo", upper="hi", dimension="width"))
        p.hbar(y=[c for c, _ in paper], right=[m for _, m in paper], height=0.7, color="#aaaaaa")
        return p

    def save_chart(self, path) -> Path:
        from bokeh.embed import file_html
        from bokeh.resources import INLINE
        Path(path).write_text(file_html(self.chart(), INLINE, "xdplab bench"))
        return Path(path)


def load(path) -> Results:
    try:
        return Results(json.loads(Path(path).read_text()))
    except FileNotFoundError:
        raise UsageError(f"baseline {str(path)!r} does not exist",
                         hint="make one with `xdplab bench --json FILE`") from None
    except ValueError as e:
        raise UsageError(f"baseline {str(path)!r} is not JSON from `xdplab bench --json`: {e}") from None


# --- per-program cost (BPF_PROG_RUN repeat) ------------------------------------------------

HOOK_C = "int xdp_empty(struct xdp_md *ctx) { return XDP_PASS; }"
REF = "hook: empty XDP_PASS"            # every program's cost is judged relative to it


def test_frame() -> bytes:
    from scapy.all import IP, UDP, Ether
    return bytes(Ether(src="02:58:4c:00:00:01", dst="02:58:4c:00:00:02") / IP(src="10.0.0.2", dst="10.0.0.1")
                 / UDP(sport=4242, dport=9) / (b"x" * 18))


def shipped_programs() -> dict:
    """name -> (kind, loader) for every program the labs and the library ship."""
    out = {}
    for path in sorted((BPF / "solutions").rglob("*.c")) + sorted((BPF / "metadata").glob("*.c")):
        rel = str(path.relative_to(BPF))
        text = path.read_text()
        hook = "tc" if "__sk_buff" in text else "xdp"
        out[rel] = (hook, lambda p=path, h=hook: program.Program.from_file(p, hook=h).load())
    out["library: traffic generator"] = ("xdp", lambda: traffic._program(traffic.generator_source(
        test_frame(), {"sport": range(1024, 65536)})))
    out["library: generator receiver (XDP_PASS)"] = ("xdp", lambda: program.load(
        "int xdplab_rx_pass(struct xdp_md *ctx) { return XDP_PASS; }"))
    return out


def prog_ns(prog_or_fd, frame: bytes, repeat: int) -> float:
    fd = prog_or_fd if isinstance(prog_or_fd, int) else prog_or_fd.fd
    _, _, ns = kernel.prog_test_run(fd, frame, repeat=repeat)
    return float(ns)


def measure_programs(progs: dict, *, rounds: int = 7, repeat: int = 200_000, frame: bytes | None = None,
                     progress: bool = True, inner: int = 15) -> dict:
    """{name: summary of ns/packet} for loaded programs ``{name: prog}``: a warm-up run,
    then ``rounds`` interleaved rounds; a round's figure is the least of ``inner`` runs of
    ``repeat / inner`` packets (interrupts and a busy host only ever add time). The
    kernel's timer (bpf_test_timer) leaves out the time the task is scheduled away."""
    frame = frame or test_frame()
    vals = {k: [] for k in progs}
    for k, p in progs.items():
        prog_ns(p, frame, max(1000, repeat // 10))
    bar = _bar(progress, rounds * len(progs), "BPF_PROG_RUN")
    for _ in range(rounds):
        for k, p in progs.items():
            vals[k].append(min(prog_ns(p, frame, max(1, repeat // inner)) for _ in range(inner)))
            if bar is not None:
                bar.update()
    if bar is not None:
        bar.close()
    return {k: {**summary(v), "unit": "ns"} for k, v in vals.items()}


def program_costs(*, rounds: int = 7, repeat: int = 200_000, progress: bool = True) -> tuple[dict, float]:
    """Every shipped program's ns/packet and the hook's own cost (empty XDP_PASS)."""
    loaded, skipped = {}, {}
    items = shipped_programs()
    bar = _bar(progress, len(items) + 1, "loading programs")
    try:
        loaded[REF] = program.load(HOOK_C, count=False)
        if bar is not None:
            bar.update()
        for name, (hook, fn) in items.items():
            try:
                loaded[f"{name} [{hook}]"] = fn()
            except XDPLabError as e:
                skipped[f"{name} [{hook}]"] = str(e).splitlines()[0][:120]
            if bar is not None:
                bar.update()
    finally:
        if bar is not None:
            bar.close()
    res = measure_programs(loaded, rounds=rounds, repeat=repeat, progress=progress)
    hook = res[REF]["median"]
    for k, p in loaded.items():
        if not k.startswith("library: traffic generator"):
            p.close()
    res.update({k: {"n": 0, "skipped": v} for k, v in skipped.items()})
    return res, hook


# --- the lab link ----------------------------------------------------------------------

def _sh(*cmd, netns=None, check=True) -> str:
    full = (["ip", "netns", "exec", netns] if netns else []) + [str(c) for c in cmd]
    r = subprocess.run(full, capture_output=True, text=True)
    if check and r.returncode:
        raise XDPLabError(f"`{' '.join(full)}` failed: {(r.stderr or r.stdout).strip()[:300]}")
    return r.stdout


class BenchLink:
    """``xb<pid>-g`` (g0, s1) <-veth-> ``xb<pid>-r`` (r0, r1); ``queues`` RX/TX queues each."""

    def __init__(self, queues: int | None = None, tag: str | None = None):
        self.queues = queues or os.cpu_count()
        tag = tag or f"xb{os.getpid() % 100000}"
        self.g, self.r = f"{tag}-g", f"{tag}-r"
        self.up_ = False

    def up(self) -> "BenchLink":
        try:
            for ns in (self.g, self.r):
                _sh("ip", "netns", "add", ns)
            q = ["numtxqueues", self.queues, "numrxqueues", self.queues]
            # ifindexes of our own: a veth's peer is found by ifindex across namespaces
            # (xdplab.traffic.find_peer), and two bench links must not look alike
            i = 100_000 + (os.getpid() % 100_000) * 4
            _sh("ip", "link", "add", "g0", "index", i, *q, "type", "veth", "peer", "name", "r0",
                "index", i + 1, "netns", self.r, *q, netns=self.g)
            _sh("ip", "link", "add", "s1", "index", i + 2, *q, "type", "veth", "peer", "name", "r1",
                "index", i + 3, "netns", self.r, *q, netns=self.g)
            for ns, dev, addr in ((self.g, "g0", "10.250.0.1/24"), (self.r, "r0", "10.250.0.2/24"),
                                  (self.g, "s1", "10.250.1.1/24"), (self.r, "r1", "10.250.1.2/24")):
                _sh("ip", "addr", "add", addr, "dev", dev, netns=ns)
                _sh("ip", "link", "set", dev, "up", netns=ns)
            _sh("ip", "link", "set", "lo", "up", netns=self.r)
            self.up_ = True
        except BaseException:
            self.down()
            raise
        return self

    def mac(self, ns, dev) -> str:
        return re.search(r"link/ether (\S+)", _sh("ip", "link", "show", dev, netns=ns)).group(1)

    def down(self) -> None:
        for ns in (self.g, self.r):
            if os.path.exists(f"/run/netns/{ns}"):
                _sh("ip", "netns", "del", ns, check=False)
        self.up_ = False

    def __enter__(self):
        return self.up()

    def __exit__(self, *exc):
        self.down()


def _counter_ipt(ns, table, chain) -> int:
    out = _sh("iptables", "-t", table, "-L", chain, "-v", "-x", "-n", netns=ns)
    rows = [l.split() for l in out.splitlines()[2:] if l.strip()]
    return sum(int(r[0]) for r in rows)


def _counter_nft(ns) -> int:
    out = _sh("nft", "list", "chain", "netdev", "xdplab_bench", "in", netns=ns)
    return sum(int(x) for x in re.findall(r"counter packets (\d+)", out))


# --- the paths -------------------------------------------------------------------------

DROP_C = "int xdp_drop(struct xdp_md *ctx) { return XDP_DROP; }"
PASS_C = "int xdp_pass(struct xdp_md *ctx) { return XDP_PASS; }"
TC_DROP_C = ("BPF_PERCPU_ARRAY(tc_seen, u64, 1);\n"
             "int tc_drop(struct __sk_buff *skb) { u32 k = 0; u64 *n = tc_seen.lookup(&k);\n"
             "    if (n) *n += 1; return TC_ACT_SHOT; }")
TX_C = ('#include "xdplab_redirect.h"\n'
        "int xdp_tx(struct xdp_md *ctx) {\n"
        "    struct ethhdr *eth = (void *)(long)ctx->data;\n"
        "    if ((void *)(eth + 1) > (void *)(long)ctx->data_end) return XDP_DROP;\n"
        "    xdplab_swap_macs(eth);\n    return XDP_TX;\n}\n")

PATHS = {
    "xdp_drop": "veth NAPI -> XDP (native) DROP: no sk_buff",
    "xdp_drop_detector": "as xdp_drop, with xdplab's drop detector (xdp/skb drop tracepoints) on",
    "xdp_drop_generic": "veth NAPI (GRO on, no native prog) -> sk_buff -> generic XDP DROP",
    "tc_drop": "veth NAPI (XDP_PASS prog) -> sk_buff -> tcx ingress TC_ACT_SHOT",
    "nft_drop": "veth NAPI (XDP_PASS prog) -> sk_buff -> nftables netdev ingress drop",
    "ipt_raw_drop": "veth NAPI (XDP_PASS prog) -> sk_buff -> GRO -> iptables raw PREROUTING DROP",
    "ipt_raw_drop_gro": "veth NAPI (GRO on, no XDP prog) -> sk_buff -> GRO -> iptables raw PREROUTING DROP",
    "conntrack_drop": "veth NAPI (XDP_PASS prog) -> sk_buff -> conntrack (new entry per frame) "
                      "-> routing -> iptables filter INPUT ctstate NEW DROP",
    "xdp_tx": "veth NAPI -> XDP_TX (MACs swapped) -> back into g0 -> g0's XDP DROP",
    "devmap": "veth NAPI -> XDP redirect via devmap -> r1 -> s1's XDP DROP",
    "cpumap": "veth NAPI -> XDP redirect via cpumap to the other CPU (counted at the redirect; "
              "the other CPU builds the sk_buff, raw DROP)",
}


RETRIES = []


class _Bench:
    """Holds the programs and the link; each case: setup() -> (counter fn), teardown."""

    def __init__(self, link: BenchLink):
        self.link = link
        self.load = program.load
        self.p = {}
        self.gen = None
        self.frame = None

    def prog(self, name, src, **kw):
        if name not in self.p:
            self.p[name] = self.load(src, **kw)
        return self.p[name]

    def run_in(self, ns, fn, *a):
        return kernel.run_in_netns(ns, fn, *a)

    def attach_in(self, ns, prog, dev, mode="native"):
        for i in range(20):      # right after a detach under traffic veth may still refuse (EINVAL)
            try:
                return self.run_in(ns, lambda: prog.attach(dev, mode))
            except AttachError as e:
                RETRIES.append(str(e)[:100])
                if i == 19:
                    raise
                time.sleep(0.05 * (i + 1))

    def gro(self, on: bool):
        _sh("ethtool", "-K", "r0", "gro", "on" if on else "off", netns=self.link.r)

    def start(self):
        from scapy.all import IP, UDP, Ether
        L = self.link
        self.gmac, self.rmac = L.mac(L.g, "g0"), L.mac(L.r, "r0")
        self.s1mac, self.r1mac = L.mac(L.g, "s1"), L.mac(L.r, "r1")
        self.frame = bytes(Ether(src=self.gmac, dst=self.rmac) / IP(src="10.250.0.1", dst="10.250.0.2")
                           / UDP(sport=1024, dport=9) / (b"x" * 18))
        rx = self.prog("pass", PASS_C)
        link = self.attach_in(L.r, rx, "r0")
        try:
            self.gen = Generator(self.frame, "g0", netns=L.g, vary={"sport": range(1024, 65536)})
        finally:
            link.detach()

    # each returns (counter(): int, cleanup())
    def case(self, name: str, cpus: list[int]):
        L, r = self.link, self.link.r
        links, undo = [], []

        def att(ns, prog, dev, mode="native"):
            links.append(self.attach_in(ns, prog, dev, mode))

        def ipt(table, chain, *rule):
            _sh("iptables", "-t", table, "-A", chain, *rule, netns=r)
            undo.append(lambda: _sh("iptables", "-t", table, "-F", chain, netns=r, check=False))

        def cleanup():
            for l in links:
                l.detach()
            for u in reversed(undo):
                u()

        try:
            if name in ("xdp_drop", "xdp_drop_detector"):
                d = self.prog("drop", DROP_C)
                att(r, d, "r0")
                counter = lambda: d.counters()["DROP"]
                if name == "xdp_drop_detector":
                    det = DropDetector().start()
                    undo.append(det.close)
            elif name == "xdp_drop_generic":
                d = self.prog("drop", DROP_C)
                self.gro(True)
                undo.append(lambda: self.gro(False))
                att(r, d, "r0", "generic")
                counter = lambda: d.counters()["DROP"]
            elif name in ("tc_drop", "nft_drop", "ipt_raw_drop", "conntrack_drop"):
                att(r, self.prog("pass", PASS_C), "r0")
                if name == "tc_drop":
                    t = self.prog("tcdrop", TC_DROP_C, hook="tc")
                    att(r, t, "r0", "ingress")
                    counter = lambda: int(sum(t["tc_seen"].to_numpy().ravel()))
                elif name == "nft_drop":
                    _sh("nft", "add", "table", "netdev", "xdplab_bench", netns=r)
                    _sh("nft", "add chain netdev xdplab_bench in { type filter hook ingress device r0 "
                        "priority 0 ; }", netns=r)
                    _sh("nft", "add", "rule", "netdev", "xdplab_bench", "in", "counter", "drop", netns=r)
                    undo.append(lambda: _sh("nft", "delete", "table", "netdev", "xdplab_bench", netns=r,
                                            check=False))
                    counter = lambda: _counter_nft(r)
                elif name == "ipt_raw_drop":
                    ipt("raw", "PREROUTING", "-i", "r0", "-j", "DROP")
                    counter = lambda: _counter_ipt(r, "raw", "PREROUTING")
                else:
                    ipt("filter", "INPUT", "-i", "r0", "-m", "conntrack", "--ctstate", "NEW", "-j", "DROP")
                    counter = lambda: _counter_ipt(r, "filter", "INPUT")
            elif name == "ipt_raw_drop_gro":
                self.gro(True)
                undo.append(lambda: self.gro(False))
                ipt("raw", "PREROUTING", "-i", "r0", "-j", "DROP")
                counter = lambda: _counter_ipt(r, "raw", "PREROUTING")
            elif name == "xdp_tx":
                g = self.prog("gdrop", DROP_C)
                att(L.g, g, "g0")
                att(r, self.prog("tx", TX_C), "r0")
                counter = lambda: g.counters()["DROP"]
            elif name == "devmap":
                dv = self.prog("devmap", (BPF / "solutions/06-redirect/devmap_fwd.c").read_text())
                dv["macs"][0] = redirect.mac_u64(self.s1mac)
                dv["macs"][1] = redirect.mac_u64(self.r1mac)
                # the kernel resolves a devmap's ifindex in the netns of the process updating it
                self.run_in(r, lambda: redirect.devmap_set(dv["tx_port"], 0, "r1", check=False))
                s = self.prog("sdrop", DROP_C)
                att(L.g, s, "s1")
                att(r, dv, "r0")
                counter = lambda: s.counters()["DROP"]
            elif name == "cpumap":
                other = [c for c in sorted(os.sched_getaffinity(0)) if c not in cpus]
                if not other:
                    raise _Skip("needs a CPU the generators do not use")
                cm = self.prog("cpumap", (BPF / "solutions/06-redirect/cpumap.c").read_text())
                cm["target_cpu"][0] = other[0]
                redirect.cpumap_set(cm["cpu_map"], other[0], qsize=2048)
                ipt("raw", "PREROUTING", "-i", "r0", "-j", "DROP")
                att(r, cm, "r0")
                counter = lambda: cm.counters()["REDIRECT"]
            else:
                raise UsageError(f"unknown bench case {name!r}; one of {', '.join(PATHS)}")
        except BaseException:
            cleanup()
            raise
        return counter, cleanup

    def close(self):
        if self.gen is not None:
            self.gen.close()
        for p in self.p.values():
            p.close()


class _Skip(Exception):
    pass


def _bar(progress, total, desc):
    if not progress:
        return None
    from tqdm.auto import tqdm
    return tqdm(total=total, desc=desc, unit="run", leave=True)


def _rate(counted: int, r, ncpus: int) -> float:
    """Packets/s per the CPU time the kernel measured (bpf_test_timer leaves out the time the
    generator was scheduled away; the receive NAPI runs inside it, at local_bh_enable after
    each batch): on a shared machine wall-clock rates measure the other users. ``ncpus``
    generators run in parallel, each on its own CPU."""
    if not r.sent or not r.ns_per_packet:
        return 0.0
    cpu_seconds = r.sent * r.ns_per_packet / 1e9
    return counted / cpu_seconds * ncpus


def _softirq(cpu: int) -> tuple[int, int]:
    """(softirq ticks, all ticks) of ``cpu`` from /proc/stat."""
    for line in open("/proc/stat"):
        if line.startswith(f"cpu{cpu} "):
            v = [int(x) for x in line.split()[1:]]
            return v[6], sum(v[:8])
    return 0, 1


def measure_paths(cases=None, *, cpu_counts=None, rounds: int = 5, frames: int = 2_000_000, seconds: float = 2.0,
                  cpu_rates=(), cpu_cost_cases=("xdp_drop", "ipt_raw_drop"), progress: bool = True,
                  link: BenchLink | None = None) -> dict:
    """Packets/s each path drops or forwards (medians of interleaved rounds of ``frames``
    frames, per the CPU time the kernel measured), and the receiver CPU's softirq share at
    fixed offered rates (``cpu_rates``, packets/s, for ``seconds`` each)."""
    traffic.require_live_frames()
    cases = list(cases or PATHS)
    allowed = sorted(os.sched_getaffinity(0))
    # CPU 0 takes the machine's interrupts and housekeeping; one receive CPU = the last one
    cpu_counts = cpu_counts or list(range(1, len(allowed) + 1))
    own = link is None
    link = link or BenchLink(queues=len(allowed))
    if own:
        link.up()
    b = _Bench(link)
    out, cpu_cost = {}, {}
    try:
        b.start()
        plan = [(c, n) for n in cpu_counts for c in cases if not (c == "cpumap" and n == len(allowed))]
        vals = {f"{c}@{n}cpu": [] for c, n in plan}
        delivered = {k: [] for k in vals}
        skipped = {}
        bar = _bar(progress, (rounds + 1) * len(plan), "paths (live frames)")
        for rnd in range(rounds + 1):              # round 0: warm-up, not recorded
            for c, n in plan:
                key = f"{c}@{n}cpu"
                if key in skipped:
                    bar and bar.update()
                    continue
                cpus = allowed[-n:]
                try:
                    counter, cleanup = b.case(c, cpus)
                except _Skip as e:
                    skipped[key] = str(e)
                    bar and bar.update()
                    continue
                try:
                    c0 = counter()
                    r = b.gen.run(count=frames, cpus=cpus, progress=False)
                    got = counter() - c0
                finally:
                    cleanup()
                if rnd:
                    vals[key].append(_rate(got, r, len(cpus)))
                    delivered[key].append(got / max(r.sent, 1))
                bar and bar.update()
        bar and bar.close()
        for key, v in vals.items():
            c = key.split("@")[0]
            if key in skipped:
                out[key] = {"n": 0, "skipped": skipped[key], "path": PATHS[c]}
                continue
            out[key] = {**summary(v), "unit": "pps", "path": PATHS[c], "cpus": allowed[-int(key.split("@")[1][:-3]):],
                        "counted_of_sent": statistics.median(delivered[key]) if delivered[key] else 0}
        # CPU cost at fixed offered rates, one receive CPU
        if cpu_rates:
            cpu = allowed[-1]
            bar = _bar(progress, len(cpu_rates) * len(cpu_cost_cases), "CPU cost")
            for c in cpu_cost_cases:
                rows = []
                for rate in cpu_rates:
                    counter, cleanup = b.case(c, [cpu])
                    try:
                        s0, t0 = _softirq(cpu)
                        n0 = counter()
                        r = b.gen.run(duration=seconds, rate=rate, cpus=[cpu], progress=False)
                        s1, t1 = _softirq(cpu)
                        got = counter() - n0
                    finally:
                        cleanup()
                    rows.append({"offered": rate, "achieved": got / r.seconds, "loadavg": os.getloadavg()[0],
                                 "softirq": (s1 - s0) / max(t1 - t0, 1)})
                    bar and bar.update()
                cpu_cost[c] = rows
            bar and bar.close()
    finally:
        b.close()
        if own:
            link.down()
    return {"paths": out, "cpu_cost": cpu_cost}


def generator_alone(*, rounds: int = 5, repeat: int = 200_000) -> dict:
    """ns per frame of the live-frames machinery alone: BPF_PROG_RUN live frames with a
    program that drops at once (page pool, frame copy, batch loop; nothing transmitted).
    What a path costs the receiver is roughly its ns/frame minus this."""
    traffic.require_live_frames()
    frame = test_frame()
    d = program.load(DROP_C, count=False)
    ctx = struct.pack("=6I", 0, len(frame), 0, 1, 0, 0)          # "received" on lo
    vals = []
    try:
        cpu = sorted(os.sched_getaffinity(0))[-1]
        old = os.sched_getaffinity(0)
        os.sched_setaffinity(0, {cpu})
        try:
            for i in range(rounds + 1):
                _, _, ns = kernel.prog_test_run(d.fd, frame, repeat=repeat, ctx=ctx,
                                                 flags=kernel.BPF_F_TEST_XDP_LIVE_FRAMES, batch_size=64)
                if i:
                    vals.append(float(ns))
        finally:
            os.sched_setaffinity(0, old)
    finally:
        d.close()
    return {**summary(vals), "unit": "ns"}


# --- one whole run ---------------------------------------------------------------------

def lacks() -> list[str]:
    n = len(os.sched_getaffinity(0))
    out = ["a real NIC: veth has no DMA, no hardware RX queues or RSS, and its NAPI runs on the "
           "sending CPU, so one CPU both generates and receives",
           "DPDK (the paper's 43.5 Mpps reference): not installed",
           "CPUs to spare: the generator shares each receive CPU" if n <= 2 else ""]
    if n < 8:
        out.append(f"more than {n} CPUs: the paper scales to 6 cores")
    return [x for x in out if x]


def run(*, short: bool = False, rounds: int | None = None, frames: int | None = None, seconds: float | None = None,
        paths=None, programs: bool = True, cpu_counts=None, cpu_rates=None, progress: bool = True) -> Results:
    """A whole bench run: paths over live frames, every shipped program's cost, CPU cost.
    ``short``: 3 rounds of 100k frames on one CPU, a few cases, no CPU cost (CI and the lab)."""
    rounds = rounds or (3 if short else 5)
    frames = frames or (100_000 if short else 2_000_000)
    seconds = seconds or (0.5 if short else 2.0)
    if short:
        paths = paths or ["xdp_drop", "tc_drop", "ipt_raw_drop"]
        cpu_counts = cpu_counts or [1]
        cpu_rates = () if cpu_rates is None else cpu_rates
    elif cpu_rates is None:
        cpu_rates = (100_000, 300_000, 1_000_000, 2_000_000)
    meta = {"kernel": os.uname().release, "cpus": os.cpu_count(), "allowed_cpus": sorted(os.sched_getaffinity(0)),
            "loadavg_before": [round(x, 2) for x in os.getloadavg()], "rounds": rounds, "frames": frames, "seconds": seconds,
            "frame_bytes": FRAME_LEN + 4, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "placement": "generator and receiver NAPI on the same CPU(s): the last N allowed CPUs",
            "lacks": lacks(), "paper": {k: v for k, v in PAPER.items()}, "paper_hook_ns": PAPER_HOOK_NS}
    data = {"meta": meta}
    if programs:
        data["programs"], data["hook_ns"] = program_costs(rounds=max(rounds, 5) if short else 9,
                                                          repeat=50_000 if short else 200_000, progress=progress)
    if paths != []:
        data["generator_alone"] = generator_alone(rounds=rounds)
        data.update(measure_paths(paths, cpu_counts=cpu_counts, rounds=rounds, frames=frames, seconds=seconds,
                                  cpu_rates=cpu_rates, progress=progress))
    meta["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    return Results(data)


# --- a deliberately slowed program (to prove the harness) ----------------------------------

WORK_C = r"""
int xdp_work(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    struct iphdr *ip = data + sizeof(*eth);
    struct udphdr *udp = (void *)(ip + 1);
    volatile u32 acc = 0;

    if ((void *)(udp + 1) > end || eth->h_proto != htons(ETH_P_IP) || ip->protocol != IPPROTO_UDP)
        return XDP_PASS;
    for (u32 i = 0; i < LOOPS; i++)          /* the calibrated extra work */
        acc += i ^ udp->dest;
    return udp->dest == htons(23) ? XDP_DROP : XDP_PASS;
}
"""


def work_source(loops: int) -> str:
    """A small UDP parser plus ``loops`` iterations of a loop the compiler must keep."""
    return WORK_C.replace("LOOPS", str(int(loops)))


def slowed_pair(slowdown: float = 0.10, *, rounds: int = 7, repeat: int = 100_000):
    """(base program, slowed program, info): the slowed one runs ``slowdown`` longer per
    packet than the base, by a loop whose per-iteration cost is measured here first."""
    base = program.load(work_source(0), count=False)
    probe = program.load(work_source(200), count=False)
    try:
        m = measure_programs({"base": base, "probe": probe}, rounds=rounds, repeat=repeat, progress=False)
    finally:
        probe.close()
    per_iter = max((m["probe"]["median"] - m["base"]["median"]) / 200, 0.05)
    loops = max(1, round(slowdown * m["base"]["median"] / per_iter))
    slow = program.load(work_source(loops), count=False)
    # a second step: measure the slowdown this gives and scale the loop once to hit the target
    hook = program.load(HOOK_C, count=False)
    try:
        m = measure_programs({"hook": hook, "base": base, "slow": slow}, rounds=rounds, repeat=repeat,
                             progress=False)
        got = judge(m["base"], m["slow"], base_ref=m["hook"], cur_ref=m["hook"])["change"]
        if got > 0.01:
            slow.close()
            loops = max(1, round(loops * slowdown / got))
            slow = program.load(work_source(loops), count=False)
    finally:
        hook.close()
    return base, slow, {"base_ns": m["base"]["median"], "ns_per_iteration": per_iter, "loops": loops,
                        "first_step_change": got}


# --- the command ------------------------------------------------------------------------

def add_arguments(p):
    p.add_argument("--short", action="store_true", help="3 rounds of 100k frames, 3 paths, one CPU (CI, the lab)")
    p.add_argument("--rounds", type=int, help="interleaved rounds per case (after one warm-up)")
    p.add_argument("--frames", type=int, help="frames per path and round")
    p.add_argument("--paths", help=f"comma-separated, of: {', '.join(PATHS)} ('none': no live traffic)")
    p.add_argument("--cpus", help="receive CPU counts, e.g. 1,2 (default 1..N)")
    p.add_argument("--no-programs", action="store_true", help="skip the per-program BPF_PROG_RUN costs")
    p.add_argument("--json", metavar="FILE", help="write the results (a baseline for --compare)")
    p.add_argument("--html", metavar="FILE", help="write the bokeh chart (ours beside the paper's)")
    p.add_argument("--compare", metavar="BASELINE", help="flag what slowed beyond the measured noise")
    p.add_argument("--report-only", action="store_true", help="with --compare: print, exit 0 even if flagged")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def _positive(name, v):
    if v is not None and (v < 1):
        raise UsageError(f"--{name} {v}: give a whole number >= 1")
    return v


def main(args) -> int:
    """``xdplab bench``: exit 1 when --compare flags something (unless --report-only)."""
    baseline = load(args.compare) if args.compare else None          # refuse before measuring
    paths = None
    if args.paths:
        paths = [] if args.paths == "none" else [x.strip() for x in args.paths.split(",") if x.strip()]
        bad = [x for x in paths if x not in PATHS]
        if bad:
            raise UsageError(f"--paths: unknown {', '.join(bad)}; accepted: {', '.join(PATHS)} or none")
    cpus = None
    if args.cpus:
        try:
            cpus = [int(x) for x in args.cpus.split(",")]
        except ValueError:
            raise UsageError(f"--cpus {args.cpus!r}: give counts like 1,2") from None
        n = len(os.sched_getaffinity(0))
        if any(not 1 <= c <= n for c in cpus):
            raise UsageError(f"--cpus {args.cpus!r}: this machine has {n} CPUs for us (1..{n})")
    res = run(short=args.short, rounds=_positive("rounds", args.rounds), frames=_positive("frames", args.frames),
              paths=paths, programs=not args.no_programs, cpu_counts=cpus, progress=not args.quiet)
    print(res.table())
    if args.json:
        print(f"results: {res.save(args.json)}")
    if args.html:
        print(f"chart: {res.save_chart(args.html)}")
    if baseline is not None:
        cmp = compare(baseline, res)
        print("\n" + cmp.table())
        if cmp.flagged and not args.report_only:
            return 1
    return 0


def batching(batch_sizes=(1, 4, 16, 64, 256), *, frames: int = 100_000, rounds: int = 3,
             case: str = "xdp_drop", progress: bool = True) -> dict:
    """Packets/s of ``case`` when the generator hands frames over in batches of each size
    (BPF_PROG_RUN live frames: one flush, hence one NAPI run of the receiver, per batch)."""
    with BenchLink(queues=1) as link:
        b = _Bench(link)
        vals = {n: [] for n in batch_sizes}
        bar = _bar(progress, (rounds + 1) * len(batch_sizes), "batching")
        try:
            b.start()
            counter, cleanup = b.case(case, [])
            try:
                cpu = sorted(os.sched_getaffinity(0))[-1]
                for rnd in range(rounds + 1):
                    for n in batch_sizes:
                        c0 = counter()
                        r = b.gen.run(count=frames, cpus=[cpu], batch_size=n, progress=False)
                        if rnd:
                            vals[n].append(_rate(counter() - c0, r, 1))
                        bar and bar.update()
            finally:
                cleanup()
        finally:
            bar and bar.close()
            b.close()
    return {n: {**summary(v), "unit": "pps"} for n, v in vals.items()}
