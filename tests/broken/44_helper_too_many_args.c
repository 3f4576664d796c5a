// expect: helper-args line 5 hint: signature
// bpf_redirect takes (ifindex, flags).
int xdp_fwd(struct xdp_md *ctx)
{
    return bpf_redirect(3, 0, 0);
}
