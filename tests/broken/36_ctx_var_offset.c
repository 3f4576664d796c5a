// expect: ctx-var-offset line 7 hint: by name
// Reading struct xdp_md through an index: ctx fields need constant offsets.
int xdp_ctx_index(struct xdp_md *ctx)
{
    u32 i = ctx->rx_queue_index & 3;
    u32 *fields = (u32 *)ctx;
    u32 v = fields[i];
    return v ? XDP_PASS : XDP_DROP;
}
