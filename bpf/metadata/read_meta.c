/* Lab 11's TC reader: for every sk_buff, is there XDP metadata in front of it (our magic
 * between skb->data_meta and skb->data)? Counts frames per path and per meta->proto, and
 * adds up the nanoseconds from XDP's stamp to here. Load with hook="tc". */
#include "xdplab_meta.h"

BPF_ARRAY(paths, struct xdplab_hop, 3);  /* 0: no metadata, 1: same CPU as XDP, 2: another CPU */
BPF_HASH(by_proto, u32, u64, 256);       /* frames per meta->proto */

int read_meta(struct __sk_buff *skb)
{
    struct xdplab_meta *meta = (void *)(long)skb->data_meta;
    u32 path = 0, proto;
    u64 ns = 0, zero = 0, *n;
    struct xdplab_hop *hop;

    if ((void *)(meta + 1) <= (void *)(long)skb->data && meta->magic == XDPLAB_META_MAGIC) {
        path = meta->cpu == bpf_get_smp_processor_id() ? 1 : 2;
        ns = bpf_ktime_get_ns() - meta->ts;
        proto = meta->proto;
        n = by_proto.lookup_or_try_init(&proto, &zero);
        if (n)
            __sync_fetch_and_add(n, 1);
    }
    hop = paths.lookup(&path);
    if (hop) {
        __sync_fetch_and_add(&hop->packets, 1);
        __sync_fetch_and_add(&hop->ns, ns);
    }
    return TC_ACT_OK;                     /* TC only looks: the stack goes on as usual */
}
