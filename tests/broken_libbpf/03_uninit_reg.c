// expect: uninit-stack line 9 hint: Initialise
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
SEC("xdp")
int uninit_reg(struct xdp_md *ctx)
{
	__u64 v;

	asm volatile("%0 = r5" : "=r"(v));
	return v ? XDP_PASS : XDP_DROP;
}
char _license[] SEC("license") = "GPL";
