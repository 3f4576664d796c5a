// expect: compile line 6
// Using a struct member that does not exist.
int member(struct xdp_md *ctx)
{
    struct ethhdr eth = {};
    return eth.h_type ? XDP_PASS : XDP_DROP;
}
