"""What a driver can do for XDP: the kernel's own answer, per interface.

Since Linux 6.3 every driver declares ``xdp_features`` (enum netdev_xdp_act), reported by
the ``netdev`` generic netlink family (NETDEV_CMD_DEV_GET), together with the XDP RX
metadata kfuncs it backs and AF_XDP TX features. ``query`` reads them for one interface
(also inside a lab netns), ``table`` for many; both show as a table in a notebook.

    xdplab.features.table()                         # every interface of the root netns
    xdplab.features.table([lab["h1"], "eth0"])      # a lab host (both veth ends) + eth0
    f = xdplab.features.query("xl-h1"); f.ndo_xmit  # one flag

The flags are not static: veth only turns on ``ndo-xmit`` (it can be the *target* of an
XDP_REDIRECT) while its peer has an XDP program (or GRO), virtio_net only while an XDP
program is attached to it. ``redirect.peer_program_effect(host)`` shows that on a lab host.
On kernels without the family (< 6.3) the flags are unknown; ``probe=True`` then tries a
native attach on interfaces where that is safe.
"""
from __future__ import annotations

import errno
import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from html import escape

from .. import failures, kernel
from ..errors import NotSupported, XDPLabError
from .topology import Host
from .topology import NETNS_DIR

MIN_KERNEL = kernel.features.get("netdev_genl").min_kernel     # the registry's (6.3)


@dataclass(frozen=True)
class Flag:
    name: str
    bit: int
    meaning: str
    if_missing: str = ""


# enum netdev_xdp_act (include/uapi/linux/netdev.h)
XDP_FLAGS = (
    Flag("basic", 1, "native (driver) XDP with XDP_ABORTED, XDP_DROP, XDP_PASS and XDP_TX",
         "no native XDP: attach in generic (skb) mode; it runs after the skb is built, "
         "so it is slower, and XDP_TX/REDIRECT go through the normal xmit path"),
    Flag("redirect", 2, "a native program on this device may return XDP_REDIRECT "
         "(bpf_redirect, devmap, cpumap, xskmap)",
         "redirect from here only in generic mode; or XDP_PASS and redirect in tc (bpf_redirect)"),
    Flag("ndo-xmit", 4, "this device can be the TARGET of XDP_REDIRECT (implements "
         "ndo_xdp_xmit, and its XDP TX resources exist right now)",
         "frames redirected here are dropped (tracepoint xdp:xdp_redirect_err, -EOPNOTSUPP "
         "/ -ENXIO); veth: give the PEER an XDP program (XDP_PASS will do) or turn GRO on "
         "there; virtio_net: attach any XDP program to the target itself"),
    Flag("xsk-zerocopy", 8, "AF_XDP zero-copy: the driver DMAs straight into the UMEM",
         "AF_XDP works in copy mode only: bind with XDP_COPY (or no flag)"),
    Flag("hw-offload", 16, "the NIC can run the program itself (XDP_FLAGS_HW_MODE)",
         "the program runs on the host CPU (the normal case)"),
    Flag("rx-sg", 32, "multi-buffer RX: frames larger than a page reach programs loaded "
         "with BPF_F_XDP_HAS_FRAGS (SEC xdp.frags), read with bpf_xdp_load_bytes()",
         "no jumbo frames with native XDP: keep the MTU at ~3.5 kB or less "
         "(attaching to a large-MTU device fails with EINVAL)"),
    Flag("ndo-xmit-sg", 64, "multi-buffer frames can be redirected INTO this device",
         "multi-buffer frames redirected here are dropped"),
)
# enum netdev_xdp_rx_metadata: kfuncs a program can call to read NIC RX metadata
RX_METADATA_FLAGS = (
    Flag("timestamp", 1, "bpf_xdp_metadata_rx_timestamp(): the NIC's RX timestamp",
         "the kfunc returns -EOPNOTSUPP; take bpf_ktime_get_ns() instead"),
    Flag("hash", 2, "bpf_xdp_metadata_rx_hash(): the NIC's RSS hash and its type",
         "hash the headers yourself (e.g. jhash over the 5-tuple)"),
    Flag("vlan-tag", 4, "bpf_xdp_metadata_rx_vlan_tag(): a VLAN tag the NIC stripped",
         "the tag is in the packet (parse the 802.1Q header) or lost if the NIC strips it"),
)
# enum netdev_xsk_flags: AF_XDP TX metadata the driver honours
XSK_FLAGS = (
    Flag("tx-timestamp", 1, "AF_XDP TX metadata: hardware TX timestamps"),
    Flag("tx-checksum", 2, "AF_XDP TX metadata: L4 checksum offload"),
    Flag("tx-launch-time-fifo", 4, "AF_XDP TX metadata: launch time (FIFO mode)"),
)
ALL_FLAGS = {f.name: f for f in XDP_FLAGS + RX_METADATA_FLAGS + XSK_FLAGS}
# what to do when a device lacks a flag: failure rows (kind 'driver-feature'), as every other
# piece of failure knowledge (xdplab.failures)
failures.register(*(failures.Row(f"no-{f.name}", f"no {f.name}", kind="driver-feature", what=f.meaning,
                                 fix=f.if_missing, when={"flag": f.name})
                    for f in XDP_FLAGS + RX_METADATA_FLAGS + XSK_FLAGS if f.if_missing))


def if_missing(name: str) -> str:
    """What to do on a device without flag ``name`` (its 'driver-feature' failure row)."""
    row = failures.find("driver-feature", flag=name)
    return row.fix if row else ""


def _names(bits: int | None, flags) -> frozenset | None:
    return None if bits is None else frozenset(f.name for f in flags if bits & f.bit)


@dataclass(frozen=True)
class Features:
    """XDP features of one interface at one moment. ``xdp``/``rx_metadata``/``xsk`` are
    sets of flag names, or None when unknown (``error`` says why)."""

    ifname: str
    netns: str | None
    ifindex: int
    driver: str
    kind: str
    rx_queues: int
    tx_queues: int
    xdp: frozenset | None
    xdp_zc_max_segs: int | None = None
    rx_metadata: frozenset | None = None
    xsk: frozenset | None = None
    programs: dict = field(default_factory=dict)       # attached now: {mode: prog id}
    error: str = ""
    probed: dict = field(default_factory=dict)          # fallback probes: {what: bool}

    def has(self, name: str) -> bool | None:
        """True/False for a flag name ('ndo-xmit', 'hash', ...), None when unknown."""
        name = name.replace("_", "-")
        if name not in ALL_FLAGS:
            raise KeyError(f"no XDP feature {name!r}; known: {', '.join(ALL_FLAGS)}")
        for group, flags in ((self.xdp, XDP_FLAGS), (self.rx_metadata, RX_METADATA_FLAGS),
                             (self.xsk, XSK_FLAGS)):
            if any(f.name == name for f in flags):
                if group is None:
                    return self.probed.get(name)
                return name in group
        return None

    def __contains__(self, name: str) -> bool:
        return bool(self.has(name))

    basic = property(lambda s: s.has("basic"))
    redirect = property(lambda s: s.has("redirect"))
    ndo_xmit = property(lambda s: s.has("ndo-xmit"))
    xsk_zerocopy = property(lambda s: s.has("xsk-zerocopy"))
    rx_sg = property(lambda s: s.has("rx-sg"))
    ndo_xmit_sg = property(lambda s: s.has("ndo-xmit-sg"))

    @property
    def where(self) -> str:
        return f"{self.netns}:{self.ifname}" if self.netns else self.ifname

    def missing(self) -> list[Flag]:
        """The XDP action flags this device lacks (with what to do instead)."""
        return [f for f in XDP_FLAGS if self.has(f.name) is False and f.name != "hw-offload"]

    def __repr__(self) -> str:
        flags = "unknown" if self.xdp is None else (
            ",".join(f.name for f in XDP_FLAGS if f.name in self.xdp) or "none")
        return (f"<Features {self.where} ({self.driver}, {self.rx_queues}rx/{self.tx_queues}tx "
                f"queues): xdp={flags}>")

    def _repr_html_(self) -> str:
        return FeatureTable([self])._repr_html_()


# --- querying --------------------------------------------------------------------------

def _link_facts(ifname: str) -> dict:
    """ifindex, link kind and queue counts from rtnetlink and ethtool (calling thread's netns)."""
    link = kernel.netlink.link_queues(ifname)
    if not link:
        return {}
    kind, rxq, txq = link["kind"], link["rx_queues"], link["tx_queues"]
    try:
        driver = kernel.ethtool_drvinfo(ifname)["driver"]
    except OSError:
        driver = kind
    try:
        ch = kernel.ethtool_channels(ifname)
    except OSError:
        ch = None
    if ch and (ch["combined"] or ch["rx"] or ch["tx"]):     # the queues in use, not allocated
        rxq, txq = ch["combined"] + ch["rx"], ch["combined"] + ch["tx"]
    return {"ifindex": link["ifindex"], "kind": kind, "driver": driver, "rx_queues": rxq,
            "tx_queues": txq}


def _query_here(ifname: str, netns: str | None, probe: bool) -> Features:
    facts = _link_facts(ifname)
    if not facts:
        where = f" in netns {netns}" if netns else ""
        raise XDPLabError(f"no interface {ifname!r}{where}",
                          hint="`ip -br link` lists interfaces; lab hosts: lab['h1'].outside")
    programs = kernel.xdp_state(ifname)
    try:
        (row,) = kernel.netdev_dev_get(facts["ifindex"])
    except NotSupported as e:
        probed = {"basic": probe_native(ifname)} if probe and netns is None else {}
        return Features(ifname, netns, xdp=None, programs=programs, error=str(e).splitlines()[0],
                        probed={k: v for k, v in probed.items() if v is not None}, **facts)
    return Features(ifname, netns, xdp=_names(row["xdp_features"], XDP_FLAGS),
                    xdp_zc_max_segs=row["xdp_zc_max_segs"],
                    rx_metadata=_names(row["xdp_rx_metadata_features"], RX_METADATA_FLAGS),
                    xsk=_names(row["xsk_features"], XSK_FLAGS), programs=programs, **facts)


def query(dev, netns: str | None = None, *, probe: bool = False) -> Features:
    """The XDP features of ``dev`` (an interface name, a lab ``Host`` = its root-side veth,
    or ``(netns, ifname)``), read from the kernel now.

    ``probe=True``: on kernels without the netdev family, find out whether native XDP
    works by attaching an XDP_PASS program for a moment (never on an interface with the
    default route or with a program already attached)."""
    dev, netns = _resolve(dev, netns)
    if netns:
        if not (NETNS_DIR / netns).exists():
            raise XDPLabError(f"no network namespace {netns!r}", hint="`ip netns` lists them")
        return kernel.run_in_netns(netns, _query_here, dev, netns, probe)
    return _query_here(dev, None, probe)


def _resolve(dev, netns):
    d = kernel.resolve_device(dev, netns)
    return d.name, d.netns


def table(devs=None, *, probe: bool = False, label: str = "") -> "FeatureTable":
    """A FeatureTable for ``devs``: names, ``(netns, ifname)``, lab Hosts (a Host gives
    both ends of its veth), or None for every interface of the root namespace."""
    if devs is None:
        devs = kernel.netlink.link_names()
    rows = []
    for d in devs if isinstance(devs, (list, tuple)) else [devs]:
        if isinstance(d, Host):
            rows += [query(d, probe=probe), query((d.netns, d.inside), probe=probe)]
        else:
            rows.append(query(d, probe=probe))
    return FeatureTable(rows, title=label)


@contextmanager
def tuntap(name: str, mode: str = "tap", up: bool = True):
    """A tun or tap device for the duration of a ``with`` block (removed after)::

        with features.tuntap("xl-tap0") as tap: features.query(tap)"""
    if mode not in ("tun", "tap"):
        raise ValueError("mode is 'tun' (L3, no Ethernet header) or 'tap' (L2)")
    if kernel.ifindex(name):
        raise XDPLabError(f"an interface named {name!r} exists already",
                          hint="pick another name (with your lab's prefix)")
    kernel.tuntap_add(name, mode)
    try:
        if up:
            kernel.netlink.link_up(name)
        yield name
    finally:
        kernel.link_del(name)


def probe_native(ifname: str) -> bool | None:
    """Fallback for kernels without xdp_features: does a native attach work on ``ifname``?
    True/False, or None when it was not safe to try (default route, a program present).
    Attaches a 2-instruction XDP_PASS for a moment; on some physical NICs attaching
    reconfigures the rings (a short link flap), so this only runs when asked."""
    if ifname in kernel.default_route_ifnames() or kernel.xdp_state(ifname):
        return None
    prog = kernel.prog_load_xdp(kernel.XDP_PASS_INSNS, "xdplab_probe")
    try:
        fd = kernel.link_create_xdp(prog, kernel.ifindex(ifname), "native")
    except kernel.BPFError as e:
        return False if e.errno in (errno.EOPNOTSUPP, errno.EINVAL) else None
    finally:
        os.close(prog)          # the link (if any) holds the program
    try:
        kernel.link_detach(fd)
    finally:
        os.close(fd)
    return True


# --- display ---------------------------------------------------------------------------

_YES, _NO, _UNK = "\u2714", "\u2718", "?"


class FeatureTable:
    """Rows of Features as an HTML table (hover a header or a cell for its meaning; a
    legend below says what to do when a feature is missing). Cells that differ from the
    row above are highlighted, so before/after tables show what changed."""

    def __init__(self, rows, title: str = "", labels=None):
        self.rows = list(rows)
        self.title = title
        self.labels = list(labels) if labels else [r.where for r in self.rows]

    def __iter__(self):
        return iter(self.rows)

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, key):
        if isinstance(key, int):
            return self.rows[key]
        for r in self.rows:
            if key in (r.ifname, r.where):
                return r
        raise KeyError(key)

    def to_df(self):
        import pandas as pd
        recs = []
        for label, r in zip(self.labels, self.rows):
            rec = {"interface": label, "driver": r.driver, "rx_queues": r.rx_queues,
                   "tx_queues": r.tx_queues}
            rec.update({f.name: r.has(f.name) for f in XDP_FLAGS})
            rec["rx_metadata"] = _join(r.rx_metadata)
            rec["xsk"] = _join(r.xsk)
            rec["xdp_program"] = ", ".join(f"{m}:{p}" for m, p in r.programs.items()) or "-"
            recs.append(rec)
        return pd.DataFrame(recs).set_index("interface")

    def __repr__(self) -> str:
        return self.to_df().to_string()

    def _cell(self, value, tip: str, changed: bool) -> str:
        mark, color = {True: (_YES, "#1a7f37"), False: (_NO, "#b0b0b0"), None: (_UNK, "#9a6700")}[value]
        style = f"color:{color};text-align:center;font-weight:bold"
        if changed:
            style += ";background:#fff3b0"
        return f'<td title="{escape(tip)}" style="{style}">{mark}</td>'

    def _repr_html_(self) -> str:
        head = "".join(f'<th title="{escape(f.meaning)}">'
                       f"{f.name}</th>" for f in XDP_FLAGS)
        body, prev = [], None
        for label, r in zip(self.labels, self.rows):
            cells = []
            for f in XDP_FLAGS:
                v = r.has(f.name)
                tip = (f"{f.name}: {f.meaning}" if v else
                       f"{f.name} missing: {if_missing(f.name)}" if v is False else r.error)
                cells.append(self._cell(v, tip, prev is not None and prev.has(f.name) != v))
            progs = ", ".join(f"{m} #{p}" for m, p in r.programs.items()) or "-"
            err = f'<br><small style="color:#9a6700">{escape(r.error)}</small>' if r.error else ""
            body.append(
                f"<tr><td><code>{escape(label)}</code>{err}</td><td>{escape(r.driver)}</td>"
                f"<td>{r.rx_queues}/{r.tx_queues}</td>{''.join(cells)}"
                f"<td>{escape(_join(r.rx_metadata))}</td><td>{escape(_join(r.xsk))}</td>"
                f"<td>{escape(progs)}</td></tr>")
            prev = r
        title = f"<b>{escape(self.title)}</b><br>" if self.title else ""
        return (f"{title}<table><tr><th>interface</th><th>driver</th>"
                f'<th title="RX/TX queues in use">queues rx/tx</th>{head}'
                '<th title="XDP RX metadata kfuncs the driver backs">rx metadata</th>'
                '<th title="AF_XDP TX metadata features">xsk</th><th>XDP now</th></tr>'
                f"{''.join(body)}</table>{legend_html()}")


def _join(names) -> str:
    if names is None:
        return "?"
    return ", ".join(sorted(names)) or "-"


def legend_html() -> str:
    rows = "".join(f"<tr><td><code>{f.name}</code></td><td>{escape(f.meaning)}</td>"
                   f"<td>{escape(if_missing(f.name))}</td></tr>" for f in XDP_FLAGS + RX_METADATA_FLAGS)
    return ("<details><summary>what the features mean, and what to do without one</summary>"
            f"<table><tr><th>feature</th><th>meaning</th><th>when missing</th></tr>{rows}"
            "</table></details>")


def legend():
    """The feature legend as a DataFrame (name, bit, meaning, when missing)."""
    import pandas as pd
    return pd.DataFrame([{"feature": f.name, "bit": f.bit, "meaning": f.meaning,
                          "when missing": if_missing(f.name)} for f in XDP_FLAGS + RX_METADATA_FLAGS
                         + XSK_FLAGS]).set_index("feature")


def uplinks() -> list[str]:
    """The interfaces carrying this machine's default route (look, never attach)."""
    return sorted(kernel.default_route_ifnames())
