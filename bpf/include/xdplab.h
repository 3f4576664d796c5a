/* xdplab.h: what every xdplab program gets (the lab prepends this to your source).
 *
 * - the usual headers for parsing packets (Ethernet, VLAN, IPv4/6, TCP, UDP, ICMP);
 * - xdplab_actions: a per-CPU counter of packets and bytes per XDP action, read by
 *   prog.counters() and drawn by prog.plot();
 * - xdplab_count(ctx, action) / XDPLAB_RETURN(ctx, action): count and return an action.
 *   xdplab wraps your XDP function so that every return is counted; call these yourself
 *   only in programs built with count=False.
 */
#include <uapi/linux/bpf.h>
#include <linux/in.h>
#include <linux/if_ether.h>
#include <linux/if_vlan.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/icmp.h>
#include <linux/icmpv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>

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
