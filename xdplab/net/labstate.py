"""Every topology this lab made, what is attached where, and taking them all down
(``xdplab status`` / ``xdplab down``).

"This lab" is the name prefix ``XDPLAB_PREFIX`` (default ``xl-``): the default hosts
(``xl-h1``, ``xl-h2``) and every topology whose prefix starts with it, e.g. the router
labs' ``RouterTopology`` (``xl-r``: ``xl-rh1``.., router netns ``xl-rrt``; lab 08's
``FastSlow`` runs on it). Each topology records what it built in a state file under
/run/xdplab (``topology.Topology._record``); the topologies are rebuilt from those files,
so a status or down in another process (the shell, after a notebook) sees them all.
"""
from __future__ import annotations

import ipaddress
import json

from .. import kernel
from .topology import DEFAULT_NET, DEFAULT_PREFIX, NETNS_DIR, STATE_DIR, Topology, leftovers
from .router_topology import RouterTopology
from .router_topology import qdisc_stats

_DEFAULT_QDISCS = {None, "noqueue", "pfifo_fast", "fq_codel", "mq", "pfifo", "noop", "fq"}


def _live_net(netns: str | None, ifname: str) -> int | None:
    """The topology's ``net`` from a live interface's address (10.<net>.<host>.1)."""
    try:
        for label, addr in kernel.netlink.ipv4_addresses(netns, ifname):
            addr = ipaddress.ip_address(addr)
            if addr in ipaddress.ip_network("10.0.0.0/8"):
                return addr.packed[1]
    except Exception:          # a namespace going away under us: no live net
        return None
    return None


def _from_state(data: dict, router: bool):
    p = data.get("prefix", "")
    netns = [n for k, n in data.get("created", []) if k == "netns"]
    rt = f"{p}rt"
    router = router or rt in netns
    hosts = tuple(dict.fromkeys(n[len(p):] for n in netns if n.startswith(p) and not (router and n == rt)))
    cls = RouterTopology if router else Topology
    defaults = cls.__dataclass_fields__
    hosts = hosts or defaults["hosts"].default
    net = None
    for h in hosts:
        net = _live_net(rt if router else None, f"{p}{h}") if (NETNS_DIR / f"{p}{h}").exists() else None
        if net is not None:
            break
    if net is None:
        net = defaults["net"].default if router else DEFAULT_NET
    try:
        return cls(hosts=hosts, prefix=p, net=net)
    except Exception:          # a state file we cannot make sense of: left to `down --all`
        return None


def topologies(prefix: str = DEFAULT_PREFIX) -> list:
    """The topologies of this lab (prefix ``prefix``) that have a state file, default lab first."""
    found = []
    files = sorted(STATE_DIR.glob("topology-*.json")) if STATE_DIR.is_dir() else []
    for f in files:
        try:
            data = json.loads(f.read_text())
        except (OSError, ValueError):
            continue
        if not str(data.get("prefix", "")).startswith(prefix):
            continue
        t = _from_state(data, router=f.name.endswith("-rt.json"))
        if t is not None and all((type(t), t.prefix) != (type(o), o.prefix) for o in found):
            found.append(t)
    found.sort(key=lambda t: (type(t) is not Topology or t.prefix != prefix, t.prefix))
    return found


def _names(t) -> tuple[set, set]:
    """(netns, root-namespace links) a topology owns."""
    netns = {h.netns for h in t}
    router = getattr(t, "router", None)
    if router:
        return netns | {router}, set()
    return netns, {h.outside for h in t}


def unrecorded(prefix: str = DEFAULT_PREFIX, topos=None) -> dict:
    """Namespaces and links named ``prefix*`` that belong to no recorded topology."""
    topos = topologies(prefix) if topos is None else topos
    ns, links = set(), set()
    for t in topos:
        n, l = _names(t)
        ns |= n
        links |= l
    left = leftovers(prefix)
    return {"netns": [n for n in left["netns"] if n not in ns], "links": [l for l in left["links"] if l not in links]}


def _xdp(netns: str | None, ifname: str) -> str:
    try:
        st = kernel.run_in_netns(netns, kernel.xdp_state, ifname) if netns else kernel.xdp_state(ifname)
    except Exception:
        return "?"
    return ", ".join(f"{m} {kernel.prog_name_by_id(p)}#{p}" for m, p in st.items()) or "-"


def _qdisc(netns: str | None, ifname: str) -> str:
    try:
        q = kernel.run_in_netns(netns, qdisc_stats, ifname) if netns else qdisc_stats(ifname)
    except Exception:
        return ""
    return "" if q.get("kind") in _DEFAULT_QDISCS else q["kind"]


def rows(t) -> list[dict]:
    """One row per host: is it up, where its interfaces are, what is attached to them."""
    router = getattr(t, "router", None)
    out = []
    for h in t:
        up = (NETNS_DIR / h.netns).exists() and bool(h.ifindex)
        r = {"topology": t.prefix, "host": h.name, "up": up, "netns": h.netns,
             "outside": h.outside, "outside_ns": router or "root", "ipv4": h.ipv4,
             "xdp": "-", "host_xdp": "-", "qdisc": ""}
        if up:
            r["xdp"] = _xdp(router, h.outside)
            r["host_xdp"] = _xdp(h.netns, h.inside)
            r["qdisc"] = _qdisc(router, h.outside)
        out.append(r)
    return out


def _header(t) -> str:
    router = getattr(t, "router", None)
    kind = type(t).__name__
    if router:
        up = (NETNS_DIR / router).exists()
        fwd = ""
        if up:
            try:
                fwd = ", forwarding " + ("on" if t.forwarding() else "off")
            except Exception:
                pass
        return f"{kind} {t.prefix} (router netns {router}{'' if up else ' missing'}{fwd}, net {t.net})"
    return f"{kind} {t.prefix} (net {t.net})"


def status_text(prefix: str = DEFAULT_PREFIX) -> str:
    """Every topology of this lab with its hosts and what is attached where."""
    topos = topologies(prefix)
    if not any(t.prefix == prefix and type(t) is Topology for t in topos):
        default = Topology(prefix=prefix)
        if any((NETNS_DIR / h.netns).exists() for h in default):
            topos.insert(0, default)
    lines = []
    for t in topos:
        lines.append(_header(t))
        for r in rows(t):
            where = "" if r["outside_ns"] == "root" else f" in {r['outside_ns']}"
            extra = f" qdisc={r['qdisc']}" if r["qdisc"] else ""
            lines.append(f"  {r['host']:4} {'up' if r['up'] else 'down':4} netns={r['netns']} "
                         f"veth={r['outside']}{where} {r['ipv4']} xdp={r['xdp']} "
                         f"host-veth0-xdp={r['host_xdp']}{extra}")
    stray = unrecorded(prefix, topos)
    if stray["netns"] or stray["links"]:
        lines.append(f"named {prefix}* but in no recorded topology (`xdplab down --all` removes them): "
                     + ", ".join([f"netns {n}" for n in stray["netns"]] + [f"link {l}" for l in stray["links"]]))
    if not lines:
        lines.append(f"no lab hosts (prefix {prefix}) are up: `xdplab up` builds h1, h2")
    return "\n".join(lines)


def down(prefix: str = DEFAULT_PREFIX) -> list[str]:
    """Take down every recorded topology of this lab (and the default one); returns the
    names removed."""
    removed = []
    topos = topologies(prefix)
    if not any(t.prefix == prefix and type(t) is Topology for t in topos):
        topos.insert(0, Topology(prefix=prefix))
    for t in reversed(topos):          # routers first: they hold hosts' outside ends
        removed += t.down()
    return removed
