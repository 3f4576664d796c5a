/* Lab 09 solution, libbpf style: the same router as xdp_router.c (vmlinux.h, a BTF-defined
 * map instead of BPF_PERCPU_ARRAY, bpf_map_lookup_elem, SEC("xdp"), a license). */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define ETH_ALEN   6
#define ETH_P_IP   0x0800
#define ETH_P_IPV6 0x86DD

/* 09-routing: an XDP router on the kernel's own FIB and neighbour tables.
 *
 * bpf_fib_lookup() asks the kernel the question ip_forward() would ask: which egress
 * interface, which next-hop MAC. On BPF_FIB_LKUP_RET_SUCCESS we do what the forwarding
 * path does (decrement TTL / hop limit, rewrite both MACs) and bpf_redirect() to the
 * egress ifindex -- the packet never becomes an skb on this host. Everything the XDP
 * fast path does not handle (no neighbour entry yet, TTL expiring, fragmentation
 * needed, local delivery) gets XDP_PASS, so the kernel handles it (ARP, ICMP errors).
 */
#ifndef AF_INET
#define AF_INET 2
#endif
#ifndef AF_INET6
#define AF_INET6 10
#endif
#define FIB_RC_MAX 16

/* how often each BPF_FIB_LKUP_RET_* code came back (index = return code) */
struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, FIB_RC_MAX);
    __type(key, __u32);
    __type(value, __u64);
} fib_results SEC(".maps");

static __always_inline void ipv4_decrease_ttl(struct iphdr *iph)
{
    /* RFC 1624 incremental update, as ip_decrease_ttl() in include/net/ip.h:
     * ttl is the high byte of a 16-bit word, so -1 on ttl is -0x0100 on the sum. */
    u32 check = (u32)iph->check;

    check += (u32)bpf_htons(0x0100);
    iph->check = (u16)(check + (check >= 0xFFFF));
    iph->ttl--;
}

static __always_inline int xdp_fib_forward(struct xdp_md *ctx)
{
    void *data_end = (void *)(long)ctx->data_end;
    void *data = (void *)(long)ctx->data;
    struct bpf_fib_lookup fib = {};
    struct ethhdr *eth = data;
    struct ipv6hdr *ip6h = NULL;
    struct iphdr *iph = NULL;
    u32 key;
    u64 *cnt;
    int rc;

    if ((void *)(eth + 1) > data_end)
        return XDP_DROP;

    if (eth->h_proto == bpf_htons(ETH_P_IP)) {
        iph = (void *)(eth + 1);
        if ((void *)(iph + 1) > data_end)
            return XDP_DROP;
        if (iph->ttl <= 1)
            return XDP_PASS;                 /* the kernel sends ICMP time exceeded */
        fib.family = AF_INET;
        fib.tos = iph->tos;
        fib.l4_protocol = iph->protocol;
        fib.tot_len = bpf_ntohs(iph->tot_len);
        fib.ipv4_src = iph->saddr;
        fib.ipv4_dst = iph->daddr;
    } else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
        ip6h = (void *)(eth + 1);
        if ((void *)(ip6h + 1) > data_end)
            return XDP_DROP;
        if (ip6h->hop_limit <= 1)
            return XDP_PASS;
        fib.family = AF_INET6;
        fib.flowinfo = *(__be32 *)ip6h & bpf_htonl(0x0FFFFFFF);
        fib.l4_protocol = ip6h->nexthdr;
        fib.tot_len = bpf_ntohs(ip6h->payload_len) + sizeof(*ip6h);
        __builtin_memcpy(fib.ipv6_src, &ip6h->saddr, sizeof(fib.ipv6_src));
        __builtin_memcpy(fib.ipv6_dst, &ip6h->daddr, sizeof(fib.ipv6_dst));
    } else {
        return XDP_PASS;                     /* ARP and the rest: the kernel's business */
    }

    fib.ifindex = ctx->ingress_ifindex;
    rc = bpf_fib_lookup(ctx, &fib, sizeof(fib), 0);

    key = rc;
    cnt = bpf_map_lookup_elem(&fib_results, &key);
    if (cnt)
        (*cnt)++;

    switch (rc) {
    case BPF_FIB_LKUP_RET_SUCCESS:
        if (iph)
            ipv4_decrease_ttl(iph);
        else if (ip6h)
            ip6h->hop_limit--;
        __builtin_memcpy(eth->h_dest, fib.dmac, ETH_ALEN);
        __builtin_memcpy(eth->h_source, fib.smac, ETH_ALEN);
        return bpf_redirect(fib.ifindex, 0);
    case BPF_FIB_LKUP_RET_BLACKHOLE:
    case BPF_FIB_LKUP_RET_UNREACHABLE:
    case BPF_FIB_LKUP_RET_PROHIBIT:
        return XDP_DROP;                     /* the route says so */
    default:
        /* NOT_FWDED (local), FWD_DISABLED, NO_NEIGH (ARP first), FRAG_NEEDED, ... */
        return XDP_PASS;
    }
}

SEC("xdp")
int xdp_router(struct xdp_md *ctx)
{
    return xdp_fib_forward(ctx);
}

char LICENSE[] SEC("license") = "GPL";
