// expect: compile line 5 hint: BCC macro BPF_HASH
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

BPF_HASH(counts, __u32, __u64);

SEC("xdp")
int bcc_map(struct xdp_md *ctx)
{
	return XDP_PASS;
}
char _license[] SEC("license") = "GPL";
