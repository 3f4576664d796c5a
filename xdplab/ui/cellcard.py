"""What a successful ``%%xdp`` cell did, in one line (text) or one compact card (HTML):
dialect, function, verified (instructions), attached where (interface, namespace/host)
in which mode, on a new link or swapped into the existing one, and the program's maps."""
from __future__ import annotations

import ctypes
import struct
from dataclasses import dataclass, field
from html import escape
from .. import kernel
from ..net.topology import Topology


def verified_insns(fd: int) -> tuple[int, int]:
    """(instructions the program has after verification, instructions the verifier
    processed) from BPF_OBJ_GET_INFO_BY_FD (the second is 0 before Linux 5.16)."""
    info = ctypes.create_string_buffer(256)
    try:
        kernel.obj_info(fd, len(info), info)
    except Exception:
        return 0, 0
    xlated_len = struct.unpack_from("=I", info, 20)[0]
    verified = struct.unpack_from("=I", info, 216)[0]
    return xlated_len // 8, verified


def dialect_of(prog) -> str:
    d = getattr(prog, "dialect", None) or getattr(getattr(prog, "spec", None), "dialect", None)
    d = getattr(d, "dialect", d)          # a dialects.Detected
    return {"bcc": "BCC", "libbpf": "libbpf", "elf": "ELF object"}.get(str(d).lower(), str(d)) if d else "BCC"


def host_of(ifname: str) -> str:
    """'lab host h1' when ``ifname`` is the root-side end of a lab host's veth."""
    try:
        for h in Topology():
            if h.outside == ifname:
                return f"lab host {h.name}'s veth, root namespace"
    except Exception:
        pass
    return "root namespace"


@dataclass
class Card:
    name: str
    func: str
    prog_id: int
    dialect: str
    insns: int
    verified: int
    maps: list[str]
    ifname: str | None = None
    where: str = ""
    mode: str | None = None
    link_id: int | None = None
    swapped_from: str | None = None      # "talk (id 12)" when the link existed
    extras: list[str] = field(default_factory=list)
    why: str = ""                        # why this dialect ("SEC(...) on line 4", "--dialect bcc")

    @classmethod
    def of(cls, prog, var: str, link=None, swapped_from=None, extras=(), why: str = "") -> "Card":
        insns, verified = verified_insns(prog.fd)
        c = cls(name=var, func=prog.name, prog_id=prog.id, dialect=dialect_of(prog), insns=insns,
                verified=verified, maps=[m for m in prog.maps if not m.startswith("xdplab_")],
                swapped_from=swapped_from, extras=list(extras), why=why)
        if link is not None:
            c.ifname, c.mode, c.link_id = link.ifname, link.mode, link.id
            c.where = host_of(link.ifname)
        return c

    def _verified(self) -> str:
        s = f"verified ({self.insns} insns"
        return s + (f", verifier processed {self.verified})" if self.verified else ")")

    def _attached(self) -> str:
        if self.ifname is None:
            return "loaded, not attached (--no-attach)"
        how = (f"swapped into link {self.link_id} (was {self.swapped_from})" if self.swapped_from
               else f"new link {self.link_id}")
        return f"attached to {self.ifname} ({self.where}) in {self.mode} mode, {how}"

    def __repr__(self) -> str:
        maps = ", ".join(self.maps) or "none"
        extra = "".join(f"; {e}" for e in self.extras)
        why = f"; {self.dialect} dialect: {self.why}" if self.why else ""
        return (f"✔ {self.dialect} {self.func}() id {self.prog_id}: {self._verified()}; "
                f"{self._attached()}; maps: {maps}{extra}; bound to `{self.name}`{why}")

    def _repr_html_(self) -> str:
        maps = ", ".join(f"<code>{escape(m)}</code>" for m in self.maps) or "none"
        extra = "".join(f" &middot; {escape(e)}" for e in self.extras)
        return ("<div style='border-left:4px solid #2e7d32;background:#f1f8f1;color:#1b3a1b;"
                "padding:4px 8px;margin:2px 0;font-size:12.5px;line-height:1.5'>"
                f"<b style='color:#2e7d32'>✔</b> <b>{escape(self.dialect)}</b> "
                f"<code>{escape(self.func)}()</code> id {self.prog_id} &middot; {escape(self._verified())}"
                f" &middot; {escape(self._attached())} &middot; maps: {maps}{extra}"
                f" &middot; bound to <code>{escape(self.name)}</code>"
                + (f" &middot; {escape(self.dialect)} dialect: {escape(self.why)}" if self.why else "")
                + "</div>")
