/* Lab 03 solution, libbpf style: the same program as drop_telnet.c (vmlinux.h, SEC("xdp"), a license). */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define ETH_P_IP     0x0800
#define ETH_P_IPV6   0x86DD
#define ETH_P_8021Q  0x8100
#define ETH_P_8021AD 0x88A8

struct cursor { void *pos; };

static __always_inline int parse_eth(struct cursor *c, void *data_end)
{
    struct ethhdr *eth = c->pos;
    if ((void *)(eth + 1) > data_end)
        return -1;
    c->pos = eth + 1;
    __u16 proto = eth->h_proto;
#pragma unroll
    for (int i = 0; i < 2; i++) {                 /* 802.1ad outer, 802.1Q inner */
        if (proto != bpf_htons(ETH_P_8021Q) && proto != bpf_htons(ETH_P_8021AD))
            break;
        struct vlan_hdr *vh = c->pos;
        if ((void *)(vh + 1) > data_end)
            return -1;
        proto = vh->h_vlan_encapsulated_proto;
        c->pos = vh + 1;
    }
    return proto;
}

SEC("xdp")
int drop_telnet(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct cursor c = { .pos = data };
    int proto = parse_eth(&c, data_end);
    __u8 l4;

    if (proto == bpf_htons(ETH_P_IP)) {
        struct iphdr *ip = c.pos;
        if ((void *)(ip + 1) > data_end)
            return XDP_PASS;
        __u32 hl = ip->ihl * 4;
        if (hl < sizeof(*ip) || hl > 60)
            return XDP_PASS;
        c.pos = (void *)ip + hl;
        l4 = ip->protocol;
    } else if (proto == bpf_htons(ETH_P_IPV6)) {
        struct ipv6hdr *ip6 = c.pos;
        if ((void *)(ip6 + 1) > data_end)
            return XDP_PASS;
        c.pos = ip6 + 1;
        l4 = ip6->nexthdr;
    } else {
        return XDP_PASS;
    }
    if (l4 != IPPROTO_TCP)
        return XDP_PASS;
    struct tcphdr *tcp = c.pos;
    if ((void *)(tcp + 1) > data_end)
        return XDP_PASS;
    return tcp->dest == bpf_htons(23) ? XDP_DROP : XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
