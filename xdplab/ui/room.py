"""The workshop's results and the instructor's view of the room.

**Recording** (in each attendee's kernels and ``./lab check``): ``XDPLAB_RESULTS`` names the
attendee's results file (JSON lines). A lab's check cell (a code cell that starts with
``# Check``) adds ``{"lab", "kind": "check", "passed", "detail"}`` when it runs (the lab
comes from the notebook's name, ``JPY_SESSION_NAME``); grading the learner's own program
(``grading.check_lab(lab, mine)``) adds ``"kind": "exercise"`` with the grader's first
failing item. ``install(ip)`` is called by the IPython startup file the workshop writes.

**The instructor's view** (``python -m xdplab.room --room DIR``, started by JupyterHub as
the service ``xdplab-room``): one row per attendee, one column per lab, each cell
*passed* (the last run of the check cell passed and the last graded exercise, if any,
passed), *failing* (with what failed first) or *not tried*; it refreshes every 2 s. Only
hub admins get in (hub OAuth, and the name must be the room's instructor). Buttons reset
an attendee's lab (a pristine working copy; theirs is kept beside it) and release the
reference solutions of a lab to everyone.
"""
from __future__ import annotations

import html
import json
import os
import time
from pathlib import Path

from ..labs import grading
from . import workspace
from .workshop import released
from ..errors import XDPLabError
from .workshop import Room
from .workshop import release
import secrets
import argparse
import asyncio
from urllib.parse import urlparse

LAB_OF = "JPY_SESSION_NAME"


def _append(rec: dict) -> None:
    path = os.environ.get("XDPLAB_RESULTS")
    if not path:
        return
    rec = {"t": round(time.time(), 3), **rec}
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a") as f:
        f.write(json.dumps(rec) + "\n")          # one write: lines of two kernels never mix


def first_failure(report) -> str:
    for i in report.items:
        if i.status == "fail":
            return f"{i.name}: expected {i.expected}, got {i.got}"
    return "" if report.passed else "no checks ran"


def record_report(report) -> None:
    """A graded exercise (the learner's program)."""
    _append({"lab": report.lab, "kind": "exercise", "passed": bool(report.passed),
             "detail": first_failure(report)})


def lab_of_session() -> str | None:
    name = os.path.basename(os.environ.get(LAB_OF, ""))
    head = name[:2]
    return head if head.isdigit() else None


def _post_run_cell(result) -> None:
    src = (getattr(result.info, "raw_cell", "") or "").lstrip()
    if not src.startswith("# Check"):
        return
    lab = lab_of_session()
    if lab is None:
        return
    err = result.error_in_exec or result.error_before_exec
    detail = "" if err is None else f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
    _append({"lab": lab, "kind": "check", "passed": err is None, "detail": detail})


def install(ip) -> None:
    """Record this kernel's check cells (IPython's post_run_cell event)."""
    if ip is not None and os.environ.get("XDPLAB_RESULTS"):
        ip.events.register("post_run_cell", _post_run_cell)


# --- the room's state -------------------------------------------------------------------

def read_results(path: Path) -> list[dict]:
    out = []
    try:
        lines = Path(path).read_text().splitlines()
    except OSError:
        return out
    for line in lines:
        try:
            out.append(json.loads(line))
        except ValueError:
            pass                       # a line being written right now
    return out


def lab_states(records) -> dict:
    """{lab: {"state": passed|failing|not tried, "detail": str}} from an attendee's records;
    a reset starts the lab afresh."""
    last: dict = {}
    for r in records:
        lab = r.get("lab")
        if r.get("kind") == "reset":
            last.pop(lab, None)
        elif lab:
            last.setdefault(lab, {})[r.get("kind")] = r
    out = {}
    for lab, kinds in last.items():
        failing = [r for k in ("exercise", "check") for r in [kinds.get(k)] if r and not r.get("passed")]
        if failing:
            what = "exercise" if failing[0]["kind"] == "exercise" else "check cell"
            out[lab] = {"state": "failing", "detail": f"{what}: {failing[0].get('detail', '')}"}
        elif kinds.get("check"):
            out[lab] = {"state": "passed", "detail": ""}
        else:
            out[lab] = {"state": "not tried", "detail": "exercise passes; check cell not run yet"}
    return out


def status(room) -> dict:
    """The instructor's table: labs, and per attendee their labs' states."""
    labs = [p.stem for p in workspace.shipped()]
    rows = []
    for a in room.attendees:
        if a.admin:
            continue
        states = lab_states(read_results(room.results(a.name)))
        rows.append({"name": a.name, "prefix": a.prefix, "net": a.net,
                     "labs": {lab: states.get(lab[:2], {"state": "not tried", "detail": ""}) for lab in labs}})
    return {"labs": labs, "attendees": rows, "released": released(room)}


def reset_lab(room, name: str, lab: str) -> list:
    """Reset attendee ``name``'s working copy of ``lab`` (theirs kept beside it)."""
    a = room.attendee(name)
    done = workspace.reset([lab], dest=room.workdir(a.name))
    stem = workspace.find_lab(lab).stem
    os.environ["XDPLAB_RESULTS"] = str(room.results(a.name))
    try:
        _append({"lab": stem[:2], "kind": "reset", "passed": None, "detail": "reset by the instructor"})
    finally:
        del os.environ["XDPLAB_RESULTS"]
    return [(str(d), str(k) if k else None) for d, k in done]


# --- the hub service ----------------------------------------------------------------------

PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>xdplab room</title>
<style>body{{font-family:sans-serif;margin:1.5em}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 6px;font-size:13px;vertical-align:top}}
.passed{{background:#d5f5e3}} .failing{{background:#fadbd8}} .nottried{{color:#999}}
small{{display:block;max-width:16em;color:#7b241c}} form{{display:inline}}</style></head><body>
<h2>xdplab room</h2><p>{n} attendees · solutions released: <span id="rel">{rel}</span>
· updates every 2 s</p>
<table><thead><tr><th>attendee</th>{heads}</tr></thead><tbody id="rows">{rows}</tbody></table>
<h3>Release solutions</h3><form method="post" action="release">
<input type="hidden" name="_xsrf" value="{xsrf}"><select name="lab">{options}</select>
<button>release to everyone</button></form>
<script>
const xsrf = {xsrf_js};
function cell(s, who, lab) {{
  const cls = s.state.replace(' ', '');
  const d = s.detail ? `<small>${{s.detail.replace(/</g,'&lt;')}}</small>` : '';
  return `<td class="${{cls}}">${{s.state}}${{d}}<form method="post" action="reset">` +
    `<input type="hidden" name="_xsrf" value="${{xsrf}}"><input type="hidden" name="user" value="${{who}}">` +
    `<input type="hidden" name="lab" value="${{lab}}"><button title="pristine copy; theirs kept">reset</button></form></td>`;
}}
async function refresh() {{
  const r = await fetch('api/status'); if (!r.ok) return;
  const s = await r.json();
  document.getElementById('rel').textContent = s.released.join(', ') || 'none';
  document.getElementById('rows').innerHTML = s.attendees.map(a =>
    `<tr><th>${{a.name}}</th>` + s.labs.map(l => cell(a.labs[l], a.name, l)).join('') + '</tr>').join('');
}}
setInterval(refresh, 2000);
</script></body></html>"""


def _cell(s: dict, who: str, lab: str, xsrf: str) -> str:
    e = html.escape
    d = f"<small>{e(s['detail'])}</small>" if s.get("detail") else ""
    return (f"<td class='{s['state'].replace(' ', '')}'>{e(s['state'])}{d}<form method='post' action='reset'>"
            f"<input type='hidden' name='_xsrf' value='{e(xsrf)}'><input type='hidden' name='user' value='{e(who)}'>"
            f"<input type='hidden' name='lab' value='{e(lab)}'><button>reset</button></form></td>")


def make_app(room):
    # the hub's service API: requirements-workshop.txt, not a dependency of the library
    from jupyterhub.services.auth import HubOAuthCallbackHandler, HubOAuthenticated
    from jupyterhub.utils import url_path_join
    from tornado import web


    prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/services/xdplab-room/")
    admins = {a.name for a in room.attendees if a.admin}

    class Base(HubOAuthenticated, web.RequestHandler):
        def prepare(self):
            user = self.current_user
            if user is None:
                return                       # @web.authenticated sends them to the hub's login
            if user.get("name") not in admins:
                raise web.HTTPError(403, "the room's view is for its instructor")

    class Page(Base):
        @web.authenticated
        def get(self):
            st = status(room)
            xsrf = self.xsrf_token.decode() if isinstance(self.xsrf_token, bytes) else self.xsrf_token
            heads = "".join(f"<th>{html.escape(l)}</th>" for l in st["labs"])
            rows = "".join(f"<tr><th>{html.escape(a['name'])}</th>"
                           + "".join(_cell(a["labs"][l], a["name"], l, xsrf) for l in st["labs"]) + "</tr>"
                           for a in st["attendees"])
            options = "".join(f"<option>{html.escape(l)}</option>" for l in st["labs"])
            self.write(PAGE.format(n=len(st["attendees"]), rel=html.escape(", ".join(st["released"]) or "none"),
                                   heads=heads, rows=rows, options=options, xsrf=html.escape(xsrf),
                                   xsrf_js=json.dumps(xsrf)))

    class Status(Base):
        @web.authenticated
        def get(self):
            self.set_header("Content-Type", "application/json")
            self.write(json.dumps(status(room)))

    def _done(handler, result):
        if "application/json" in handler.request.headers.get("Accept", ""):
            handler.set_header("Content-Type", "application/json")
            handler.write(json.dumps(result))
        else:
            handler.redirect(prefix)

    class Reset(Base):
        @web.authenticated
        def post(self):
            try:
                done = reset_lab(room, self.get_argument("user"), self.get_argument("lab"))
            except XDPLabError as e:
                raise web.HTTPError(400, str(e)) from None
            _done(self, {"reset": done})

    class Release(Base):
        @web.authenticated
        def post(self):
            try:
                lab = release(room, self.get_argument("lab"))
            except XDPLabError as e:
                raise web.HTTPError(400, str(e)) from None
            _done(self, {"released": lab})

    return web.Application([
        (prefix, Page), (url_path_join(prefix, "api/status"), Status),
        (url_path_join(prefix, "reset"), Reset), (url_path_join(prefix, "release"), Release),
        (url_path_join(prefix, "oauth_callback"), HubOAuthCallbackHandler),
    ], cookie_secret=secrets.token_bytes(32), xsrf_cookies=True)


def main(argv=None) -> int:

    p = argparse.ArgumentParser(prog="xdplab.room")
    p.add_argument("--room", required=True)
    args = p.parse_args(argv)
    room = Room.load(args.room)
    app = make_app(room)
    url = urlparse(os.environ.get("JUPYTERHUB_SERVICE_URL", f"http://127.0.0.1:{room.service_port}"))

    async def run():
        app.listen(url.port, url.hostname)
        await asyncio.Event().wait()
    asyncio.run(run())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


grading.REPORT_HOOKS.append(record_report)      # every graded Report is recorded (a workshop)
