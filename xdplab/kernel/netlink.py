"""rtnetlink requests the layers above need, by intent (pyroute2 underneath): build and
remove veth links, addresses, neighbours, routes and qdiscs, list links and addresses.
Each call works in the root namespace or, with ``netns=``, in a named one; nothing above
the kernel layer opens a netlink socket itself.
"""
from __future__ import annotations

import socket

from .core import ipr

IFA_F_NODAD = 0x02
NUD_PERMANENT = 0x80
TC_H_ROOT = 0xFFFFFFFF


def _index(ip, ifname: str) -> int:
    idx = ip.link_lookup(ifname=ifname)
    if not idx:
        raise OSError(19, f"no interface {ifname!r}")          # ENODEV
    return idx[0]


def veth_add(name: str, peer: str, peer_netns: str, mac: str | None = None,
             peer_mac: str | None = None) -> int:
    """A veth pair: ``name`` here, ``peer`` inside ``peer_netns``; returns name's ifindex."""
    with ipr() as ip:
        peer_spec = {"ifname": peer, "net_ns_fd": peer_netns, **({"address": peer_mac} if peer_mac else {})}
        ip.link("add", ifname=name, kind="veth", peer=peer_spec, **({"address": mac} if mac else {}))
        return _index(ip, name)


def configure(ifname: str, netns: str | None = None, *, addresses=(), neighbours=(),
              gateways=(), up: bool = True) -> None:
    """Give ``ifname`` ``addresses`` [(addr, prefixlen)] (IPv6 without DAD), permanent
    ``neighbours`` [(ip, mac)], default routes via ``gateways``, and set it up."""
    with ipr(netns) as ip:
        idx = _index(ip, ifname)
        for addr, plen in addresses:
            v6 = ":" in addr
            ip.addr("add", index=idx, address=addr, prefixlen=plen, **({"flags": IFA_F_NODAD} if v6 else {}))
        if up:
            ip.link("set", index=idx, state="up")
        for dst, mac in neighbours:
            ip.neigh("add", dst=dst, lladdr=mac, ifindex=idx, state=NUD_PERMANENT)
        for gw in gateways:
            ip.route("add", dst="default", gateway=gw, **({"family": socket.AF_INET6} if ":" in gw else {}))


def link_up(ifname: str, netns: str | None = None) -> None:
    with ipr(netns) as ip:
        ip.link("set", index=_index(ip, ifname), state="up")


def link_move(ifname: str, netns: str) -> bool:
    """Move root-namespace ``ifname`` into ``netns`` (False when it is not here)."""
    with ipr() as ip:
        idx = ip.link_lookup(ifname=ifname)
        if not idx:
            return False
        ip.link("set", index=idx[0], net_ns_fd=netns)
    return True


def links_del(names, netns: str | None = None) -> list[str]:
    """Delete the interfaces ``names`` that exist; returns those deleted."""
    gone = []
    with ipr(netns) as ip:
        for name in names:
            for idx in ip.link_lookup(ifname=name):
                ip.link("del", index=idx)
                gone.append(name)
    return gone


def link_names(netns: str | None = None, prefix: str = "") -> list[str]:
    """Names of the interfaces (starting with ``prefix``), in ifindex order."""
    with ipr(netns) as ip:
        names = [l.get_attr("IFLA_IFNAME") or "" for l in ip.get_links()]
    return [n for n in names if n and n.startswith(prefix)]


def link_queues(ifname: str) -> dict:
    """ifindex, kind and RX/TX queue counts of ``ifname`` (calling thread's netns); {} if none."""
    with ipr() as ip:
        links = ip.get_links(ifname=ifname)
    if not links:
        return {}
    link = links[0]
    info = link.get_attr("IFLA_LINKINFO")
    return {"ifindex": link["index"], "kind": (info.get_attr("IFLA_INFO_KIND") if info else None) or "-",
            "rx_queues": link.get_attr("IFLA_NUM_RX_QUEUES") or 1,
            "tx_queues": link.get_attr("IFLA_NUM_TX_QUEUES") or 1}


def ipv4_addresses(netns: str | None = None, ifname: str | None = None) -> list[tuple[str, str]]:
    """(label or 'ifindex N', address) of every IPv4 address (of ``ifname`` only, if given)."""
    with ipr(netns) as ip:
        kw = {}
        if ifname is not None:
            idx = ip.link_lookup(ifname=ifname)
            if not idx:
                return []
            kw["index"] = idx[0]
        return [(a.get_attr("IFA_LABEL") or f"ifindex {a['index']}", a.get_attr("IFA_ADDRESS"))
                for a in ip.get_addr(family=socket.AF_INET, **kw) if a.get_attr("IFA_ADDRESS")]


# --- qdiscs (calling thread's netns) ---------------------------------------------------

def qdisc_tbf(dev: str, rate_bits: int, burst_bytes: int, latency_ms: float) -> None:
    """Replace ``dev``'s root qdisc with a token bucket filter."""
    with ipr() as ip:
        idx = _index(ip, dev)
        try:
            ip.tc("del", index=idx, root=True)     # back to the default first
        except Exception:
            pass
        ip.tc("add", "tbf", index=idx, handle="1:", rate=f"{rate_bits}bit", burst=burst_bytes,
              latency=f"{latency_ms}ms")


def qdisc_del_root(dev: str) -> None:
    with ipr() as ip:
        for idx in ip.link_lookup(ifname=dev):
            try:
                ip.tc("del", index=idx, root=True)
            except Exception:
                pass


def qdisc_root_stats(dev: str) -> dict:
    """Root qdisc counters of ``dev``: kind, bytes, packets, drops, overlimits, backlog, qlen,
    requeues; {'kind': None} without one. OSError(ENODEV) when there is no ``dev``."""
    with ipr() as ip:
        idx = _index(ip, dev)
        for q in ip.get_qdiscs(index=idx):
            if q["parent"] != TC_H_ROOT:
                continue
            out = {"kind": q.get_attr("TCA_KIND")}
            st = q.get_attr("TCA_STATS2")
            basic = st.get_attr("TCA_STATS_BASIC") if st else None
            queue = st.get_attr("TCA_STATS_QUEUE") if st else None
            out.update(bytes=basic["bytes"] if basic else 0, packets=basic["packets"] if basic else 0)
            for k in ("drops", "overlimits", "backlog", "qlen", "requeues"):
                out[k] = queue[k] if queue else 0
            return out
    return {"kind": None}
