// expect: var-offset-pkt line 15 hint: Bound the offset
// The IPv4 header length is scaled so far that the offset may exceed 64 KiB: the data_end
// check on the moved pointer then proves nothing.
int misaligned(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct iphdr *ip = data + sizeof(struct ethhdr);
    if ((void *)(ip + 1) > data_end)
        return XDP_PASS;
    u32 hl = ip->ihl * 4 * 1000000;
    struct udphdr *udp = (void *)ip + hl;
    if ((void *)(udp + 1) > data_end)
        return XDP_PASS;
    return udp->dest ? XDP_PASS : XDP_DROP;
}
