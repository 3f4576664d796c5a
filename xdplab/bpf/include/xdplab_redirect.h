/* xdplab_redirect.h: redirect maps whose entries carry a second program, and the small
 * helpers XDP_TX / XDP_REDIRECT programs need.   #include "xdplab_redirect.h"
 *
 * BCC's BPF_DEVMAP / BPF_CPUMAP have 4-byte values (ifindex / queue size). Their 8-byte
 * form (struct bpf_devmap_val / bpf_cpumap_val, Linux >= 5.8 / 5.9) adds a program fd:
 *   - devmap: an *egress* program (expected_attach_type BPF_XDP_DEVMAP) that runs on
 *     each frame after the redirect, before the target device transmits it;
 *   - cpumap: a program (BPF_XDP_CPUMAP) that runs on the remote CPU, before the kernel
 *     builds the sk_buff there.
 * Fill entries from Python: xdplab.redirect.devmap_set(...) / cpumap_set(...).
 * BPF_DEVMAP_HASH(name, n): the hash-keyed devmap (Linux >= 5.4), see below.
 * In the program: return tx_port.redirect_map(key, 0);   (= bpf_redirect_map)
 */
#ifndef XDPLAB_REDIRECT_H
#define XDPLAB_REDIRECT_H

#define BPF_DEVMAP_PROG(_name, _max_entries) \
    BPF_XDP_REDIRECT_MAP("devmap", struct bpf_devmap_val, _name, _max_entries)
#define BPF_CPUMAP_PROG(_name, _max_entries) \
    BPF_XDP_REDIRECT_MAP("cpumap", struct bpf_cpumap_val, _name, _max_entries)

/* A devmap keyed by any u32 (an ifindex, say) instead of 0..n-1, with egress-program
 * values. BCC cannot create this map type itself: xdplab.redirect.load() creates and pins
 * it, and tells BCC where (XDPLAB_PIN_DIR). */
#ifdef XDPLAB_PIN_DIR
#define BPF_DEVMAP_HASH(_name, _max_entries) \
    struct _name##_table_t { u32 key; struct bpf_devmap_val leaf; \
                             u64 (*redirect_map)(int, int); u32 max_entries; }; \
    __attribute__((section("maps/devmap:" XDPLAB_PIN_DIR #_name))) \
    struct _name##_table_t _name = { .max_entries = (_max_entries) }
#else
#define BPF_DEVMAP_HASH(_name, _max_entries) \
    _Static_assert(0, "BPF_DEVMAP_HASH: load this program with xdplab.redirect.load()")
#endif

/* Swap source and destination MAC (XDP_TX answers go back where they came from). */
static __always_inline void xdplab_swap_macs(struct ethhdr *eth)
{
    unsigned char tmp[ETH_ALEN];

    __builtin_memcpy(tmp, eth->h_source, ETH_ALEN);
    __builtin_memcpy(eth->h_source, eth->h_dest, ETH_ALEN);
    __builtin_memcpy(eth->h_dest, tmp, ETH_ALEN);
}

/* Incremental Internet checksum update (RFC 1624, eqn. 3): a 16-bit word of the
 * covered data changed from `from` to `to` (both in network byte order). */
static __always_inline void xdplab_csum_replace2(__sum16 *sum, __be16 from, __be16 to)
{
    __u32 csum = (__u16)~*sum + (__u16)~from + (__u16)to;

    csum = (csum & 0xffff) + (csum >> 16);
    csum = (csum & 0xffff) + (csum >> 16);
    *sum = ~csum;
}

#endif
