// expect: packet-bounds line 10 hint: data_end
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <linux/if_ether.h>

SEC("xdp")
int no_check(struct xdp_md *ctx)
{
	struct ethhdr *eth = (void *)(long)ctx->data;
	return eth->h_proto == 0x0008 ? XDP_PASS : XDP_DROP;
}
char _license[] SEC("license") = "GPL";
