// expect: stack-bounds line 10 hint: Bound the index
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
SEC("xdp")
int stack_index(struct xdp_md *ctx)
{
	volatile char buf[16] = {};
	__u32 i = ctx->rx_queue_index;

	buf[i] = 1;
	return buf[0] ? XDP_PASS : XDP_DROP;
}
char _license[] SEC("license") = "GPL";
