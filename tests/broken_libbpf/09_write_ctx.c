// expect: ctx-access line 7 hint: bpf_xdp_adjust_head
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
SEC("xdp")
int write_ctx(struct xdp_md *ctx)
{
	ctx->data += 14;
	return XDP_PASS;
}
char _license[] SEC("license") = "GPL";
