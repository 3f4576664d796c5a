// expect: global-var line 8 hint: BPF_ARRAY
// A global struct read in the program: BCC has no global data.
struct config { u32 drop_all; };
struct config cfg;

int cfgprog(struct xdp_md *ctx)
{
	if (cfg.drop_all)
		return XDP_DROP;
	return XDP_PASS;
}
