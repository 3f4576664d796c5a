// SPDX-License-Identifier: GPL-2.0
/* In the style of the selftests' tailcall programs: a PROG_ARRAY of the same object,
 * initialised statically with its programs; the entry tail-calls by IP protocol. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} tail_hits SEC(".maps");

SEC("xdp")
int xdp_icmp(struct xdp_md *ctx)
{
	__u32 k = 0;
	__u64 *v = bpf_map_lookup_elem(&tail_hits, &k);

	if (v)
		__sync_fetch_and_add(v, 1);
	return XDP_DROP;                 /* ICMP never gets through */
}

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 256);
	__uint(key_size, sizeof(__u32));
	__array(values, int (void *));
} jmp_table SEC(".maps") = {
	.values = {
		[IPPROTO_ICMP] = (void *)&xdp_icmp,
	},
};

SEC("xdp")
int xdp_entry(struct xdp_md *ctx)
{
	void *data_end = (void *)(long)ctx->data_end;
	void *data = (void *)(long)ctx->data;
	struct ethhdr *eth = data;
	struct iphdr *iph = data + sizeof(*eth);
	__u32 k = 1;
	__u64 *v;

	if ((void *)(iph + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	bpf_tail_call(ctx, &jmp_table, iph->protocol);
	v = bpf_map_lookup_elem(&tail_hits, &k);     /* no program for this protocol */
	if (v)
		__sync_fetch_and_add(v, 1);
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
