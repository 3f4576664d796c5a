"""How fast do packets reach *Python*? AF_XDP and AF_PACKET receivers, side by side.

    r = xdplab.rxcompare.compare(lab["h2"], seconds=0.5)
    r                    # a table: pps to Python, offered pps, pkts/CPU-second, socket drops
    r.ratio("af_xdp batch", "af_packet")
    r.plot()             # the same as bars

One veth, one sender, one XDP program for every receiver. The sender is xdplab's own
traffic generator (``traffic.Generator``: BPF_PROG_RUN live frames, XDP_TX out of the
host's ``veth0``) on the first CPU, in a thread for the length of each trial; its worker
sits in the bpf(2) syscall, which releases the GIL. Frames land on ``host.outside``, where
``afxdp.redirect_program`` sends UDP to ``port`` to the XSK when one is in the map and
XDP_PASSes it to the stack otherwise (there the AF_PACKET socket takes its copy; the
destination MAC is nobody's, so IP drops the frame right after, without ICMP replies).

The receiving loop runs in the calling thread, pinned to the other CPU(s) for the run;
the veth's NAPI work (the XDP program, the copy into the UMEM, the sk_buffs for AF_PACKET)
runs in softirq on the sender's CPU, as a NIC's interrupts and the application would
sit on different cores.

Receivers:
  ``af_xdp batch``       ``XSK.recv_batch(4096)``: descriptors as numpy, the frames
                         zero-copy views into the UMEM, given back to the fill ring in one put
  ``af_xdp batch+copy``  the same plus ``Batch.data``: every frame's bytes copied into one
                         numpy array (AF_PACKET's ``recv_into`` copies too)
  ``af_xdp per-pkt``     ``XSK.packets()``: one ``bytes`` object per frame
  ``af_packet``          ``socket(AF_PACKET, SOCK_RAW).recv_into()``, one syscall per frame
"""
from __future__ import annotations

import os
import select
import socket
import statistics
import struct
import threading
import time
from dataclasses import dataclass, field
from html import escape

from ..net.afxdp import XSK, redirect_program
from ..errors import XDPLabError
from ..net.traffic import Generator
from ..programs import live

PORT = 4242
ETH_P_ALL = 0x0003
SO_RCVBUFFORCE = 33
SOL_PACKET, PACKET_STATISTICS = 263, 6  # struct tpacket_stats {tp_packets, tp_drops}, reset on read
BATCH = 4096
NOBODY = "02:00:00:00:00:99"          # destination MAC of the test frames: no one's


class Flood:
    """``with Flood(generator, cpu, seconds):`` sends from ``cpu`` for ``seconds`` in a
    thread while the body runs; an error in the sender is raised at the end."""

    def __init__(self, gen: Generator, cpu: int, seconds: float):
        self.gen, self.cpu, self.seconds = gen, cpu, seconds
        self.error = None

    def _run(self):
        try:
            os.sched_setaffinity(0, {self.cpu})    # a thread inherits its creator's CPUs
            self.gen.run(duration=self.seconds, cpus=[self.cpu], progress=False)
        except BaseException as e:                 # noqa: BLE001 - re-raised in __exit__
            self.error = e

    def __enter__(self):
        self.thread = threading.Thread(target=self._run, daemon=True, name="xdplab-flood")
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.thread.join()
        if self.error is not None and exc[0] is None:
            raise self.error


# --- the receiving loops: each returns how many frames reached Python ------------------

def rx_afxdp_batch(xsk: XSK, seconds: float) -> int:
    n, end = 0, time.monotonic() + seconds
    while time.monotonic() < end:
        n += len(xsk.recv_batch(BATCH, timeout=0.01))
    xsk.recv_batch(0)                                # give the last batch back
    return n


def rx_afxdp_batch_copy(xsk: XSK, seconds: float) -> int:
    n, end = 0, time.monotonic() + seconds
    while time.monotonic() < end:
        n += len(xsk.recv_batch(BATCH, timeout=0.01).data)
    xsk.recv_batch(0)
    return n


def rx_afxdp_packets(xsk: XSK, seconds: float) -> int:
    n, end = 0, time.monotonic() + seconds
    for _ in xsk.packets(timeout=0.1):
        n += 1
        if not n & 255 and time.monotonic() >= end:
            break
    return n


def rx_afpacket(sock: socket.socket, seconds: float) -> int:
    buf = bytearray(2048)
    n, end = 0, time.monotonic() + seconds
    recv_into = sock.recv_into
    while True:
        try:
            recv_into(buf)
        except BlockingIOError:                      # SO_RCVTIMEO expired
            if time.monotonic() >= end:
                break
            continue
        n += 1
        if not n & 255 and time.monotonic() >= end:
            break
    return n


AF_XDP = {"af_xdp batch": rx_afxdp_batch, "af_xdp batch+copy": rx_afxdp_batch_copy,
          "af_xdp per-pkt": rx_afxdp_packets}
RECEIVERS = (*AF_XDP, "af_packet")


@dataclass
class Trial:
    receiver: str
    received: int             # frames that reached Python
    seconds: float            # wall clock of the receiving loop
    cpu: float                # CPU seconds of the receiving thread
    offered: int              # frames the XDP program sent this receiver's way (REDIRECT
                              # verdicts for AF_XDP, PASS for AF_PACKET)
    drops: int = 0            # frames the socket dropped: XDP_STATISTICS rx_dropped + rx_ring_full,
                              # or AF_PACKET's PACKET_STATISTICS tp_drops (receive buffer full)
    queued: int = 0           # frames received but not read when the trial ended (XSK.drain())


@dataclass
class Comparison:
    """Trials of each receiver; medians per receiver in ``rows``."""
    trials: list[Trial]
    kernel: str
    send_cpu: int
    rx_cpus: list[int]
    frame_len: int
    xsk_stats: dict = field(default_factory=dict)

    def _med(self, name: str, fn) -> float:
        vals = [fn(t) for t in self.trials if t.receiver == name]
        return statistics.median(vals) if vals else 0.0

    @property
    def receivers(self) -> list[str]:
        return [r for r in RECEIVERS if any(t.receiver == r for t in self.trials)]

    @property
    def rows(self) -> list[dict]:
        return [{"receiver": r,
                 "pps": self._med(r, lambda t: t.received / t.seconds),
                 "offered_pps": self._med(r, lambda t: t.offered / t.seconds),
                 "per_cpu_second": self._med(r, lambda t: t.received / t.cpu if t.cpu else 0.0),
                 "drops": sum(t.drops for t in self.trials if t.receiver == r),
                 "trials": sum(t.receiver == r for t in self.trials)} for r in self.receivers]

    def pps(self, receiver: str) -> float:
        return self._med(receiver, lambda t: t.received / t.seconds)

    def ratio(self, a: str, b: str = "af_packet", per_cpu: bool = False) -> float:
        """Median rate of receiver ``a`` over ``b`` (wall clock, or per CPU-second)."""
        key = "per_cpu_second" if per_cpu else "pps"
        r = {row["receiver"]: row[key] for row in self.rows}
        if not r.get(b):
            raise XDPLabError(f"no {b} rate to divide by (receivers measured: {self.receivers})")
        return r[a] / r[b]

    def kept_up(self, receiver: str) -> bool:
        """Did the receiver take (nearly) all the sender offered? Then its rate is the
        sender's, and pkts/CPU-second says more."""
        row = next(r for r in self.rows if r["receiver"] == receiver)
        return row["pps"] > 0.9 * row["offered_pps"]

    def __str__(self) -> str:
        n = max(r["trials"] for r in self.rows)
        lines = [f"{self.kernel}: sender + NAPI on CPU {self.send_cpu}, Python on {self.rx_cpus}, "
                 f"{self.frame_len}-byte UDP frames, medians of {n} trial(s), copy mode on veth",
                 f"{'receiver':20}{'pps to Python':>15}{'offered pps':>14}{'pkts/CPU-s':>13}"
                 f"{'socket drops':>14}"]
        for r in self.rows:
            lines.append(f"{r['receiver']:20}{r['pps']:15,.0f}{r['offered_pps']:14,.0f}"
                         f"{r['per_cpu_second']:13,.0f}{r['drops']:14,}"
                         f"{'  (kept up: the sender is the limit)' if self.kept_up(r['receiver']) else ''}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<Comparison of {', '.join(self.receivers)}>\n{self}"

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{h}</th>" for h in ("receiver", "pps to Python", "offered pps",
                                                   "pkts per CPU-second", "socket drops", ""))
        base = self.pps("af_packet")

        def note(r):
            ratio = (f"{r['pps'] / base:.1f}&times; AF_PACKET"
                     if base and r["receiver"] != "af_packet" else "")
            return ratio + (" · kept up with the sender" if self.kept_up(r["receiver"]) else "")
        body = "".join(
            f"<tr><td><code>{escape(r['receiver'])}</code></td><td>{r['pps']:,.0f}</td>"
            f"<td>{r['offered_pps']:,.0f}</td><td>{r['per_cpu_second']:,.0f}</td>"
            f"<td>{r['drops']:,}</td><td>{note(r)}</td></tr>" for r in self.rows)
        return (f"<b>Packets into Python</b> ({escape(self.kernel)}; sender + NAPI on CPU "
                f"{self.send_cpu}, Python on {self.rx_cpus}; {self.frame_len}-byte frames; medians)"
                f"<table><tr>{head}</tr>{body}</table>")

    def explain(self):
        """What this run measured, in words (Markdown): the order of the receivers, their
        ratio to AF_PACKET, who kept up and who dropped; and where this machine differs
        from the lab machine's benchmark (batch 4.0-4.8x AF_PACKET, 2 vCPUs, idle)."""
        from IPython.display import Markdown
        rows = sorted(self.rows, key=lambda r: -r["pps"])
        base = self.pps("af_packet")
        order = " > ".join(f"`{r['receiver']}`" for r in rows)
        lines = [f"**Measured in this run** ({self.kernel}, medians): {order}."]
        for r in rows:
            part = f"- `{r['receiver']}`: {r['pps'] / 1e6:.2f} M packets/s"
            if base and r["receiver"] != "af_packet":
                part += f", **{r['pps'] / base:.1f}× AF_PACKET**"
            if self.kept_up(r["receiver"]):
                part += " — kept up with the sender (its rate is the sender's)"
            if r["drops"]:
                part += f"; {r['drops']:,} socket drops (its ring/buffer was full)"
            lines.append(part + ".")
        if base and "af_xdp batch" in self.receivers:
            b = self.pps("af_xdp batch") / base
            if b < 4.0:
                lines.append(f"\nThis machine differs from the lab machine's benchmark (batch 4.0–4.8× "
                             f"AF_PACKET): here {b:.1f}×. Other work on the CPUs (other notebooks, "
                             "a busy host) slows the Python loops unevenly; socket drops show "
                             "where a receiver fell behind. Re-run the cell on a quiet machine to compare.")
            else:
                lines.append(f"\nAs on the lab machine's benchmark (4.0–4.8×): batching is what pays "
                             f"in Python ({b:.1f}× here).")
        if base and "af_xdp batch" in self.receivers and self.pps("af_xdp batch") < base:
            lines.append("\nUnexpected order: the batch API came in below AF_PACKET — a receiver "
                         "that lost its CPU to other work mid-run does that; run the cell again.")
        return Markdown("\n".join(lines))

    def plot(self):
        """Bars: packets per second into Python and per CPU-second of the receiver."""
        from bokeh.layouts import row
        from bokeh.models import ColumnDataSource
        from bokeh.plotting import figure
        rows = self.rows
        src = ColumnDataSource({"receiver": [r["receiver"] for r in rows],
                                "pps": [r["pps"] / 1e6 for r in rows],
                                "cpu": [r["per_cpu_second"] / 1e6 for r in rows],
                                "color": ["#9467bd" if r["receiver"].startswith("af_xdp") else "#7f7f7f"
                                          for r in rows]})
        figs = []
        for col, title in (("pps", "packets/s into Python (millions)"),
                           ("cpu", "packets per CPU-second (millions)")):
            f = figure(y_range=[r["receiver"] for r in reversed(rows)], height=220, width=470,
                       title=title, toolbar_location=None, min_border_left=120, min_border_right=20)
            f.hbar(y="receiver", right=col, height=0.7, color="color", source=src)
            f.x_range.start = 0
            figs.append(f)
        return live.widget(row(*figs))


def flood_frame(host, port: int = PORT) -> bytes:
    """A 60-byte UDP frame from ``host`` to ``port`` on its gateway, for nobody's MAC."""
    from scapy.all import IP, UDP, Ether, raw
    return raw(Ether(src=host.mac, dst=NOBODY) / IP(src=host.ipv4, dst=host.gw4)
               / UDP(sport=1234, dport=port) / (b"x" * 18))


def _af_packet(dev: str) -> socket.socket:
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    try:
        s.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 64 << 20)
        s.bind((dev, 0))
        # block in recv() for at most 10 ms: no poll() per packet, and no busy spinning
        # that would count against AF_PACKET's CPU time when it keeps up
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("=qq", 0, 10_000))
    except BaseException:
        s.close()
        raise
    return s


def _settled(prog, quiet: float = 0.01, limit: float = 1.0):
    """The program's counters once they stopped moving: the sender has returned, but the
    veth may still be running NAPI over the frames queued on its ring (up to 256 a queue)."""
    last, deadline = prog.counters(), time.monotonic() + limit
    while time.monotonic() < deadline:
        time.sleep(quiet)
        now = prog.counters()
        if now == last:
            break
        last = now
    return last


FIRST_FRAME_TIMEOUT = 30.0    # seconds the sender may take to get its first frame out


def _first_frame(fd: int, flood: "Flood", receiver: str,
                 timeout: float = FIRST_FRAME_TIMEOUT) -> None:
    """Wait (without reading) until a frame is ready on ``fd`` (an XSK's RX ring, or the
    AF_PACKET socket), the sender failed, or ``timeout`` passed."""
    p = select.poll()
    p.register(fd, select.POLLIN)
    deadline = time.monotonic() + timeout
    while not p.poll(20):
        if not flood.thread.is_alive():       # the sender is done (or failed: __exit__ raises)
            if flood.error is None and not p.poll(0):
                raise XDPLabError(f"{receiver}: the sender finished without one frame reaching "
                                  "the socket", hint="is another XDP program attached to the host?")
            return
        if time.monotonic() > deadline:
            raise XDPLabError(f"{receiver}: no frame from the sender within {timeout:.0f} s",
                              hint="the machine may be overloaded; run the comparison again")


def _packet_drops(sock: socket.socket) -> int:
    """Frames the AF_PACKET socket dropped since the last call (PACKET_STATISTICS)."""
    return struct.unpack("=II", sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8))[1]


def _drain(sock: socket.socket) -> int:
    """Read what is queued on the socket; returns how many frames that was."""
    n = 0
    try:
        while True:
            sock.recv(2048, socket.MSG_DONTWAIT)
            n += 1
    except BlockingIOError:
        return n


def compare(host, seconds: float = 1.0, trials: int = 1, *, receivers=RECEIVERS,
            port: int = PORT, progress: bool = True) -> Comparison:
    """Run each receiver for ``trials`` trials of ``seconds`` on ``host.outside`` (which
    must have no XDP program of its own) with the generator flooding from ``host``."""
    bad = [r for r in receivers if r not in RECEIVERS]
    if bad:
        raise XDPLabError(f"unknown receiver(s) {bad}", hint=f"choose from {list(RECEIVERS)}")
    cpus = sorted(os.sched_getaffinity(0))
    send_cpu, rx_cpus = cpus[0], cpus[1:] or cpus[:1]
    frame = flood_frame(host, port)
    runs: list[Trial] = []
    xsk_stats: dict = {}
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=trials * len(receivers), unit="trial", desc="receivers")
    prog = redirect_program(udp_port=port)
    gen = None
    try:
        prog.attach(host.outside, "native")        # the same program for every receiver
        gen = Generator(frame, host)
        os.sched_setaffinity(0, set(rx_cpus))       # this thread receives; Flood pins itself

        def trial(name, fn, arg, xsk=None):
            c0, s0 = prog.counters(), xsk.stats() if xsk else None
            if not xsk:
                _packet_drops(arg)                      # reset the counters
            with Flood(gen, send_cpu, seconds) as flood:
                # the window opens at the first frame, not when the sender's thread was
                # started: on a busy machine the sender can take longer to get going than
                # the whole window (the receiver then counted 0 and the ring filled after)
                _first_frame(xsk.fd if xsk else arg.fileno(), flood, name)
                t0, cpu0 = time.monotonic(), time.thread_time()
                n = fn(arg, seconds)
                dt, cpu = time.monotonic() - t0, time.thread_time() - cpu0
            seen = _settled(prog) - c0
            if xsk:
                s1 = xsk.stats()
                drops = s1["rx_dropped"] - s0["rx_dropped"] + s1["rx_ring_full"] - s0["rx_ring_full"]
                runs.append(Trial(name, n, dt, cpu, seen["REDIRECT"], drops, xsk.drain()))
            else:
                drops = _packet_drops(arg)
                runs.append(Trial(name, n, dt, cpu, seen["PASS"], drops, _drain(arg)))
            if bar is not None:
                bar.update(1)

        todo = [r for r in receivers if r in AF_XDP]
        if todo:
            with XSK(host.outside, 0, ring_size=8192, num_frames=16384) as xsk:
                xsk.redirect(program=prog)
                s0 = xsk.stats()
                for _ in range(trials):
                    for name in todo:
                        xsk.drain()                        # start from an empty RX ring
                        trial(name, AF_XDP[name], xsk, xsk)
                xsk_stats = {k: v - s0[k] for k, v in xsk.stats().items()}
            # closing the socket detached the program and emptied its map slot: attached
            # again, the same program returns XDP_PASS and the frames reach AF_PACKET
            prog.attach(host.outside, "native")
        if "af_packet" in receivers:
            sock = _af_packet(host.outside)
            try:
                for _ in range(trials):
                    _drain(sock)
                    trial("af_packet", rx_afpacket, sock)
            finally:
                sock.close()
    finally:
        os.sched_setaffinity(0, set(cpus))
        if bar is not None:
            bar.close()
        if gen is not None:
            gen.close()
        prog.close()
    return Comparison(runs, os.uname().release, send_cpu, rx_cpus, len(frame), xsk_stats)
