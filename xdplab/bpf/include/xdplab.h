/* xdplab.h: what every xdplab program gets (the lab prepends this to your source).
 *
 * - the usual (UAPI) headers for parsing packets (Ethernet, IPv4/6, TCP, UDP, ICMP) and
 *   struct vlan_hdr;
 * - xdplab_actions: a per-CPU counter of packets and bytes per XDP action, read by
 *   prog.counters() and drawn by prog.plot();
 * - xdplab_count(ctx, action) / XDPLAB_RETURN(ctx, action): count and return an action.
 *   xdplab wraps your XDP function so that every return is counted; call these yourself
 *   only in programs built with count=False.
 */
#include <uapi/linux/bpf.h>
/* uapi/linux/in.h, icmp.h and tcp.h include <linux/socket.h>, which in a kernel tree is the
 * kernel-internal header: it drags in most of the kernel and triples compile time. XDP
 * programs need only its UAPI part and struct sockaddr, so take those and skip the rest --
 * for these headers only: the guard is lifted again below, and our struct sockaddr has a
 * name of its own, so a program that includes kernel headers (linux/ip.h -> skbuff.h ->
 * linux/socket.h, as BCC's examples do) still gets the real linux/socket.h. */
#define _LINUX_SOCKET_H
#include <uapi/linux/socket.h>
#define sockaddr xdplab_sockaddr    /* uapi/linux/if.h (from icmp.h) embeds struct sockaddr */
struct sockaddr {
    __kernel_sa_family_t sa_family;
    char sa_data[14];
};
#include <uapi/linux/in.h>
#include <uapi/linux/if_ether.h>
#include <uapi/linux/ip.h>
#include <uapi/linux/ipv6.h>
#include <uapi/linux/icmp.h>
#include <uapi/linux/icmpv6.h>
#include <uapi/linux/tcp.h>
#include <uapi/linux/udp.h>
#undef sockaddr
#undef _LINUX_SOCKET_H
/* Only UAPI headers: the kernel-internal ones (linux/ip.h pulls in skbuff.h, ...) make every
 * compile several times slower and are not needed by XDP programs. */

/* Not when the program (or a header it carries, or a kernel header such as linux/if_vlan.h)
 * defines struct vlan_hdr itself: xdplab then defines XDPLAB_NO_VLAN_HDR (bcccompat.py). */
#if !defined(_LINUX_IF_VLAN_H_) && !defined(XDPLAB_NO_VLAN_HDR)
struct vlan_hdr {           /* 802.1Q tag, as in the kernel's linux/if_vlan.h */
    __be16 h_vlan_TCI;
    __be16 h_vlan_encapsulated_proto;
};
#endif

#ifndef XDPLAB_TC            /* TC programs (hook="tc") count nothing per XDP action */
#define XDPLAB_NUM_ACTIONS 5 /* ABORTED, DROP, PASS, TX, REDIRECT */

struct xdplab_rec {
    u64 packets;
    u64 bytes;
};

BPF_PERCPU_ARRAY(xdplab_actions, struct xdplab_rec, XDPLAB_NUM_ACTIONS);

static __always_inline int xdplab_count(struct xdp_md *ctx, int action)
{
    u32 key = action;
    struct xdplab_rec *rec;

    if (key >= XDPLAB_NUM_ACTIONS)
        key = XDP_ABORTED; /* the kernel treats unknown actions as aborted */
    rec = xdplab_actions.lookup(&key);
    if (rec) {
        rec->packets++;
        rec->bytes += ctx->data_end - ctx->data;
    }
    return action;
}

#define XDPLAB_RETURN(ctx, action) return xdplab_count((ctx), (action))
#endif /* XDPLAB_TC */
