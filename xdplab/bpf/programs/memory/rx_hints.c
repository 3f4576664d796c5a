/* RX hints: a device-bound XDP program (load(..., bind_to=dev)) reads the RX hash,
 * timestamp and VLAN tag through the metadata kfuncs and hands them to TC in the XDP
 * metadata (bpf_xdp_adjust_meta), and to Python in the map `last`. */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include "xdplab_hints.h"

extern int bpf_xdp_metadata_rx_hash(const struct xdp_md *ctx, __u32 *hash,
                                    enum xdp_rss_hash_type *rss_type) __ksym;
extern int bpf_xdp_metadata_rx_timestamp(const struct xdp_md *ctx, __u64 *timestamp) __ksym;
#ifdef XDPLAB_HAVE_RX_VLAN_TAG           /* Linux >= 6.8 (xdplab.memory sets it) */
extern int bpf_xdp_metadata_rx_vlan_tag(const struct xdp_md *ctx, __be16 *vlan_proto,
                                        __u16 *vlan_tci) __ksym;
#endif

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct xdplab_hints);
} last SEC(".maps");

SEC("xdp")
int rx_hints(struct xdp_md *ctx)
{
    struct xdplab_hints h = {};
    enum xdp_rss_hash_type rss = 0;
    __u32 zero = 0;

    h.hash_err = bpf_xdp_metadata_rx_hash(ctx, &h.hash, &rss);
    h.rss_type = rss;
    h.ts_err = bpf_xdp_metadata_rx_timestamp(ctx, &h.timestamp);
#ifdef XDPLAB_HAVE_RX_VLAN_TAG
    h.vlan_err = bpf_xdp_metadata_rx_vlan_tag(ctx, &h.vlan_proto, &h.vlan_tci);
#else
    h.vlan_err = -95;                      /* -EOPNOTSUPP: this kernel has no such kfunc */
#endif
    h.magic = XDPLAB_HINTS_MAGIC;
    bpf_map_update_elem(&last, &zero, &h, BPF_ANY);

    if (bpf_xdp_adjust_meta(ctx, -(int)sizeof(h)))
        return XDP_PASS;
    struct xdplab_hints *m = (void *)(long)ctx->data_meta;
    if ((void *)(m + 1) > (void *)(long)ctx->data)
        return XDP_PASS;
    __builtin_memcpy(m, &h, sizeof(h));
    return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
