// expect: map-create line 3 hint: smaller
// A billion preallocated hash entries: the kernel cannot create the map.
BPF_HASH(conntrack, u64, u64, 1 << 30);

int ct(struct xdp_md *ctx)
{
	u64 k = 0;
	u64 *v = conntrack.lookup(&k);
	return v ? XDP_PASS : XDP_DROP;
}
