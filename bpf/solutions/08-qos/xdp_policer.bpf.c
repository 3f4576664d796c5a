/* Lab 08 solution, libbpf style: the same policer as xdp_policer.c (vmlinux.h, BTF-defined
 * maps instead of BPF_ARRAY/BPF_HASH -- a value holding a bpf_spin_lock needs its BTF --,
 * bpf_map_lookup_elem/update_elem, SEC("xdp"), a license; struct bucket is flow_bucket here:
 * vmlinux.h has a struct bucket of the kernel's own). */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define ETH_P_IP 0x0800

/* 08-qos: a per-flow token-bucket policer in XDP.
 *
 * Each IPv4 flow (5-tuple) has a bucket of at most `burst` bytes that refills at `rate`
 * bytes per second (bpf_ktime_get_ns()). A packet that finds enough tokens takes them
 * and passes; one that does not is dropped -- a policer drops, it never queues (XDP has
 * no queue to delay a packet in). Tokens are kept in byte-nanoseconds (bytes * 1e9),
 * so refilling is a multiplication with no rounding and no division.
 *
 * Configure from Python: policer_config[0] = {rate (bytes/s), burst (bytes)}.
 * A rate of 0 means "not configured": everything passes.
 */
#define NSEC_PER_SEC 1000000000ULL

struct policer_config {
    u64 rate;                   /* bytes per second */
    u64 burst;                  /* bucket depth, bytes */
};

struct flow_key {
    u32 saddr;
    u32 daddr;
    u16 sport;
    u16 dport;
    u8 proto;
    u8 pad[3];
};

struct flow_bucket {
    struct bpf_spin_lock lock;  /* the flow may arrive on several CPUs (RX queues) */
    u64 tokens;                 /* byte-nanoseconds */
    u64 last_ns;
    u64 passed;
    u64 dropped;
};

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct policer_config);
} policer_config SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 4096);
    __type(key, struct flow_key);
    __type(value, struct flow_bucket);
} policer_flows SEC(".maps");

static __always_inline int flow_of(struct xdp_md *ctx, struct flow_key *key)
{
    void *data_end = (void *)(long)ctx->data_end;
    void *data = (void *)(long)ctx->data;
    struct ethhdr *eth = data;
    struct iphdr *iph = (void *)(eth + 1);
    struct udphdr *l4;          /* TCP and UDP ports sit at the same offsets */

    if ((void *)(iph + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
        return -1;
    key->saddr = iph->saddr;
    key->daddr = iph->daddr;
    key->proto = iph->protocol;
    if (iph->protocol == IPPROTO_UDP || iph->protocol == IPPROTO_TCP) {
        l4 = (void *)iph + iph->ihl * 4;
        if ((void *)(l4 + 1) > data_end)
            return -1;
        key->sport = l4->source;
        key->dport = l4->dest;
    }
    return 0;
}

/* XDP_PASS if the packet conforms, XDP_DROP if it is over the rate */
static __always_inline int xdp_police(struct xdp_md *ctx)
{
    struct flow_key key = {};
    struct policer_config *cfg;
    struct flow_bucket *b, fresh = {};
    u32 zero = 0;
    u64 now, cost, tokens, cap;
    int verdict;

    cfg = bpf_map_lookup_elem(&policer_config, &zero);
    if (!cfg || !cfg->rate || flow_of(ctx, &key) < 0)
        return XDP_PASS;

    now = bpf_ktime_get_ns();
    cost = (u64)(ctx->data_end - ctx->data) * NSEC_PER_SEC;
    cap = cfg->burst * NSEC_PER_SEC;

    b = bpf_map_lookup_elem(&policer_flows, &key);
    if (!b) {
        fresh.tokens = cap;      /* a new flow starts with a full bucket */
        fresh.last_ns = now;
        bpf_map_update_elem(&policer_flows, &key, &fresh, BPF_ANY);      /* BPF_ANY: a racing CPU may have won */
        b = bpf_map_lookup_elem(&policer_flows, &key);
        if (!b)
            return XDP_PASS;
    }

    bpf_spin_lock(&b->lock);
    if (now > b->last_ns) {
        u64 elapsed = now - b->last_ns;
        if (elapsed > NSEC_PER_SEC)
            elapsed = NSEC_PER_SEC;          /* a full second refills any sane bucket */
        tokens = b->tokens + elapsed * cfg->rate;
        b->tokens = tokens < cap ? tokens : cap;
        b->last_ns = now;
    }
    if (b->tokens >= cost) {
        b->tokens -= cost;
        b->passed++;
        verdict = XDP_PASS;
    } else {
        b->dropped++;
        verdict = XDP_DROP;
    }
    bpf_spin_unlock(&b->lock);
    return verdict;
}

#ifndef POLICER_NEXT
#define POLICER_NEXT(ctx) XDP_PASS   /* what conforming packets get; the router's forwarder, say */
#endif

SEC("xdp")
int xdp_policer(struct xdp_md *ctx)
{
    if (xdp_police(ctx) == XDP_DROP)
        return XDP_DROP;
    return POLICER_NEXT(ctx);
}

char LICENSE[] SEC("license") = "GPL";
