// expect: implicit-function line 10 hint: defined above
// A helper function called before it is declared (and not inline).
int xdp_csum(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct iphdr *ip = data + sizeof(struct ethhdr);
    if ((void *)(ip + 1) > data_end)
        return XDP_PASS;
    ip->check = compute_checksum(ip);
    return XDP_TX;
}
