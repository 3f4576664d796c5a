"""QoS with XDP: a per-flow token-bucket policer, and the fast->slow experiment that
shows why XDP needs one.

    pol = qos.load_policer(rate="10mbit", burst="16kb")      # xdplab/bpf/programs/policer.c
    qos.configure(pol, rate="20mbit")                        # live, through policer_config
    qos.flows(pol)                                           # per-flow passed/dropped

    exp = qos.FastSlow(RouterTopology(hosts=("h1", "h2")).up(), rate="10mbit")
    exp.plot()                      # live: offered vs delivered Mbit/s, drops/s
    exp.run("kernel"); exp.run("xdp"); exp.run("policed")
    exp.results()                   # one row per phase

The experiment: h1 sends faster than the router's link to h2 (shaped by tbf) can carry.
``kernel``: the router forwards with the IP stack, dev_queue_xmit() meets tbf, which
queues and drops -- the shaping works. ``xdp``: the XDP fib router redirects; redirected
frames go straight to the driver (ndo_xdp_xmit) and never meet a qdisc, so the shaping is
gone. ``policed``: the policer in front of the XDP router drops what exceeds the rate.
"""
from __future__ import annotations

import ipaddress
import socket
import struct
import time
from dataclasses import dataclass, field

from .. import kernel
from .. import paths
from ..errors import Closable, XDPLabError
from ..programs.program import Program
from ..net.router_topology import parse_rate, parse_size
from . import fib_router
from ..net.redirect import ensure_peer_program
from ..programs import live
from ..programs.live import Sampler, rate_reader

SOURCE = paths.program("policer.c")     # the library's own (lab 08's answer is the learner's)


def policer_program(source: str | None = None, then: str = "pass", **kw) -> Program:
    """The policer as a Program. ``then``: what conforming packets get -- ``"pass"``
    (XDP_PASS, to the kernel) or ``"router"`` (the fib forwarder of ``xdplab.tools.fib_router``)."""
    src = source if source is not None else SOURCE.read_text()
    if then == "router":
        src = (fib_router.SOURCE.read_text() + "\n#define POLICER_NEXT(ctx) xdp_fib_forward(ctx)\n" + src)
    elif then != "pass":
        raise XDPLabError(f"then={then!r}?", hint="then='pass' or then='router'")
    return Program(src, func=kw.pop("func", "xdp_policer"), origin=kw.pop("origin", "policer"), **kw)


def load_policer(rate=None, burst="16kb", then: str = "pass", source: str | None = None, **kw):
    """Load the policer (configured when ``rate`` is given)."""
    prog = policer_program(source, then, **kw).load()
    if rate is not None:
        configure(prog, rate, burst)
    return prog


def configure(prog, rate, burst="16kb") -> dict:
    """Set the policer's rate (bits/s: '10mbit', 1e7) and bucket depth (bytes: '16kb').
    Takes effect at the next packet; the buckets are kept. rate=0 switches policing off."""
    m = prog.maps["policer_config"]
    if not hasattr(m, "table"):              # a libbpf-style policer: a BTF-typed map
        m[0] = {"rate": parse_rate(rate) // 8, "burst": parse_size(burst)}
        return config(prog)
    table = m.table
    table[table.Key(0)] = table.Leaf(parse_rate(rate) // 8, parse_size(burst))
    return config(prog)


def config(prog) -> dict:
    m = prog.maps["policer_config"]
    v = m.table[0] if hasattr(m, "table") else m[0]
    return {"rate_bps": v.rate * 8, "burst_bytes": v.burst}


def flows(prog):
    """The policer's buckets: one row per flow (addresses, ports, passed, dropped, tokens)."""
    import pandas as pd
    rows = []
    m = prog.maps["policer_flows"]
    for k, v in (m.table.items() if hasattr(m, "table") else m.items()):
        rows.append({"src": str(ipaddress.IPv4Address(socket.ntohl(k.saddr))),
                     "dst": str(ipaddress.IPv4Address(socket.ntohl(k.daddr))),
                     "proto": k.proto, "sport": socket.ntohs(k.sport), "dport": socket.ntohs(k.dport),
                     "passed": v.passed, "dropped": v.dropped, "tokens_bytes": v.tokens // 10**9})
    return pd.DataFrame(rows, columns=["src", "dst", "proto", "sport", "dport", "passed", "dropped",
                                       "tokens_bytes"])


def reset(prog) -> None:
    """Forget every flow's bucket (the next packet of each flow starts with a full one)."""
    m = prog.maps["policer_flows"]
    (m.table if hasattr(m, "table") else m).clear()


# --- the fast -> slow experiment ----------------------------------------------------------

_FASTSLOW_C = r"""
/* the fast->slow experiment's router port. fastslow_mode: 0 = XDP_PASS (the kernel
 * forwards), 1 = police (policer_config; rate 0: off), then forward with bpf_fib_lookup */
BPF_ARRAY(fastslow_mode, u32, 1);

int xdp_fastslow(struct xdp_md *ctx)
{
    u32 zero = 0, *mode = fastslow_mode.lookup(&zero);

    if (!mode || *mode == 0)
        return XDP_PASS;
    if (xdp_police(ctx) == XDP_DROP)
        return XDP_DROP;
    return xdp_fib_forward(ctx);
}
"""

PHASES = {
    "kernel": "XDP_PASS, the kernel forwards: tbf shapes",
    "xdp": "XDP fib router: redirected frames bypass tbf",
    "policed": "policer + XDP fib router",
}


SHOWS_EFFECT = 1.5     # offered / rate above which shaping and policing must show


@dataclass
class Phase:
    """What one phase of the experiment measured."""

    phase: str
    seconds: float
    sent: int
    frame_len: int
    delivered_bytes: int
    delivered_packets: int
    qdisc: dict
    xdp_drops: int
    rate_bps: int
    #: from a DropDetector (``run(..., detector=dd)``): frames the XDP path flushed to the
    #: router's ports and lost there, summed over the xdp tracepoints
    xdp_path: dict | None = None
    #: the policer's bucket in a "policed" phase (two policed rows differ by it)
    police_burst: str | None = None

    @property
    def offered_mbps(self) -> float:
        return self.sent * self.frame_len * 8 / self.seconds / 1e6

    @property
    def delivered_mbps(self) -> float:
        return self.delivered_bytes * 8 / self.seconds / 1e6

    def row(self) -> dict:
        """One table row; every row has every column ("—": not measured in this phase)."""
        shaped = self.rate_bps / 1e6
        return {"phase": self.phase, "what": PHASES[self.phase],
                "policer burst": self.police_burst or "—",
                "offered Mbit/s": round(self.offered_mbps, 1),
                "delivered Mbit/s": round(self.delivered_mbps, 1),
                "shaped to Mbit/s": int(shaped) if shaped == int(shaped) else round(shaped, 1),
                "sent": self.sent, "delivered": self.delivered_packets,
                "tbf packets": self.qdisc.get("packets", 0), "tbf drops": self.qdisc.get("drops", 0),
                "XDP drops": self.xdp_drops,
                "XDP path flushed": self.xdp_path["flushed"] if self.xdp_path else "—",
                "XDP path lost": self.xdp_path["lost"] if self.xdp_path else "—"}

    def __repr__(self) -> str:
        return (f"<Phase {self.phase}: offered {self.offered_mbps:.1f} Mbit/s, delivered "
                f"{self.delivered_mbps:.1f} Mbit/s, tbf saw {self.qdisc.get('packets', 0)} and dropped "
                f"{self.qdisc.get('drops', 0)}, XDP dropped {self.xdp_drops}>")


@dataclass
class FastSlow(Closable):
    """h1 ("fast") floods h2 through the router, whose link to h2 is shaped to ``rate``
    (tbf on the router's egress). ``offered``: the sending rate, ``size``: frame bytes."""

    topo: object
    rate: str = "10mbit"
    offered: str = "100mbit"
    size: int = 1000
    src: str = "h1"
    dst: str = "h2"
    burst: str = "16kb"                   # tbf's bucket
    police_burst: str = "128kb"           # the policer's: >= rate x the sender's burst interval
    tick: float = 0.03                    # the sender's burst interval (s); a live-frames
                                          # BPF_PROG_RUN costs ~25 ms of setup here anyway
    phases: list = field(default_factory=list)

    def __post_init__(self):
        from scapy.layers.inet import IP, UDP
        t, s, d = self.topo, self.topo[self.src], self.topo[self.dst]
        t.shape(self.dst, self.rate, burst=self.burst)
        pkt = IP(src=s.ipv4, dst=d.ipv4) / UDP(sport=4321, dport=9)
        self.packet = pkt / (b"\0" * max(0, self.size - 14 - len(pkt)))
        # one program for every phase (a compile is the slow part): the phase is a map value
        self.prog = Program(fib_router.SOURCE.read_text() + SOURCE.read_text() + _FASTSLOW_C,
                            func="xdp_fastslow", origin="fast->slow").load()
        ensure_peer_program(d)                  # the redirect target is a veth: its peer needs XDP
        self.link = t.attach(self.prog, self.src)   # also what the generator's frames need
        self.use("kernel")
        self.gen = fib_router.generator(self.packet, s)
        self._plot = None

    @property
    def policer(self):
        """The program on the router's port (its policer maps: ``qos.flows(exp.policer)``)."""
        return self.prog

    def use(self, phase: str) -> None:
        """Switch the router's port to ``phase`` (map writes; the program stays)."""
        if phase not in PHASES:
            raise XDPLabError(f"no phase {phase!r}", hint=f"one of {', '.join(PHASES)}")
        self._mark(phase)
        mode = self.prog.maps["fastslow_mode"].table
        mode[mode.Key(0)] = mode.Leaf(0 if phase == "kernel" else 1)
        configure(self.prog, self.rate if phase == "policed" else 0, self.police_burst)
        reset(self.prog)

    def totals(self) -> dict:
        """Cumulative counters (the live plot turns them into rates)."""
        d = self.topo[self.dst]
        st = kernel.run_in_netns(d.netns, kernel.link_stats, d.inside)
        q = self.topo.qdisc_stats(self.dst)
        return {"delivered": st.get("rx_bytes", 0) * 8 / 1e6, "tbf_drops": q.get("drops", 0),
                "xdp_drops": self.policer.counters()["DROP"]}

    def send(self, seconds: float) -> tuple[int, float]:
        """Offer ``offered`` bits/s for ``seconds``: every ``tick`` one BPF_PROG_RUN of
        rate x tick frames (a burst at line rate), then sleep. A late tick is skipped, never
        made up with a bigger burst, so the bursts stay ``tick`` long even on a busy
        machine. Returns (frames sent, seconds)."""
        g = self.gen
        per_tick = max(1, round(parse_rate(self.offered) / 8 / len(g.frame) * self.tick))
        ctx = kernel.xdp_md(len(g.frame), g.ingress_ifindex)

        def loop():
            sent, t0 = 0, time.monotonic()
            nxt, end = t0, t0 + seconds
            while time.monotonic() < end:
                kernel.prog_test_run(g.prog.fd, g.frame, repeat=per_tick, ctx=ctx,
                                      flags=kernel.BPF_F_TEST_XDP_LIVE_FRAMES, batch_size=64)
                sent += per_tick
                nxt += self.tick
                now = time.monotonic()
                if nxt < now:
                    nxt = now
                time.sleep(nxt - now)
            return sent, time.monotonic() - t0
        return kernel.run_in_netns(g.netns, loop)

    def _xdp_path(self, detector) -> dict:
        """What a DropDetector saw on the router's ports: frames flushed and lost."""
        ports = {h.ifindex for h in self.topo}     # router-side veths: ifindexes from the root netns
        rows = [r for r in detector.losses(all_events=True) if r.ifindex in ports or r.to in ports]
        return {"flushed": sum(r.sent for r in rows), "lost": sum(r.drops for r in rows)}

    def run(self, phase: str, seconds: float = 2.0, detector=None) -> Phase:
        """Flood for ``seconds`` with the router's port in ``phase``. ``detector``: a
        started ``xdplab.trace.DropDetector`` whose view of the router's ports is recorded
        (``Phase.xdp_path``)."""
        self.use(phase)
        q0 = self.topo.qdisc_stats(self.dst)
        d = self.topo[self.dst]
        rx0 = kernel.run_in_netns(d.netns, kernel.link_stats, d.inside)
        prog = self.prog
        c0 = prog.counters()
        x0 = self._xdp_path(detector) if detector is not None else None
        sent, secs = self.send(seconds)
        time.sleep(0.3)                      # tbf drains its queue
        rx1 = kernel.run_in_netns(d.netns, kernel.link_stats, d.inside)
        q1 = self.topo.qdisc_stats(self.dst)
        dq = {k: q1[k] - q0[k] for k in ("packets", "bytes", "drops", "overlimits")}
        res = Phase(phase, secs, sent, len(self.gen.frame),
                    rx1.get("rx_bytes", 0) - rx0.get("rx_bytes", 0),
                    rx1.get("rx_packets", 0) - rx0.get("rx_packets", 0), dq,
                    (prog.counters() - c0)["DROP"], parse_rate(self.rate))
        if x0 is not None:
            x1 = self._xdp_path(detector)
            res.xdp_path = {k: x1[k] - x0[k] for k in x1}
        if phase == "policed":
            res.police_burst = self.police_burst
        self.phases.append(res)
        return res

    def _mark(self, phase: str) -> None:
        """A dotted line and the phase's name on the live chart where it starts."""
        plot = getattr(self, "_plot", None)          # use() runs in __post_init__ before plot()
        if plot is not None and plot.running:
            # drawn by the sampler's thread (one thread changes the chart's document)
            label = phase + (f" ({self.police_burst})" if phase == "policed" else "")
            self._marks.append((time.monotonic() - self._plot_t0, label))

    def explain(self):
        """What the phases measured, in words (Markdown), and where this run differs from
        what the lab expects (tbf near its rate, XDP far above it, the policer near it)."""
        from IPython.display import Markdown
        rate = parse_rate(self.rate) / 1e6
        out = [f"**Measured in this run** (shaped to {rate:g} Mbit/s, offered {self.offered}):"]
        for p in self.phases:
            d = p.delivered_mbps
            line = f"- `{p.phase}`" + (f" (burst {p.police_burst})" if p.police_burst else "") + \
                f": {d:.1f} Mbit/s delivered of {p.offered_mbps:.1f} offered ({d / rate:.1f}× the tbf rate)"
            if p.phase == "kernel":
                line += f"; tbf dropped {p.qdisc.get('drops', 0):,} packets"
                if d < 0.8 * rate:
                    line += (" — less than its rate: on a busy machine tbf's timer-driven dequeue "
                             "runs late (the lab machine delivers ≈ the rate)")
            elif p.phase == "xdp":
                line += f"; tbf saw {p.qdisc.get('packets', 0):,} packets: the redirected frames bypassed it"
            elif p.phase == "policed":
                line += f"; the policer dropped {p.xdp_drops:,}"
            out.append(line + ".")
        low = [p for p in self.phases if p.offered_mbps <= SHOWS_EFFECT * rate]
        if low:
            out.append(f"\nThe sender offered too little to show the effect in "
                       f"{', '.join(f'`{p.phase}`' for p in low)}: "
                       f"{', '.join(f'{p.offered_mbps:.1f}' for p in low)} Mbit/s, not clearly more than "
                       f"the {rate:g} Mbit/s rate ({SHOWS_EFFECT:g}×), so tbf and the policer had little "
                       "or nothing to hold back there (the check asserts shaping and policing only where "
                       "the sender offered more). Re-run on a quieter machine to see them.")
        want = parse_rate(self.offered) / 1e6
        if self.phases and min(p.offered_mbps for p in self.phases) < 0.8 * want:
            out.append(f"\nThis machine differs: the sender offered less than {want:g} Mbit/s "
                       "(its line-rate bursts run late on a busy machine); the lab machine offers all of it.")
        pol = [p for p in self.phases if p.phase == "policed" and p.police_burst]
        if len({p.police_burst for p in pol}) > 1:
            lo, hi = min(pol, key=lambda p: parse_size(p.police_burst)), max(pol, key=lambda p: parse_size(p.police_burst))
            if lo.delivered_mbps < 0.75 * hi.delivered_mbps:
                out.append(f"\nThe {lo.police_burst} bucket let {lo.delivered_mbps / max(hi.delivered_mbps, 1e-9):.0%} "
                           f"of what the {hi.police_burst} bucket let through: the sender's bursts overflow "
                           "a small bucket.")
            else:
                out.append(f"\nHere the {lo.police_burst} bucket let about as much through as the "
                           f"{hi.police_burst} one ({lo.delivered_mbps:.1f} vs {hi.delivered_mbps:.1f} Mbit/s): "
                           "this machine differs from the lab's — a slower sender sends smaller bursts.")
        return Markdown("\n".join(out))

    def results(self):
        import pandas as pd
        return pd.DataFrame([p.row() for p in self.phases])

    def plot(self, hz: float = 4, window: float = 60):
        """A live bokeh chart: delivered Mbit/s at h2 against the shaping rate, and drops/s
        (tbf's and the XDP policer's)."""
        import pandas  # noqa: F401  bokeh imports it lazily when streaming: not on two threads at once
        from bokeh.layouts import column
        from bokeh.models import ColumnDataSource, Span
        from bokeh.plotting import figure
        src = ColumnDataSource({"t": [], "delivered": [], "tbf_drops": [], "xdp_drops": []})
        f1 = figure(title=f"delivered to {self.dst} (Mbit/s); dashed: tbf rate", height=220,
                    sizing_mode="stretch_width", tools="pan,wheel_zoom,reset,hover")
        f1.line("t", "delivered", source=src, line_width=2, color="#1f77b4")
        f1.add_layout(Span(location=parse_rate(self.rate) / 1e6, dimension="width",
                           line_dash="dashed", line_color="#555"))
        f2 = figure(title="drops/s: tbf (qdisc) orange, XDP policer red", height=200, sizing_mode="stretch_width", x_range=f1.x_range,
                    x_axis_label="seconds", tools="pan,wheel_zoom,reset,hover")
        f2.line("t", "tbf_drops", source=src, line_width=2, color="#ff7f0e", legend_label="tbf (qdisc)")
        f2.line("t", "xdp_drops", source=src, line_width=2, color="#d62728", legend_label="XDP policer")
        f2.legend.visible = False                    # the title names the colours: no box over the lines
        # each phase's start: a dotted line on both charts, its name on top
        from bokeh.models import LabelSet
        self._phase_src = phases = ColumnDataSource({"t": [], "label": [], "y": []})
        for f in (f1, f2):
            f.vspan(x="t", source=phases, line_dash="dotted", line_color="#444", line_width=1.5)
        f1.add_layout(LabelSet(x="t", y="y", y_units="screen", text="label", source=phases, x_offset=4,
                               text_font_size="9pt", text_color="#333"))
        if self._plot is not None:
            self._plot.stop()
        self._plot_t0 = time.monotonic()
        self._marks = []
        rates = rate_reader(self.totals)

        def read():
            while self._marks:
                t, label = self._marks.pop(0)
                y = 4 + 14 * (len(phases.data["t"]) % 2)   # alternate heights: close phases stay readable
                phases.stream({"t": [t], "label": [label], "y": [y]})
            return rates()
        self._plot = Sampler(read, src, interval=1 / hz, rollover=int(window * hz),
                             alive=lambda: self.link is None or self.link.attached).start()
        return live.widget(column(f1, f2, sizing_mode="stretch_width"))

    def close(self) -> None:
        self._closed = True
        if self._plot is not None:
            self._plot.stop()
        self.gen.close()
        self.prog.close()
        try:
            self.topo.unshape(self.dst)
        except Exception:
            pass

    def _repr_html_(self) -> str:
        return (f"<b>fast &rarr; slow</b>: {self.src} offers {self.offered} of {self.size} B frames; "
                f"the router's link to {self.dst} is shaped to {self.rate} (tbf)"
                + (self.results().to_html(index=False) if self.phases else ""))
