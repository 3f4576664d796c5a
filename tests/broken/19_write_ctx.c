// expect: ctx-access line 5 hint: Read fields
// The xdp_md context is read-only (except through helpers).
int write_ctx(struct xdp_md *ctx)
{
    ctx->data = ctx->data + 14;
    return XDP_PASS;
}
