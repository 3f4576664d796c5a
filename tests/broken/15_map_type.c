// expect: map-type line 8 hint: BPF_DEVMAP
// bpf_redirect_map on a hash map: redirects only go through DEVMAP, CPUMAP or XSKMAP.
// (BPF_XDP_REDIRECT_MAP is the BCC macro behind BPF_DEVMAP; here it is given "hash".)
BPF_XDP_REDIRECT_MAP("hash", u32, ports, 8);

int wrong_map(struct xdp_md *ctx)
{
    return ports.redirect_map(0, 0);
}
