/* Lab 02 solution: packets AND bytes per IPv4 protocol, in a per-CPU array indexed by
 * iph->protocol. Each CPU updates its own copy of the slot: no atomics needed; user
 * space sums the copies (prog["proto_stats"].to_dict(sum_cpus=True)). */

struct pb {
    u64 packets;
    u64 bytes;
};

BPF_PERCPU_ARRAY(proto_stats, struct pb, 256);

int xdp_proto_bytes(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    struct iphdr *ip;
    struct pb *v;
    u32 key;

    if ((void *)(eth + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
        return XDP_PASS;
    ip = (void *)(eth + 1);
    if ((void *)(ip + 1) > data_end)
        return XDP_PASS;

    key = ip->protocol;
    v = proto_stats.lookup(&key);
    if (v) {
        v->packets += 1;
        v->bytes += data_end - data;       /* the whole frame, Ethernet header included */
    }
    return XDP_PASS;
}
