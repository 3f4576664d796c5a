/* Page pools watched per interface: raw tracepoints page_pool_state_hold/_release
 * (a page leaves the page allocator for the pool / goes back to it) and page_pool_release
 * (the pool is being destroyed), keyed by pool, with the ifindex of the pool's NAPI
 * device, or of the net_device veth hands its pools (CO-RE reads through vmlinux.h: the layout of THIS kernel). No trampolines:
 * raw tracepoints (BPF_RAW_TRACEPOINT_OPEN). */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>

struct pool_stat {
    __u64 holds;         /* pages taken from the page allocator (slow path) */
    __u64 releases;      /* pages given back to it (unmapped, freed) */
    __s64 inflight;      /* at page_pool_release: pages still out */
    __u32 ifindex;       /* of pool->p.napi->dev, 0 when the pool has no NAPI */
    __u32 destroys;
};

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 4096);
    __type(key, __u64);
    __type(value, struct pool_stat);
} pools SEC(".maps");

/* pool->p.napi exists since 6.5 (6.1's page_pool_params has none): a CO-RE flavor lets
 * the same object load on both, the field read only where it exists */
struct page_pool___napi {
    struct { struct napi_struct *napi; } p;
} __attribute__((preserve_access_index));

static __always_inline struct pool_stat *stat(const struct page_pool *pool)
{
    __u64 k = (__u64)pool;
    struct pool_stat *s = bpf_map_lookup_elem(&pools, &k);
    if (s)
        return s;
    struct pool_stat z = {};
    struct napi_struct *napi = 0;
    struct device *d = BPF_CORE_READ(pool, p.dev);
    char cls[4] = {};
    const struct page_pool___napi *pn = (const void *)pool;
    if (bpf_core_field_exists(pn->p.napi))
        napi = BPF_CORE_READ(pn, p.napi);
    if (napi) {
        z.ifindex = BPF_CORE_READ(napi, dev, ifindex);
    } else if (d) {
        /* veth gives its pools the net_device's own struct device (class "net") */
        bpf_probe_read_kernel_str(cls, sizeof(cls), BPF_CORE_READ(d, class, name));
        if (cls[0] == 'n' && cls[1] == 'e' && cls[2] == 't' && cls[3] == 0) {
            struct net_device *nd = (void *)d - __builtin_preserve_field_info(((struct net_device *)0)->dev, 0);
            z.ifindex = BPF_CORE_READ(nd, ifindex);
        }
    }
    bpf_map_update_elem(&pools, &k, &z, BPF_NOEXIST);
    return bpf_map_lookup_elem(&pools, &k);
}

SEC("raw_tp/page_pool_state_hold")
int BPF_PROG(pp_hold, const struct page_pool *pool)
{
    struct pool_stat *s = stat(pool);
    if (s)
        __sync_fetch_and_add(&s->holds, 1);
    return 0;
}

SEC("raw_tp/page_pool_state_release")
int BPF_PROG(pp_release, const struct page_pool *pool)
{
    struct pool_stat *s = stat(pool);
    if (s)
        __sync_fetch_and_add(&s->releases, 1);
    return 0;
}

SEC("raw_tp/page_pool_release")
int BPF_PROG(pp_destroy, const struct page_pool *pool, __s32 inflight)
{
    struct pool_stat *s = stat(pool);
    if (s) {
        s->inflight = inflight;
        __sync_fetch_and_add(&s->destroys, 1);
    }
    return 0;
}

/* memory models: xdp:mem_connect (a driver registered an allocator-backed model for an
 * RX queue: page_pool, xsk_buff_pool) and mem_disconnect, by mem id */
struct model {
    __u32 mem_type;      /* enum xdp_mem_type */
    __u32 ifindex;       /* connect: the RX queue's device */
    __u32 queue;
    __u32 connects;
    __u32 disconnects;
    __u32 pad;
    __u64 allocator;
};

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 4096);
    __type(key, __u32);
    __type(value, struct model);
} models SEC(".maps");

static __always_inline struct model *model(const struct xdp_mem_allocator *xa)
{
    __u32 id = BPF_CORE_READ(xa, mem.id);
    struct model *m = bpf_map_lookup_elem(&models, &id);
    if (m)
        return m;
    struct model z = {};
    z.mem_type = BPF_CORE_READ(xa, mem.type);
    z.allocator = (__u64)BPF_CORE_READ(xa, allocator);
    bpf_map_update_elem(&models, &id, &z, BPF_NOEXIST);
    return bpf_map_lookup_elem(&models, &id);
}

SEC("raw_tp/mem_connect")
int BPF_PROG(mem_connect, const struct xdp_mem_allocator *xa, const struct xdp_rxq_info *rxq)
{
    struct model *m = model(xa);
    if (m) {
        m->ifindex = BPF_CORE_READ(rxq, dev, ifindex);
        m->queue = BPF_CORE_READ(rxq, queue_index);
        __sync_fetch_and_add(&m->connects, 1);
    }
    return 0;
}

SEC("raw_tp/mem_disconnect")
int BPF_PROG(mem_disconnect, const struct xdp_mem_allocator *xa)
{
    struct model *m = model(xa);
    if (m)
        __sync_fetch_and_add(&m->disconnects, 1);
    return 0;
}

char LICENSE[] SEC("license") = "GPL";
