"""Run a loaded XDP program on a crafted packet with BPF_PROG_RUN (no interface needed).

    r = prog.run(Ether()/IP(dst="10.0.0.1")/UDP(dport=9))      # == prog_run.run(prog, pkt)
    r.action            # 'XDP_DROP'
    r.packet            # the packet as the program left it (scapy), r.data the raw bytes
    r.diff              # [(field, before, after)] what the program changed
    prog.run(pkt, repeat=100_000).ns_per_packet

    prog_run.expect(prog, pkt, "XDP_DROP")                      # pytest-friendly

The kernel runs the program on a copy of the packet in process context
(``bpf_prog_test_run_xdp``): maps are real (preset them with ``prog.maps[...]``, read
them afterwards), but the returned action has no side effect — nothing is dropped,
transmitted or redirected. ``struct xdp_md`` is passed in, so ``ingress_ifindex``
(an existing interface of the caller's network namespace) and ``rx_queue_index``
(below that device's number of RX queues) can be set; ``data_meta`` is empty unless
``meta=`` bytes are given.
"""
from __future__ import annotations

import errno
import html
import struct
from dataclasses import dataclass, field

from .. import failures, kernel
from ..errors import XDPLabError
from ..failures import Row

ACTIONS = kernel.XDP_ACTIONS      # 'XDP_ABORTED', ... (kernel.abi)
XDP_MD = kernel.XDP_MD            # struct xdp_md (kernel.abi)
ETH_HLEN = 14
_TEST_MAC = ("02:58:4c:00:00:02", "02:58:4c:00:00:01")   # dst, src of frames we complete


def action_name(retval: int) -> str:
    return kernel.action_name(retval, prefix=True)


def normalize_action(action) -> str:
    """'drop', 'XDP_DROP', 1 -> 'XDP_DROP'."""
    if isinstance(action, int):
        return action_name(action)
    a = str(action).upper()
    a = a if a.startswith("XDP_") else "XDP_" + a
    if a not in ACTIONS:
        raise ValueError(f"unknown XDP action {action!r}; one of {', '.join(ACTIONS)}")
    return a


def to_frame(packet) -> bytes:
    """A scapy packet or bytes as an Ethernet frame (an IP packet gets an Ethernet header)."""
    if isinstance(packet, (bytes, bytearray, memoryview)):
        return bytes(packet)
    from scapy.layers.l2 import Ether
    if not packet.haslayer(Ether):
        packet = Ether(dst=_TEST_MAC[0], src=_TEST_MAC[1]) / packet
    return bytes(packet)


def parse(data: bytes):
    """Raw frame -> scapy (Ethernet)."""
    from scapy.layers.l2 import Ether
    return Ether(data)


def _ifindex(ifname, ingress_ifindex: int) -> int:
    if ifname is None:
        return ingress_ifindex
    if isinstance(ifname, int):
        return ifname
    name = kernel.resolve_device(ifname).name      # a lab Host means where XDP attaches
    idx = kernel.ifindex(name)
    if not idx:
        raise XDPLabError(f"no interface {name!r} in this network namespace",
                          hint="ingress_ifindex must name a device the caller's netns can see")
    return idx


def _fields(pkt) -> dict:
    """{'IP.ttl': 64, ...} for every layer of a scapy packet (repeated layers get #2, #3)."""
    out, seen = {}, {}
    layer = pkt
    while layer is not None and layer.__class__.__name__ != "NoPayload":
        name = layer.__class__.__name__
        seen[name] = seen.get(name, 0) + 1
        tag = name if seen[name] == 1 else f"{name}#{seen[name]}"
        for f in layer.fields_desc:
            if f.name == "load":
                continue
            out[f"{tag}.{f.name}"] = layer.getfieldval(f.name)
        if name in ("Raw", "Padding"):
            out[f"{tag}.load"] = bytes(layer.load)
        layer = layer.payload if layer.payload else None
    return out


def packet_diff(before: bytes, after: bytes) -> list[tuple[str, object, object]]:
    """Fields that differ between two frames, as (layer.field, before, after)."""
    if before == after:
        return []
    a, b = _fields(parse(before)), _fields(parse(after))
    rows = [(k, a.get(k), b.get(k)) for k in dict.fromkeys([*a, *b]) if a.get(k) != b.get(k)]
    if len(before) != len(after):
        rows.insert(0, ("length", len(before), len(after)))
    return rows


@dataclass
class RunResult:
    """What one BPF_PROG_RUN returned. ``duration_ns`` is the kernel's average per run."""

    retval: int
    data_in: bytes
    data: bytes
    repeat: int = 1
    duration_ns: int = 0
    ingress_ifindex: int = 0
    rx_queue_index: int = 0
    meta: bytes = b""            # the XDP metadata in front of the output frame (data_meta..data)
    diff: list = field(init=False)

    def __post_init__(self):
        self.diff = packet_diff(self.data_in, self.data)

    @property
    def action(self) -> str:
        return action_name(self.retval)

    @property
    def packet(self):
        """The output frame as a scapy packet."""
        return parse(self.data)

    @property
    def packet_in(self):
        return parse(self.data_in)

    @property
    def ns_per_packet(self) -> int:
        return self.duration_ns

    @property
    def modified(self) -> bool:
        return self.data != self.data_in

    def __eq__(self, other):
        if isinstance(other, str):
            return self.action == normalize_action(other)
        return NotImplemented

    __hash__ = None

    def _summary(self) -> str:
        s = f"{self.action}  {len(self.data_in)} B in -> {len(self.data)} B out"
        if self.repeat > 1:
            s += f", {self.duration_ns} ns/packet over {self.repeat} runs"
        if self.ingress_ifindex:
            s += f", ingress ifindex {self.ingress_ifindex} queue {self.rx_queue_index}"
        if self.meta:
            s += f", {len(self.meta)} B of metadata {self.meta.hex(' ', 4)}"
        return s

    def __repr__(self) -> str:
        lines = [f"<RunResult {self._summary()}>", f"  in:  {self.packet_in.summary()}"]
        if self.modified:
            lines.append(f"  out: {self.packet.summary()}")
            lines += [f"    {k}: {v0!r} -> {v1!r}" for k, v0, v1 in self.diff]
        else:
            lines.append("  packet unchanged")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        colour = {"XDP_DROP": "#c0392b", "XDP_PASS": "#27ae60", "XDP_TX": "#2980b9",
                  "XDP_REDIRECT": "#8e44ad"}.get(self.action, "#e67e22")
        head = (f"<b style='color:{colour}'>{self.action}</b> &mdash; "
                f"{html.escape(self._summary().split('  ', 1)[1])}<br>"
                f"<code>{html.escape(self.packet_in.summary())}</code>")
        if not self.modified:
            return head + "<br><i>packet unchanged</i>"
        rows = "".join(f"<tr><td><code>{html.escape(k)}</code></td><td>{html.escape(repr(a))}</td>"
                       f"<td><b>{html.escape(repr(b))}</b></td></tr>" for k, a, b in self.diff)
        return (head + f"<br>&rarr; <code>{html.escape(self.packet.summary())}</code>"
                "<table><tr><th>field</th><th>before</th><th>after</th></tr>" + rows + "</table>")


def _prog_fd(prog) -> int:
    if isinstance(prog, int):
        return prog
    fd = getattr(prog, "fd", None)
    if fd is None:
        raise TypeError(f"expected a loaded XDPProgram (xdplab.load(...)) or a prog fd, got {type(prog).__name__}")
    if getattr(prog, "_closed", False):
        raise XDPLabError(f"program {prog.name} was closed", hint="load it again")
    return fd


def run(prog, packet, repeat: int = 1, ifname=None, *, ingress_ifindex: int = 0,
        rx_queue: int = 0, meta: bytes = b"") -> RunResult:
    """Run ``prog`` on ``packet`` (scapy or bytes) ``repeat`` times with BPF_PROG_RUN.

    ``ifname`` (name, lab Host or ifindex) or ``ingress_ifindex`` sets ``ctx->ingress_ifindex``
    (and the rxq the program sees), ``rx_queue`` sets ``ctx->rx_queue_index``; ``meta`` bytes
    are placed in front of the packet as XDP metadata (``ctx->data_meta``)."""
    fd = _prog_fd(prog)
    data = to_frame(packet)
    if len(data) < ETH_HLEN:
        raise XDPLabError(f"the packet has {len(data)} bytes; XDP test runs need at least an "
                          f"Ethernet header ({ETH_HLEN})")
    idx = _ifindex(ifname, ingress_ifindex)
    # always a context, read back after the run: its ``data`` is then the length of the
    # metadata in front of the output (the program may have grown it: bpf_xdp_adjust_meta)
    ctx = XDP_MD.pack(len(meta), len(meta) + len(data), 0, idx, rx_queue, 0)
    try:
        retval, out, duration, ctx_out = kernel.prog_test_run_ctx(fd, meta + data, repeat=repeat, ctx=ctx)
    except kernel.BPFError as e:
        raise _explain(e, idx, rx_queue, meta) from None
    metalen = XDP_MD.unpack(ctx_out)[0]
    return RunResult(retval, data, out[metalen:], repeat, duration, idx, rx_queue, meta=out[:metalen])


#: why the kernel refused BPF_PROG_RUN, by errno and what the run set (failures, kind 'prog-run')
PROG_RUN_HINTS = failures.register(
    Row("run-no-device", "ifindex not in this netns", kind="prog-run", when={"errno": errno.ENODEV},
        fix="ifindex {ifindex} is not a device in this network namespace"),
    Row("run-rx-queue", "rx_queue out of range", kind="prog-run",
        when={"errno": errno.EINVAL, "rx_queue": failures.nonzero},
        fix="rx_queue {rx_queue} must be below the device's number of RX queues"),
    Row("run-metadata", "bad metadata length", kind="prog-run",
        when={"errno": errno.EINVAL, "meta": failures.nonzero},
        fix="metadata must be a multiple of 4 bytes and at most 32"),
    Row("run-refused", "run refused", kind="prog-run", when={"errno": errno.EINVAL},
        fix="the kernel rejected the run (packet larger than a page minus headroom?)"),
)


def _explain(e: OSError, idx: int, rx_queue: int, meta: bytes) -> XDPLabError:
    facts = {"errno": e.errno, "ifindex": idx, "rx_queue": rx_queue, "meta": len(meta)}
    row = failures.find("prog-run", **facts)
    return XDPLabError(f"BPF_PROG_RUN failed: {e.strerror}", hint=row.advice(**facts) if row else "")


def expect(prog, packet, action="XDP_PASS", output=None, **kw) -> RunResult:
    """Run and assert: the action is ``action`` and (if given) the output frame equals
    ``output`` (scapy/bytes) or satisfies ``output(scapy_packet) -> bool``.
    Raises AssertionError saying what the packet was, what came back and what changed."""
    r = run(prog, packet, **kw)
    want = normalize_action(action)
    problems = []
    if r.action != want:
        problems.append(f"expected {want}, got {r.action}")
    if output is not None:
        if callable(output) and not isinstance(output, (bytes, bytearray)) and not hasattr(output, "build"):
            if not output(r.packet):
                problems.append(f"output packet does not satisfy {getattr(output, '__name__', output)}")
        else:
            exp = to_frame(output)
            if exp != r.data:
                diff = packet_diff(exp, r.data)
                detail = "; ".join(f"{k}: expected {a!r}, got {b!r}" for k, a, b in diff[:6])
                problems.append(f"output packet differs: {detail}")
    if problems:
        lines = [f"{', '.join(problems)}", f"  packet: {r.packet_in.summary()}"]
        if r.modified:
            lines.append("  program changed: " + ", ".join(f"{k} {a!r}->{b!r}" for k, a, b in r.diff[:6]))
        raise AssertionError("\n".join(lines))
    return r
