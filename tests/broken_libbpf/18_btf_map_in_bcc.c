// expect: dialect line 5 hint: dialect='libbpf'
// dialect: bcc
/* libbpf-style C forced through BCC: BCC knows no BTF-defined maps; the hint says so. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} counts SEC(".maps");

SEC("xdp")
int btf_map(struct xdp_md *ctx)
{
	return XDP_PASS;
}
char _license[] SEC("license") = "GPL";
