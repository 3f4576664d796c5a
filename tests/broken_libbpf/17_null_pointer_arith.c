// expect: null-map-value line 17 hint: if (!value)
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} vals SEC(".maps");

SEC("xdp")
int array_no_check(struct xdp_md *ctx)
{
	__u32 k = 9;
	__u64 *v = bpf_map_lookup_elem(&vals, &k);
	return *v ? XDP_DROP : XDP_PASS;
}
char _license[] SEC("license") = "GPL";
