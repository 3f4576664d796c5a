// expect: no-member line 6 hint: field names
// Using a struct member that does not exist.
int member(struct xdp_md *ctx)
{
    struct ethhdr eth = {};
    return eth.h_type ? XDP_PASS : XDP_DROP;
}
