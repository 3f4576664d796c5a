// expect: no-member line 5 hint: field names
// struct xdp_md has no `len` (compute it: data_end - data).
int xdp_len(struct xdp_md *ctx)
{
    if (ctx->len > 1500)
        return XDP_DROP;
    return XDP_PASS;
}
