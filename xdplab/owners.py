"""Who owns what in a workshop (``./lab workshop``): every attendee's topologies carry the
attendee's name in their state file, and nothing may touch another attendee's interfaces or
hosts. Outside a workshop (no ``XDPLAB_OWNER``) everything is everyone's."""
from __future__ import annotations

import json
import os

from .errors import OwnerError
from .paths import DEFAULT_PREFIX, STATE_DIR


def current_owner() -> str:
    """The workshop attendee this process works for (``XDPLAB_OWNER``, set by the workshop's
    spawner), or "" outside a workshop."""
    return os.environ.get("XDPLAB_OWNER", "")


def owner_of(name: str) -> tuple[str, str] | None:
    """(owner, prefix) of the recorded topology an interface or prefix ``name`` belongs to,
    for topologies a workshop attendee built; None when no attendee's lab holds it."""
    for f in STATE_DIR.glob("topology-*.json") if STATE_DIR.is_dir() else []:
        try:
            data = json.loads(f.read_text())
        except (OSError, ValueError):
            continue
        owner, prefix = data.get("owner"), str(data.get("prefix", ""))
        if not owner:
            continue
        links = {n for k, n in data.get("created", []) if k == "link"}
        if name in links or (prefix and (name.startswith(prefix) or prefix.startswith(name) and name)):
            return owner, prefix
    return None


def refuse_others(name: str, action: str) -> None:
    """In a workshop, refuse (``OwnerError``) to touch another attendee's interface or topology."""
    me = current_owner()
    if not me:
        return
    found = owner_of(name)
    if found and found[0] != me:
        raise OwnerError(f"cannot {action} {name}: it belongs to workshop attendee {found[0]!r} "
                         f"(their lab, prefix {found[1]})",
                         hint=f"your lab is prefix {DEFAULT_PREFIX} (xdplab.lab() gives its hosts)")
