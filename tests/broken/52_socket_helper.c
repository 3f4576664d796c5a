// expect: bad-helper line 5 hint: XDP equivalent
// bpf_get_socket_uid needs an skb with a socket: XDP has neither.
int xdp_uid(struct xdp_md *ctx)
{
    u32 uid = bpf_get_socket_uid(ctx);
    return uid ? XDP_PASS : XDP_DROP;
}
