// expect: return-value line 8 hint: Return one of
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
SEC("xdp")
int no_return(struct xdp_md *ctx)
{
	if (ctx->rx_queue_index == 7)
		asm volatile("exit");
	return XDP_PASS;
}
char _license[] SEC("license") = "GPL";
