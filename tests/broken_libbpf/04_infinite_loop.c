// expect: loop line 9 hint: Bound the loop
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
SEC("xdp")
int spin(struct xdp_md *ctx)
{
	volatile int i = 0;

	while (ctx->rx_queue_index != 1000) {
		i = 0;
		asm volatile("" ::: "memory");
	}
	return XDP_PASS;
}
char _license[] SEC("license") = "GPL";
