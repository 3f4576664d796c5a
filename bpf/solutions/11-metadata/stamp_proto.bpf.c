/* Lab 11 solution, libbpf style: the same program as stamp_proto.c (vmlinux.h, SEC("xdp"),
 * a license; xdplab_meta.h as it is: vmlinux.h has the kernel's u32/u64). */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define ETH_P_IP   0x0800
#define ETH_P_IPV6 0x86DD

#include "xdplab_meta.h"

SEC("xdp")
int stamp_proto(struct xdp_md *ctx)
{
    struct xdplab_meta *meta;
    struct ethhdr *eth;
    void *data, *data_end;
    u32 proto = 0;

    if (bpf_xdp_adjust_meta(ctx, -(int)sizeof(*meta)))
        return XDP_PASS;
    /* adjust_meta may have moved every packet pointer: read them all again */
    data = (void *)(long)ctx->data;
    data_end = (void *)(long)ctx->data_end;
    meta = (void *)(long)ctx->data_meta;
    if ((void *)(meta + 1) > data)
        return XDP_PASS;
    eth = data;
    if ((void *)(eth + 1) > data_end)
        return XDP_PASS;
    if (eth->h_proto == bpf_htons(ETH_P_IP)) {
        struct iphdr *ip = (void *)(eth + 1);
        if ((void *)(ip + 1) <= data_end)
            proto = ip->protocol;
    } else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
        struct ipv6hdr *ip6 = (void *)(eth + 1);
        if ((void *)(ip6 + 1) <= data_end)
            proto = ip6->nexthdr;
    }
    meta->magic = XDPLAB_META_MAGIC;
    meta->proto = proto;
    meta->cpu = bpf_get_smp_processor_id();
    meta->ts = bpf_ktime_get_ns();
    return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
