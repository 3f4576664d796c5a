"""What xdplab knows about failures, in one shape: registered rows.

A row names a failure (``key``, ``title``), says what went wrong in plain words (``what``)
and the usual fix (``fix``), and when it applies: ``pattern``/``log_pattern`` (regular
expressions on a message and a log, as clang's and the verifier's) and ``when`` (facts
that must hold: an errno, a tracepoint, a mode...). ``find(kind, ...)`` returns the first
row of that kind that matches. The kinds:

==================  ==========================================  ============================
kind                rows live in                                asked by
==================  ==========================================  ============================
``verifier``        programs/explain.py (EXPLANATIONS)          explain.verifier_error
``compile``         programs/explain.py (COMPILE)               explain.compile_error
``attach``          programs/program.py (ATTACH_HINTS)          attach()
``libbpf-open``     programs/explain.py (OPEN_HINTS)            libbpf's Object (ObjectError)
``prog-run``        programs/prog_run.py (PROG_RUN_HINTS)       prog.run() / prog_run.run
``afxdp``           net/afxdp.py (XSK_FAILURES)                 XSK setup and bind
``map-update``      programs/typedmaps.py (UPDATE_HINTS)        m[k] = v (MapError)
``redirect-map``    net/redirect.py (ENTRY_HINTS)               devmap_set / cpumap_set
``traffic``         net/traffic.py (GENERATOR_HINTS)            the traffic generator
``drop``            tools/drops.py (DROP_CAUSES)                DropDetector (Loss.reason)
``kernel-feature``  kernel/features.py (from FEATURES)          features.require / doctor
``driver-feature``  net/drivers.py (from the Flag tables)       FeatureTable, drivers.legend
==================  ==========================================  ============================

Add one: a ``Row(...)`` in the table of its kind; a test that triggers it for real
(tests/broken/ for verifier and compile rows) proves it. No errno-to-hint dict or if-chain
elsewhere (tests/test_failures.py scans for them): the rows are the only place.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable


def nonzero(v) -> bool:
    """A ``when`` value: the fact is set (an errno, a target)."""
    return bool(v)


@dataclass(frozen=True)
class Row:
    key: str
    title: str
    pattern: str = ""      # matched against the message (clang's, the verifier's); "" = any
    what: str = ""         # what went wrong, in plain words (may use {facts})
    fix: str = ""          # the usual fix (may use {facts})
    log_pattern: str = ""  # and (optionally) against the whole log: context-dependent causes
    kind: str = "verifier"
    #: facts that must hold: {name: value, a tuple/set/frozenset of values, or a predicate}
    when: dict = field(default_factory=dict, compare=False, hash=False)

    def matches(self, message: str = "", log: str = "", **facts) -> bool:
        if self.pattern and re.search(self.pattern, message) is None:
            return False
        if self.log_pattern and re.search(self.log_pattern, log) is None:
            return False
        for name, want in self.when.items():
            have = facts.get(name)
            if callable(want):
                if not want(have):
                    return False
            elif isinstance(want, (tuple, set, frozenset)):
                if have not in want:
                    return False
            elif have != want:
                return False
        return True

    def explain(self, **facts) -> str:
        """``what`` with the facts filled in."""
        return self.what.format_map(_Facts(facts)) if facts else self.what

    def advice(self, **facts) -> str:
        return self.fix.format_map(_Facts(facts)) if facts else self.fix


class _Facts(dict):
    def __missing__(self, key):
        return "{" + key + "}"


TABLE: list[Row] = []


def register(*rows: Row) -> tuple[Row, ...]:
    """Add rows (in order: the first matching row of a kind wins). A key may name several
    rows (variants of one failure that match differently); a row is registered once."""
    for r in rows:
        if not any(old is r for old in TABLE):
            TABLE.append(r)
    return rows


def unregister(*rows: Row) -> None:
    """Remove rows (a feature registered for a test, then removed)."""
    TABLE[:] = [r for r in TABLE if not any(r is x for x in rows)]


def find(kind: str, message: str = "", log: str = "", **facts) -> Row | None:
    return next((r for r in TABLE if r.kind == kind and r.matches(message, log, **facts)), None)


def by_key(key: str, kind: str | None = None) -> Row | None:
    return next((r for r in TABLE if r.key == key and (kind is None or r.kind == kind)), None)


def rows(kind: str | None = None) -> list[Row]:
    return [r for r in TABLE if kind is None or r.kind == kind]


def table():
    """Every registered row as a DataFrame (kind, key, title, when, what, fix)."""
    import pandas as pd
    return pd.DataFrame([{"kind": r.kind, "key": r.key, "title": r.title,
                          "when": ", ".join(f"{k}={_show(v)}" for k, v in r.when.items()) or r.pattern,
                          "what": r.what, "fix": r.fix} for r in TABLE])


def _show(v) -> str:
    if callable(v):
        return getattr(v, "__name__", "?")
    if isinstance(v, (set, frozenset, tuple)):
        return "|".join(map(str, sorted(v, key=str)))
    return str(v)


Predicate = Callable[[object], bool]
