"""TC programs next to XDP: the first BPF hook that sees the ``sk_buff``.

    meta = xdplab.load(TC_SOURCE, hook="tc")      # int f(struct __sk_buff *skb) -> TC_ACT_*
    meta.attach(lab["h1"].outside, "ingress")     # a tcx bpf_link (Linux >= 6.6)
    meta["seen"].to_dict()

XDP runs before the kernel has built an ``sk_buff``; what it learned about a frame can
ride along in the metadata area in front of the packet (``bpf_xdp_adjust_meta``). On
XDP_PASS the stack keeps that area, and a TC program reads it between ``skb->data_meta``
and ``skb->data`` — the way to hand XDP's results (a class, a timestamp, a hash) to the
stack. Lab 11 uses this.

Attaching is a tcx bpf_link (BPF_LINK_CREATE with BPF_TCX_INGRESS/EGRESS): like an XDP
link, it goes away with the process that holds it, and re-running a cell swaps the
program in one step (BPF_LINK_UPDATE). Kernels before 6.6 have no tcx: ``NotSupported``.
"""
from __future__ import annotations

import errno

from .. import kernel
from ..errors import AttachError, NotSupported, needs_open
from ..kernel import features
from .program import LOADED_TYPES, Link, LoadedProgram, attach_target, new_link, our_link

DIRECTIONS = ("ingress", "egress")


class TCProgram(LoadedProgram):
    """A TC classifier (BPF_PROG_TYPE_SCHED_CLS) loaded into the kernel."""

    @needs_open
    def attach(self, dev, direction: str = "ingress", *, force: bool = False) -> Link:
        """Attach at the end of ``dev``'s TC ``direction`` chain through a tcx link.
        Refuses the interface with the default route (``force=True`` overrides): a
        program returning TC_ACT_SHOT there cuts the machine off."""
        if direction not in DIRECTIONS:
            raise AttachError(f"unknown TC direction {direction!r}", hint="use 'ingress' or 'egress'")
        d = kernel.resolve_device(dev)                 # a name, ifindex, lab Host, (netns, name)
        if d.netns:
            return d.run(self.attach, d.name, direction, force=force)
        dev = d.name
        ifindex = attach_target(dev, force)
        mode = f"tc-{direction}"
        ours = our_link(self, ifindex, mode)
        if ours is not None:
            return ours
        try:
            fd = kernel.link_create_tcx(self.fd, ifindex, direction)
        except kernel.BPFError as e:
            if e.errno == errno.EINVAL:
                raise features.error("tcx", f"BPF_LINK_CREATE({mode}) on {dev}: {e.strerror}") from None
            raise AttachError(f"the kernel refused to attach {self.name} to {dev} ({mode}): "
                              f"{e.strerror}") from None
        return new_link(self, fd, dev, ifindex, mode)

    def __repr__(self) -> str:
        if self.closed:
            return f"<TCProgram {self.name} id={self.id} closed>"
        where = ", ".join(f"{l.ifname}/{l.mode}" for l in self.links if l.attached) or "not attached"
        return f"<TCProgram {self.name} id={self.id} ({where}) maps={list(self.maps)}>"


LOADED_TYPES["tc"] = TCProgram          # Program(..., hook="tc").load() gives a TCProgram
