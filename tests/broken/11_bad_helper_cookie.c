// expect: bad-helper line 5 hint: XDP equivalent
// XDP runs before any socket exists: socket helpers are not available.
int bad_cookie(struct xdp_md *ctx)
{
    u64 c = bpf_get_socket_cookie(ctx);
    return c ? XDP_PASS : XDP_DROP;
}
