/* Which memory model does this RX queue use? The kernel's own xdp_buff behind the
 * program's ctx (bpf_cast_to_kern_ctx, Linux >= 6.2) points at the queue's
 * struct xdp_rxq_info; its mem.type is enum xdp_mem_type (0 page_shared, 1 page_order0,
 * 2 page_pool, 3 xsk_buff_pool). `models`: per RX queue, the last type/id seen and frames. */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>

extern void *bpf_cast_to_kern_ctx(void *obj) __ksym;

struct model {
    __u32 mem_type;
    __u32 mem_id;
    __u64 frames;
};

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 64);
    __type(key, __u32);
    __type(value, struct model);
} models SEC(".maps");

SEC("xdp")
int mem_model(struct xdp_md *ctx)
{
    struct xdp_buff *xdp = bpf_cast_to_kern_ctx(ctx);
    struct xdp_rxq_info *rxq = xdp->rxq;
    __u32 q = ctx->rx_queue_index;
    struct model *m = bpf_map_lookup_elem(&models, &q);
    if (m) {
        m->mem_type = rxq->mem.type;
        m->mem_id = rxq->mem.id;
        __sync_fetch_and_add(&m->frames, 1);
    }
    return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
