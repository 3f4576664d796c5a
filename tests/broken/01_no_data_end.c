// expect: packet-bounds line 6 hint: data_end
// Reads the Ethernet header without comparing against data_end first.
int no_check(struct xdp_md *ctx)
{
    struct ethhdr *eth = (void *)(long)ctx->data;
    if (eth->h_proto == htons(ETH_P_IP))
        return XDP_DROP;
    return XDP_PASS;
}
