"""The integration smoke suite: a few real-kernel checks, one JSON line per check.

    python -m xdplab.dev.smoke                          # on this kernel, on a private veth lab
    python -m xdplab.dev.smoke --dev eth0 --peer 10.231.0.1   # on a NIC (inside a matrix guest)

Each line is ``XDPLAB-SMOKE {"check": ..., "status": "pass"|"skip"|"fail", "detail": ...}``;
``xdplab matrix`` boots kernels under qemu, runs this inside and parses those lines.
A check skips (never fails) when the kernel lacks the feature, naming the version it needs.

``--dev``: the interface under test (traffic = pinging ``--peer``, whose replies arrive on
``dev``). Without it a two-host veth topology of its own is built and torn down.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import struct
import subprocess
import sys
import time
import traceback
from pathlib import Path

from .. import kernel
from ..kernel import features
from ..programs.program import detach_all
from ..errors import NotSupported, XDPLabError
from .matrix import END_TAG, RESULT_TAG
from ..programs.program import Program
from ..net.topology import Topology
from ..programs.program import Program, XDPProgram
from ..net import drivers
from ..net.afxdp import XSK
from ..tools.drops import DropDetector
import socket
from ..tools import memory
from ..net import redirect

PINGS = 5
UDP_PORT = 4242
MARK = b"xdplab-smoke"

# One source, one compile (BCC is slow under TCG): every check takes its function from it.
# Built with count=False, so each function counts its own action in xdplab_actions.
SRC = r"""
int smoke_pass(struct xdp_md *ctx) { return xdplab_count(ctx, XDP_PASS); }

int smoke_drop(struct xdp_md *ctx) { return xdplab_count(ctx, XDP_DROP); }

int smoke_aborted(struct xdp_md *ctx) { return xdplab_count(ctx, XDP_ABORTED); }

/* XDP_TX every ICMP frame back with the MACs swapped (ping replies never reach the stack) */
int smoke_tx(struct xdp_md *ctx) {
    void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    struct iphdr *ip = data + sizeof(*eth);
    if ((void *)(ip + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP) || ip->protocol != IPPROTO_ICMP)
        return xdplab_count(ctx, XDP_PASS);
    unsigned char tmp[ETH_ALEN];
    __builtin_memcpy(tmp, eth->h_dest, ETH_ALEN);
    __builtin_memcpy(eth->h_dest, eth->h_source, ETH_ALEN);
    __builtin_memcpy(eth->h_source, tmp, ETH_ALEN);
    return xdplab_count(ctx, XDP_TX);
}

int smoke_live(struct xdp_md *ctx) { return xdplab_count(ctx, XDP_TX); }

BPF_XSKMAP(smoke_xsks, 64);

/* UDP to port 4242 -> the AF_XDP socket of this RX queue (if any), the rest XDP_PASS */
int smoke_xsk(struct xdp_md *ctx) {
    void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    struct iphdr *ip = data + sizeof(*eth);
    struct udphdr *udp = (void *)(ip + 1);
    if ((void *)(udp + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP) || ip->ihl != 5
        || ip->protocol != IPPROTO_UDP || udp->dest != bpf_htons(4242))
        return xdplab_count(ctx, XDP_PASS);
    return xdplab_count(ctx, smoke_xsks.redirect_map(ctx->rx_queue_index, XDP_PASS));
}
"""

# XDP writes 4 bytes of metadata (bpf_xdp_adjust_meta); a TC program counts the sk_buffs
# that arrive carrying them (tests/test_tc.py uses the same pair)
META_XDP = r"""
int stamp(struct xdp_md *ctx)
{
    if (bpf_xdp_adjust_meta(ctx, -4))
        return XDP_PASS;
    u32 *magic = (void *)(long)ctx->data_meta;
    if ((void *)(magic + 1) > (void *)(long)ctx->data)
        return XDP_PASS;
    *magic = 0x58444c42;
    return XDP_PASS;
}
"""

META_TC = r"""
BPF_ARRAY(seen, u64, 2);       /* 0: every skb, 1: skbs carrying XDP's metadata */
int count_meta(struct __sk_buff *skb)
{
    void *data = (void *)(long)skb->data;
    u32 *magic = (void *)(long)skb->data_meta;
    int k = 0;
    u64 *c = seen.lookup(&k);
    if (c)
        __sync_fetch_and_add(c, 1);
    if ((void *)(magic + 1) <= data && *magic == 0x58444c42) {
        k = 1;
        c = seen.lookup(&k);
        if (c)
            __sync_fetch_and_add(c, 1);
    }
    return TC_ACT_OK;
}
"""


class Skip(Exception):
    """The check does not apply here (message says why)."""


class Target:
    """Where the checks run: an interface with a ping peer, or a private veth lab."""

    def __init__(self, dev: str | None, peer: str | None, udp_feed: bool):
        self.topo = None
        self.udp_feed = udp_feed
        if dev is None:
            n = os.getpid()
            self.topo = Topology(hosts=("h1",), prefix=f"xs{n % 100}-", net=200 + n % 50).up()
            h = self.topo["h1"]
            self.dev, self.peer, self.host = h.outside, h.gw4, h
        else:
            self.dev, self.peer, self.host = dev, peer, None

    @property
    def driver(self) -> str:
        try:
            return kernel.ethtool_drvinfo(self.dev)["driver"] or "?"
        except OSError:
            return "?"

    def ping(self, count: int = PINGS) -> int:
        """Replies received for ``count`` pings; the traffic crosses ``dev``'s RX path."""
        if self.host:
            return self.host.ping(self.peer, count, interval=0.05, timeout=1)
        out = _run(["ping", "-n", "-q", "-c", str(count), "-i", "0.05", "-W", "1", self.peer])
        m = re.search(r"(\d+) (?:packets )?received", out)
        return int(m[1]) if m else 0

    def close(self):
        detach_all()
        if self.topo:
            self.topo.down()


def _run(cmd) -> str:
    r = subprocess.run(cmd, capture_output=True, text=True)
    return r.stdout + r.stderr


def ethtool_stats(dev: str) -> dict[str, int]:
    try:
        return kernel.ethtool_stats(dev)
    except OSError:
        return {}


def xdp_tx_stats(dev: str) -> tuple[int, int]:
    """virtio_net's per-TX-queue ``xdp_tx`` / ``xdp_tx_drops`` summed (``tx_queue_N_*`` on
    6.1, ``txN_*`` on 6.12, which also has device totals ``tx_xdp_tx``: not counted twice)."""
    st = ethtool_stats(dev)
    if not st:
        raise AssertionError(f"`ethtool -S {dev}` shows no statistics")
    pick = lambda suffix: sum(v for k, v in st.items() if re.fullmatch(rf"tx(?:_queue_)?\d+_{suffix}", k))
    return pick("xdp_tx"), pick("xdp_tx_drops")


def udp_frame(dst: str, dport: int = 9) -> bytes:
    """Ethernet/IPv4/UDP frame carrying MARK (built by hand: importing scapy takes ~40 s
    in a TCG guest)."""
    udp = struct.pack("!HHHH", dport, dport, 8 + len(MARK), 0) + MARK
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0x4000, 64, 17, 0,
                      socket.inet_aton("10.255.0.1"), socket.inet_aton(dst))
    csum = sum(struct.unpack("!10H", hdr))
    csum = (csum & 0xFFFF) + (csum >> 16)
    csum = ~((csum & 0xFFFF) + (csum >> 16)) & 0xFFFF
    hdr = hdr[:10] + struct.pack("!H", csum) + hdr[12:]
    return b"\x02\x00\x00\x00\x00\x01" + b"\x02\x00\x00\x00\x00\x02" + b"\x08\x00" + hdr + udp


def _release() -> tuple[int, int]:
    return tuple(int(x) for x in re.match(r"(\d+)\.(\d+)", os.uname().release).groups())


def emit(check: str, status: str, detail: str = "", **extra) -> dict:
    r = {"check": check, "status": status, "detail": detail, **extra}
    print(RESULT_TAG + json.dumps(r), flush=True)
    return r


class Suite:
    def __init__(self, t: Target, sabotage: str | None = None):
        self.t, self.sabotage = t, sabotage
        self.progs = {}           # function name -> XDPProgram, all from one BCC object

    def program(self, func: str):
        """``func`` of SRC as an XDPProgram (they share one BPF object and its maps)."""
        if not self.progs:
            raise Skip("needs bcc_compile")
        if func not in self.progs:
            from bcc import BPF
            base = next(iter(self.progs.values()))
            self.progs[func] = XDPProgram(Program(SRC, func=func, count=False), base.bpf,
                                          base.bpf.load_func(func, BPF.XDP))
        return self.progs[func]

    # every check returns a detail string (pass) or raises Skip / NotSupported / AssertionError
    def check_kernel(self):
        q = len(list(Path(f"/sys/class/net/{self.t.dev}/queues").glob("rx-*")))
        return f"{os.uname().release}, {self.t.dev}: {self.t.driver}, {q} rx queues"

    def check_bcc_compile(self):
        t0 = time.monotonic()
        self.progs["smoke_pass"] = Program(SRC, func="smoke_pass", count=False).load()
        return f"compiled+verified in {time.monotonic() - t0:.1f} s"

    def check_native_attach(self):
        p = self.program("smoke_pass")
        link = p.attach(self.t.dev, "native")
        state = kernel.xdp_state(self.t.dev)
        assert state.get("native") == p.id, f"netlink shows {state}, not native id {p.id}"
        return f"bpf_link {link.id}, native on {self.t.driver}"

    def check_counters(self):
        p = self.program("smoke_pass")
        before = p.counters()
        got = self.t.ping()
        delta = p.counters() - before
        assert got == PINGS, f"{got}/{PINGS} ping replies with an XDP_PASS program"
        assert delta["PASS"] >= PINGS, f"XDP_PASS counter +{delta['PASS']} for {PINGS} pings"
        return f"PASS +{delta['PASS']}"

    def check_xdp_drop(self):
        # sabotage: the wrong program (XDP_PASS) where a dropper is expected
        drop = self.program("smoke_pass" if self.sabotage == "drop" else "smoke_drop")
        before = drop.counters()
        drop.attach(self.t.dev, "native", replace=True)
        got = self.t.ping()
        c = drop.counters() - before
        drop.detach()
        assert got == 0, f"{got}/{PINGS} ping replies got through an XDP_DROP program"
        assert c["DROP"] >= PINGS, f"XDP_DROP counter +{c['DROP']} for {PINGS} pings"
        return f"DROP +{c['DROP']}"

    def check_xdp_tx(self):
        if self.t.driver != "virtio_net":
            raise Skip("checked on virtio_net only (the host lab NIC is veth)")
        tx = self.program("smoke_tx")
        before, c0 = xdp_tx_stats(self.t.dev), tx.counters()
        tx.attach(self.t.dev, "native", replace=True)
        got = self.t.ping()
        c = tx.counters() - c0
        # read while attached: virtio_net only lists its XDP TX queues while a program is on
        sent, drops = (a - b for a, b in zip(xdp_tx_stats(self.t.dev), before))
        tx.detach()
        assert got == 0 and c["TX"] >= PINGS, f"{got} replies reached the stack, TX counter {c['TX']}"
        assert sent >= PINGS and drops == 0, f"virtio_net sent {sent} XDP_TX frames, dropped {drops}"
        return f"TX {c['TX']}, virtio xdp_tx +{sent}, drops 0"

    def check_features(self):
        features.require("netdev_genl")
        f = drivers.query(self.t.dev)
        assert f.has("basic"), f"{self.t.dev} ({f.driver}) does not report 'basic': {sorted(f.xdp)}"
        return ", ".join(sorted(f.xdp))

    def check_live_frames(self):
        n = 64
        ifindex = kernel.ifindex(self.t.dev)
        frame = udp_frame(self.t.peer)
        p = self.program("smoke_live")
        c0 = p.counters()
        virtio = self.t.driver == "virtio_net"
        if virtio:
            # virtio_net's ndo_xdp_xmit refuses frames (-ENXIO) unless an XDP program is
            # attached: that is what allocates its XDP TX queues
            self.program("smoke_pass").attach(self.t.dev, "native", replace=True)
            before = xdp_tx_stats(self.t.dev)
        features.require("live_frames")
        kernel.prog_test_run(p.fd, frame, repeat=n, ctx=kernel.xdp_md(len(frame), ifindex),
                             flags=kernel.BPF_F_TEST_XDP_LIVE_FRAMES)
        c = p.counters() - c0
        assert c["TX"] == n, f"program ran {c['TX']} times for {n} live frames"
        if virtio:
            sent, drops = (a - b for a, b in zip(xdp_tx_stats(self.t.dev), before))
            self.program("smoke_pass").detach()
            assert sent >= n and not drops, f"virtio_net sent {sent} of {n} live XDP_TX frames ({drops} dropped)"
            return f"{n} frames XDP_TX out of {self.t.dev} (virtio xdp_tx +{sent})"
        return f"{n} frames through the program in live mode"

    def check_afxdp(self):
        if not self.t.host and not self.t.udp_feed:
            raise Skip("no UDP source towards the guest (user-mode network)")
        prog = self.program("smoke_xsk")       # not xsk.redirect(): no second compile
        # attach first: on virtio_net that adds queue pairs (RX too), and the feed's flow may
        # land on any of them; so one socket per RX queue, the program picks by rx_queue_index
        prog.attach(self.t.dev, "native", replace=True)
        queues = len(list(Path(f"/sys/class/net/{self.t.dev}/queues").glob("rx-*")))
        socks = [XSK(self.t.dev, queue=q, mode="copy", num_frames=512, ring_size=256) for q in range(queues)]
        try:
            for x in socks:
                prog["smoke_xsks"][x.queue] = x.fd
            if self.t.host:
                from scapy.all import IP, UDP
                self.t.host.send(IP(src=self.t.host.ipv4, dst=self.t.peer) / UDP(sport=UDP_PORT, dport=UDP_PORT) / MARK,
                                 count=3)
            got, deadline = {}, time.monotonic() + 5
            while not got and time.monotonic() < deadline:
                for x in socks:
                    if frames := x.recv(3, timeout=0.2):
                        got[x.queue] = frames
        finally:
            prog.detach()
            for x in socks:
                x.close()
        assert got, f"no frame reached the AF_XDP sockets on {queues} RX queues"
        frames = [f for fs in got.values() for f in fs]
        assert all(MARK in f.data for f in frames), f"unexpected frames: {frames}"
        return f"{len(frames)} frames on RX queue(s) {sorted(got)} of {queues} (copy mode)"

    def check_metadata_tc(self):
        stamp = Program(META_XDP, count=False).load()
        tc = Program(META_TC, hook="tc").load()
        try:
            tc.attach(self.t.dev, "ingress")     # tcx: NotSupported before 6.6
            stamp.attach(self.t.dev, "native", replace=True)
            got = self.t.ping()
            seen = tc["seen"].to_dict()
        finally:
            stamp.close()
            tc.close()
        assert got == PINGS, f"{got}/{PINGS} ping replies with XDP_PASS + TC_ACT_OK"
        assert seen.get(1, 0) >= PINGS, f"TC saw {seen} (0: skbs, 1: with XDP's metadata)"
        return f"TC (tcx) read XDP's metadata on {seen[1]} of {seen[0]} sk_buffs"

    def check_drop_detector(self):
        bad = self.program("smoke_aborted")
        ifindex = kernel.ifindex(self.t.dev)
        with DropDetector() as dd:             # its own BCC compile (tracepoint probes)
            bad.attach(self.t.dev, "native", replace=True)
            got = self.t.ping()
            rows = dd.wait(timeout=5, min_drops=PINGS)
            bad.detach()
        mine = [r for r in rows if r.tracepoint == "xdp_exception" and r.ifindex == ifindex]
        lost = sum(r.drops for r in mine)
        assert got == 0, f"{got} replies passed an XDP_ABORTED program"
        assert lost >= PINGS, f"xdp_exception reported {lost} losses on {self.t.dev} for {PINGS} pings: {rows}"
        return f"xdp_exception on {self.t.dev}: {lost} ABORTED frames"

    # --- issue 16 (xdplab.memory): libbpf-style programs, each probed first -------------
    def check_xdp_frags(self):
        memory.require("xdp_frags")
        prog = Program.from_file(memory.BPF_DIR / "frags.c").load()
        try:
            frame = bytearray(udp_frame(self.t.peer)) + bytes(i & 0xFF for i in range(9000))
            r = prog.run(bytes(frame))
            seen = {k: int(v) for k, v in prog["seen"].to_dict().items()}
        finally:
            prog.close()
        assert r.action == "XDP_PASS" and r.data == bytes(frame), f"{r.action}, {len(r.data)} B back"
        assert seen[0] == len(frame) and seen[1] <= memory.LINEAR_MAX, f"buff_len/linear {seen}"
        assert seen[2] == frame[5000] + 1, f"byte 5000: {seen[2] - 1}, not {frame[5000]}"
        return f"{len(frame)} B frame: linear {seen[1]} B + fragments, byte 5000 read (BPF_PROG_RUN)"

    def check_rx_hints(self):
        memory.require("rx_metadata_kfuncs")
        prog = memory.rx_hints_program(self.t.dev)
        try:
            prog.attach(self.t.dev, "native", replace=True)
            self.t.ping(3)
            h = memory.last_hints(prog)
        finally:
            prog.close()
        assert h is not None, "the device-bound program saw no frame"
        res = {"rx_hash": h.hash_err, "rx_timestamp": h.ts_err, "rx_vlan_tag": h.vlan_err}
        bad = {k: v for k, v in res.items() if v not in (0, -95, -61)}
        assert not bad, f"unexpected kfunc returns {bad}"
        if self.t.driver == "veth":
            assert h.hash_err == 0 and h.hash, f"veth implements rx_hash: {h}"
        vlan = "" if features.have("rx_vlan_tag") else f" ({features.skip_message('rx_vlan_tag')})"
        return f"{self.t.driver}: " + ", ".join(f"{k} {memory.Hints.err_name(v)}" for k, v in res.items()) + vlan

    def check_broadcast(self):
        """devmap broadcast over three veth pairs in this namespace (plain `ip link`, no
        netns: cheap under TCG). Frames sent into pair A's far end are flooded by XDP on
        the near ends to B and C (not back to A); XDP_PASS counters on B's and C's far
        ends (which a veth needs to receive redirected frames) count what arrived."""
        memory.require("devmap_broadcast")
        tag = f"xb{os.getpid() % 100}"
        pairs = [(f"{tag}{x}", f"{tag}{x}p") for x in "abc"]
        fds, prog = [], None
        try:
            for near, far in pairs:
                subprocess.run(["ip", "link", "add", near, "type", "veth", "peer", "name", far], check=True)
                for d in (near, far):
                    subprocess.run(["ip", "link", "set", d, "up"], check=True)
                    subprocess.run(["sysctl", "-qw", f"net.ipv6.conf.{d}.disable_ipv6=1"], check=False)
            prog = Program.from_file(memory.BPF_DIR / "flood.c", func="flood").load()
            counters = []
            for near, far in pairs:
                redirect.devmap_set(prog["ports"].fd, kernel.ifindex(near), near, check=False)
                prog.attach(near, "native")
                m = kernel.map_create(6, 4, 16, 1)
                fds.append(m)
                pfd = kernel.prog_load_xdp(redirect._pass_counting(m), "xdplab_peer_pass")
                fds.append(pfd)
                fds.append(kernel.link_create_xdp(pfd, kernel.ifindex(far), "native"))
                counters.append(m)
            def count(m):
                n = kernel.possible_cpus()
                raw = kernel.map_lookup(m, b"\0" * 4, 16 * n)
                return sum(struct.unpack_from("=Q", raw, 16 * i)[0] for i in range(n))
            before = [count(m) for m in counters]
            with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as sk:
                sk.bind((pairs[0][1], 0))
                frame = b"\xff" * 6 + udp_frame("10.255.0.2")[6:]
                for _ in range(5):
                    sk.send(frame)
            time.sleep(0.5)
            got = [count(m) - b for m, b in zip(counters, before)]
            red = prog.counters()["REDIRECT"]
        finally:
            if prog is not None:
                prog.close()
            for fd in reversed(fds):
                os.close(fd)
            for near, _ in pairs:
                subprocess.run(["ip", "link", "del", near], capture_output=True)
        assert red >= 5, f"REDIRECT counted {red} for 5 frames"
        assert got[1] >= 5 and got[2] >= 5 and got[0] == 0, f"delivered per far end {got} (want 0, 5, 5)"
        return f"5 broadcast frames into A -> B +{got[1]}, C +{got[2]}, back to A +{got[0]} (exclude ingress)"

    def check_memory_model(self):
        models = memory.memory_models(self.t.dev, lambda: self.t.ping(3))
        assert models, f"no frame reached the memory-model program on {self.t.dev}"
        return f"{self.t.driver}: " + ", ".join(f"rxq {m.queue} {m.mem_type} (mem id {m.mem_id})" for m in models)

    def check_page_pools(self):
        drop = self.program("smoke_drop")
        with memory.PageWatch() as w:
            drop.attach(self.t.dev, "native", replace=True)
            self.t.ping(20)
            drop.detach()
            time.sleep(0.3)
            t = w.totals(self.t.dev)
        try:
            nl = memory.page_pools(self.t.dev)
            netlink = f"netlink page-pool-get: {len(nl)} pool(s) of {self.t.dev}"
        except NotSupported as e:
            netlink = f"netlink page-pool-get needs >= {e.min_kernel}"
        if self.t.driver == "veth":
            assert t["pools"] >= 1 and 0 < t["held"] == t["released"], f"veth page pool: {t}"
        return (f"{self.t.driver} under XDP_DROP: {t['pools']} page pool(s), {t['held']} pages held, "
                f"{t['released']} released; {netlink}")

    CHECKS = ("kernel", "bcc_compile", "native_attach", "counters", "xdp_drop", "xdp_tx",
              "features", "live_frames", "afxdp", "metadata_tc", "drop_detector",
              "xdp_frags", "rx_hints", "broadcast", "memory_model", "page_pools")

    def run(self, only=None) -> list[dict]:
        results = []
        for name in only or self.CHECKS:
            t0 = time.monotonic()
            try:
                detail = getattr(self, f"check_{name}")()
                r = ("pass", detail or "")
            except Skip as e:
                r = ("skip", str(e))
            except NotSupported as e:
                r = ("skip", f"needs >= {e.min_kernel}" if e.min_kernel else str(e).splitlines()[0])
            except AssertionError as e:
                r = ("fail", str(e) or "assertion failed")
            except XDPLabError as e:
                r = ("fail", f"{type(e).__name__}: {str(e).splitlines()[0]}")
            except Exception as e:
                traceback.print_exc(file=sys.stderr)
                r = ("fail", f"{type(e).__name__}: {e}")
            results.append(emit(name, *r, seconds=round(time.monotonic() - t0, 1)))
        return results


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m xdplab.dev.smoke", description=__doc__.split("\n\n")[0])
    p.add_argument("--dev", help="interface under test (default: a private veth lab)")
    p.add_argument("--peer", help="address to ping through --dev")
    p.add_argument("--udp-feed", action="store_true", help=f"something sends UDP to port {UDP_PORT} on --dev")
    p.add_argument("--only", nargs="+", choices=Suite.CHECKS)
    p.add_argument("--sabotage", choices=["drop"], help="run a wrong program (tests the failure path)")
    a = p.parse_args(argv)
    if a.dev and not a.peer:
        p.error("--dev needs --peer")
    t = Target(a.dev, a.peer, a.udp_feed)
    try:
        results = Suite(t, a.sabotage).run(a.only)
    finally:
        t.close()
    print(END_TAG, flush=True)
    return 1 if any(r["status"] == "fail" for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
