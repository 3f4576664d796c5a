// expect: header-not-found line 3 hint: Drop the include
// A header that does not exist (clang: "fatal error").
#include <linux/if_xdp_stats.h>

int xdp_hdr(struct xdp_md *ctx)
{
    return XDP_PASS;
}
