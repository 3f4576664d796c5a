// expect: no-entry line 3 hint: struct xdp_md *ctx
// The context passed by value: xdplab finds no XDP function (it takes a pointer).
int xdp_prog(struct xdp_md ctx)
{
	return XDP_PASS;
}
