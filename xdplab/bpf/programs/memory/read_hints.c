/* TC (tcx ingress, BCC dialect: xdplab loads TC programs through BCC): copy the
 * xdplab_hints the device-bound XDP program left in front of the frame into `seen`
 * (the last one) and count sk_buffs: count[0] all, count[1] those carrying hints. */
#include "xdplab_hints.h"

BPF_ARRAY(seen, struct xdplab_hints, 1);
BPF_ARRAY(count, u64, 2);

int read_hints(struct __sk_buff *skb)
{
    struct xdplab_hints *m = (void *)(long)skb->data_meta;
    int k = 0;
    u64 *c = count.lookup(&k);
    if (c)
        __sync_fetch_and_add(c, 1);
    if ((void *)(m + 1) > (void *)(long)skb->data || m->magic != XDPLAB_HINTS_MAGIC)
        return TC_ACT_OK;
    struct xdplab_hints h = {};
    __builtin_memcpy(&h, m, sizeof(h));
    seen.update(&k, &h);
    k = 1;
    c = count.lookup(&k);
    if (c)
        __sync_fetch_and_add(c, 1);
    return TC_ACT_OK;
}
