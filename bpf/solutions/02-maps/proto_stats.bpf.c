/* Lab 02 solution, libbpf style: the same program as proto_stats.c. The map is a
 * BTF-defined map in the ".maps" section instead of BCC's BPF_PERCPU_ARRAY macro, and
 * it is read with bpf_map_lookup_elem() instead of proto_stats.lookup(). */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define ETH_P_IP 0x0800

struct pb {
    __u64 packets;
    __u64 bytes;
};

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 256);
    __type(key, __u32);
    __type(value, struct pb);
} proto_stats SEC(".maps");

SEC("xdp")
int xdp_proto_bytes(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    struct iphdr *ip;
    struct pb *v;
    __u32 key;

    if ((void *)(eth + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
        return XDP_PASS;
    ip = (void *)(eth + 1);
    if ((void *)(ip + 1) > data_end)
        return XDP_PASS;

    key = ip->protocol;
    v = bpf_map_lookup_elem(&proto_stats, &key);
    if (v) {
        v->packets += 1;
        v->bytes += data_end - data;       /* the whole frame, Ethernet header included */
    }
    return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
