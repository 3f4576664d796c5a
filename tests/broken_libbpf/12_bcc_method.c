// expect: compile line 16 hint: BCC macro .lookup
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} counts SEC(".maps");

SEC("xdp")
int bcc_lookup(struct xdp_md *ctx)
{
	__u32 k = 0;
	__u64 *v = counts.lookup(&k);

	return v ? XDP_PASS : XDP_DROP;
}
char _license[] SEC("license") = "GPL";
