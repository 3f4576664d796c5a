// expect: null-map-value line 9 hint: if (!value)
// Even an array lookup can return NULL (the index may be out of range): check it.
BPF_ARRAY(stats, u64, 4);

int null_array(struct xdp_md *ctx)
{
    u32 key = ctx->rx_queue_index;
    u64 *v = stats.lookup(&key);
    __sync_fetch_and_add(v, 1);
    return XDP_PASS;
}
