/* What rx_hints.c hands to TC (XDP metadata, in front of the frame) and keeps in `last`.
 * 32 bytes (XDP metadata: a multiple of 4, at most 32); magic last, next to the frame. */
#pragma once
#define XDPLAB_HINTS_MAGIC 0x48494e54        /* "HINT" */
struct xdplab_hints {
    __u64 timestamp;       /* bpf_xdp_metadata_rx_timestamp */
    __u32 hash;            /* bpf_xdp_metadata_rx_hash */
    __u32 rss_type;        /* enum xdp_rss_hash_type */
    __u16 vlan_proto;      /* bpf_xdp_metadata_rx_vlan_tag (network order) */
    __u16 vlan_tci;
    __s16 hash_err;        /* each kfunc's return: 0, -EOPNOTSUPP (driver lacks it), -ENODATA */
    __s16 ts_err;
    __s16 vlan_err;
    __u16 pad;
    __u32 magic;
};
