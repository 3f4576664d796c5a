// expect: bpf2bpf line 3 hint: static __always_inline
// `noinline` as in userspace C: a kernel-header macro, and BCC cannot call it anyway.
static __attribute__((noinline)) int parse_eth(void *data, void *data_end)
{
    return data + sizeof(struct ethhdr) <= data_end;
}

int xdp_p(struct xdp_md *ctx)
{
    return parse_eth((void *)(long)ctx->data, (void *)(long)ctx->data_end) ? XDP_PASS : XDP_DROP;
}
