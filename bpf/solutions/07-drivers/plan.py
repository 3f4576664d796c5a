"""Lab 07 exercise solution: plan a redirect from driver features."""


def plan(src, dst):
    # Native redirect needs the source driver to support XDP_REDIRECT in its RX path.
    mode = "native" if src.basic and src.redirect else "generic"
    # Generic-mode redirects leave through dev_queue_xmit(), not ndo_xdp_xmit(): the
    # target's XDP TX resources only matter for native mode.
    return {"mode": mode, "target_needs_program": mode == "native" and not dst.ndo_xmit}
