// expect: stack-limit line 6 hint: BPF_PERCPU_ARRAY
// A 640-byte local buffer: more than the 512-byte BPF stack (LLVM ends the process).
int xdp_buf(struct xdp_md *ctx)
{
    u32 idx = ctx->rx_queue_index;
    char scratch[640];

    __builtin_memset(scratch, 0, sizeof(scratch));
    return scratch[idx & 511] ? XDP_DROP : XDP_PASS;
}
