/* xdplab_meta.h: the metadata lab 11's XDP programs write in front of the packet
 * (bpf_xdp_adjust_meta) and its TC program reads (skb->data_meta .. skb->data).
 * Both sides must agree on this layout; the kernel only carries the bytes. At most 32
 * bytes, a multiple of 4 (xdp_metalen_invalid() in include/linux/filter.h). */
#ifndef XDPLAB_META_H
#define XDPLAB_META_H

#define XDPLAB_META_MAGIC 0x584c4d44   /* "XLMD": there is metadata, and it is ours */

struct xdplab_meta {
    u32 magic;
    u32 proto;        /* what XDP decided about the frame (the exercise: its L4 protocol) */
    u32 cpu;          /* the CPU XDP ran on */
    u32 pad;
    u64 ts;           /* bpf_ktime_get_ns() in XDP */
};

struct xdplab_hop {   /* per path: frames, and nanoseconds from XDP to TC summed */
    u64 packets;
    u64 ns;
};

#endif
