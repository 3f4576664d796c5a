/* Lab 05 solution, libbpf style: the same program as drop_discard.c (vmlinux.h, SEC("xdp"), a license). */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define ETH_P_IP   0x0800
#define ETH_P_IPV6 0x86DD

#define DISCARD_PORT 9

SEC("xdp")
int xdp_drop_discard(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    struct udphdr *udp;

    if ((void *)(eth + 1) > data_end)
        return XDP_PASS;

    if (eth->h_proto == bpf_htons(ETH_P_IP)) {
        struct iphdr *ip = (void *)(eth + 1);

        if ((void *)(ip + 1) > data_end || ip->protocol != IPPROTO_UDP || ip->ihl < 5)
            return XDP_PASS;
        if (ip->frag_off & bpf_htons(0x1fff))       /* a later fragment: no UDP header */
            return XDP_PASS;
        udp = (void *)ip + ip->ihl * 4;
    } else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
        struct ipv6hdr *ip6 = (void *)(eth + 1);

        if ((void *)(ip6 + 1) > data_end || ip6->nexthdr != IPPROTO_UDP)
            return XDP_PASS;
        udp = (void *)(ip6 + 1);
    } else {
        return XDP_PASS;
    }
    if ((void *)(udp + 1) > data_end)
        return XDP_PASS;
    return udp->dest == bpf_htons(DISCARD_PORT) ? XDP_DROP : XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
