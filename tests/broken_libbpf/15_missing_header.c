// expect: header-not-found line 4 hint: -I DIR
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "my_missing_helpers.h"

SEC("xdp")
int hdr(struct xdp_md *ctx)
{
	return XDP_PASS;
}
char _license[] SEC("license") = "GPL";
