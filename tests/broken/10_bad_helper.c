// expect: bad-helper line 6 hint: XDP equivalent
// bpf_skb_load_bytes works on an sk_buff; XDP has no skb (use ctx->data or bpf_xdp_load_bytes).
int bad_helper(struct xdp_md *ctx)
{
    u32 v = 0;
    bpf_skb_load_bytes(ctx, 0, &v, sizeof(v));
    return v ? XDP_PASS : XDP_DROP;
}
