// expect: map-type line 11 hint: BPF_PROG_ARRAY
// A tail call through a hash map: tail calls need a BPF_PROG_ARRAY.
BPF_HASH(jmp_table, u32, u32, 4);

int xdp_dispatch(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    if (data + 1 > data_end)
        return XDP_PASS;
    jmp_table.call(ctx, 0);
    return XDP_PASS;
}
