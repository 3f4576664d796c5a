/* SPDX-License-Identifier: GPL-2.0 */
/* In the style of xdp-tutorial basic03/basic04: stats per action in a map from a header. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "common_kern_user.h"

static __always_inline
__u32 xdp_stats_record_action(struct xdp_md *ctx, __u32 action)
{
	void *data_end = (void *)(long)ctx->data_end;
	void *data     = (void *)(long)ctx->data;

	if (action >= XDP_ACTION_MAX)
		return XDP_ABORTED;

	/* Lookup in kernel BPF-side return pointer to actual data record */
	struct datarec *rec = bpf_map_lookup_elem(&xdp_stats_map, &action);
	if (!rec)
		return XDP_ABORTED;

	/* BPF_MAP_TYPE_PERCPU_ARRAY returns a data record specific to current
	 * CPU and XDP hooks runs under Softirq, which makes it safe to update
	 * without atomic operations.
	 */
	rec->rx_packets++;
	rec->rx_bytes += (data_end - data);

	return action;
}

SEC("xdp")
int  xdp_pass_func(struct xdp_md *ctx)
{
	__u32 action = XDP_PASS; /* XDP_PASS = 2 */

	return xdp_stats_record_action(ctx, action);
}

SEC("xdp")
int  xdp_drop_func(struct xdp_md *ctx)
{
	__u32 action = XDP_DROP;

	return xdp_stats_record_action(ctx, action);
}

char _license[] SEC("license") = "GPL";
