"""Kernel ABI facts xdplab uses, each defined once (include/uapi/linux/bpf.h, if_link.h,
netdev.h). Add a constant here, never inline in a module above."""
from __future__ import annotations

import struct

# enum xdp_action: index = the value a program returns
ACTIONS = ("ABORTED", "DROP", "PASS", "TX", "REDIRECT")
XDP_ACTIONS = tuple(f"XDP_{a}" for a in ACTIONS)            # the names C uses
XDP_ABORTED, XDP_DROP, XDP_PASS, XDP_TX, XDP_REDIRECT = range(5)


def action_name(retval: int, prefix: bool = False) -> str:
    """0..4 -> 'ABORTED'..'REDIRECT' (``prefix``: 'XDP_ABORTED'); others say so."""
    if 0 <= retval < len(ACTIONS):
        return XDP_ACTIONS[retval] if prefix else ACTIONS[retval]
    return f"unknown action {retval}"


#: struct xdp_md as BPF_PROG_RUN takes it: data, data_end, data_meta (offsets into the
#: frame), ingress_ifindex, rx_queue_index, egress_ifindex
XDP_MD = struct.Struct("=6I")


def xdp_md(frame_len: int, ingress_ifindex: int = 0, rx_queue: int = 0, meta_len: int = 0) -> bytes:
    """A struct xdp_md for a test run of ``frame_len`` bytes behind ``meta_len`` of metadata."""
    return XDP_MD.pack(meta_len, meta_len + frame_len, 0, ingress_ifindex, rx_queue, 0)


# enum bpf_map_type
BPF_MAP_TYPE_HASH, BPF_MAP_TYPE_ARRAY, BPF_MAP_TYPE_PROG_ARRAY = 1, 2, 3
BPF_MAP_TYPE_PERCPU_HASH, BPF_MAP_TYPE_PERCPU_ARRAY = 5, 6
BPF_MAP_TYPE_DEVMAP, BPF_MAP_TYPE_CPUMAP, BPF_MAP_TYPE_XSKMAP = 14, 16, 17
BPF_MAP_TYPE_DEVMAP_HASH = 25

# enum bpf_attach_type
BPF_XDP_DEVMAP, BPF_XDP_CPUMAP, BPF_XDP = 33, 35, 37
BPF_TCX_INGRESS, BPF_TCX_EGRESS = 46, 47                    # Linux >= 6.6

# enum bpf_link_type / bpf_prog_type
BPF_LINK_TYPE_XDP = 6
BPF_PROG_TYPE_XDP = 6

# BPF_PROG_RUN flags
BPF_F_TEST_XDP_LIVE_FRAMES = 1 << 1
TEST_XDP_MAX_BATCH = 256

# XDP attach flags (if_link.h)
XDP_FLAGS_SKB_MODE, XDP_FLAGS_DRV_MODE, XDP_FLAGS_HW_MODE = 1 << 1, 1 << 2, 1 << 3
MODE_FLAGS = {"generic": XDP_FLAGS_SKB_MODE, "native": XDP_FLAGS_DRV_MODE}

# a live frame (BPF_PROG_RUN live mode) must fit one page: XDP_PACKET_HEADROOM (256) in front,
# struct skb_shared_info (320 on x86_64) behind
import os as _os  # noqa: E402
PAGE_SIZE = _os.sysconf("SC_PAGE_SIZE")
XDP_PACKET_HEADROOM, SKB_SHARED_INFO_SIZE = 256, 320
LINEAR_MAX = PAGE_SIZE - XDP_PACKET_HEADROOM - SKB_SHARED_INFO_SIZE

# enum netdev_xdp_act (uapi/linux/netdev.h)
NETDEV_XDP_ACT_BASIC, NETDEV_XDP_ACT_REDIRECT, NETDEV_XDP_ACT_NDO_XMIT = 1, 2, 4
NETDEV_XDP_ACT_XSK_ZEROCOPY, NETDEV_XDP_ACT_HW_OFFLOAD = 8, 16
NETDEV_XDP_ACT_RX_SG, NETDEV_XDP_ACT_NDO_XMIT_SG = 32, 64
