"""tracefs (/sys/kernel/tracing): private instances, trace events and their formats,
trace_pipe. printk streaming and the drop detector use it through these calls."""
from __future__ import annotations

import os
from pathlib import Path

TRACEFS = Path("/sys/kernel/tracing")


def events(system: str) -> list[str]:
    """The events of a trace system this kernel has (``events("xdp")``)."""
    d = TRACEFS / "events" / system
    return sorted(p.name for p in d.iterdir() if (p / "format").exists()) if d.is_dir() else []


def event_fields(system: str, event: str) -> set[str] | None:
    """The field names of an event's format (common_* left out), None without the event."""
    fmt = TRACEFS / "events" / system / event / "format"
    if not fmt.exists():
        return None
    fields = set()
    for line in fmt.read_text().splitlines():
        line = line.strip()
        if line.startswith("field:") and "common_" not in line:
            decl = line.split(";")[0].removeprefix("field:")
            fields.add(decl.split()[-1].split("[")[0])
    return fields


def instance(name: str) -> Path:
    """Create (or reuse) the instance ``instances/<name>``: a trace buffer of its own."""
    d = TRACEFS / "instances" / name
    d.mkdir(exist_ok=True)
    return d


def enable_event(inst: Path, system: str, event: str, filter_expr: str | None = None) -> bool:
    """Enable ``system/event`` in instance ``inst``; with ``filter_expr``, set the event
    filter first. Returns whether the filter was accepted (enabling happens anyway)."""
    ev = inst / "events" / system / event
    filtered = False
    if filter_expr is not None:
        try:
            (ev / "filter").write_text(filter_expr + "\n")
            filtered = True
        except OSError:
            pass
    (ev / "enable").write_text("1\n")
    return filtered


def trace_pipe(inst: Path) -> int:
    """A non-blocking fd reading ``inst``'s trace_pipe (close with os.close)."""
    return os.open(inst / "trace_pipe", os.O_RDONLY | os.O_NONBLOCK)
