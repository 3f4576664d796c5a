"""Live charts in the notebook: bokeh figures inside a jupyter_bokeh ``BokehModel`` widget,
fed from a background thread, so the notebook stays usable while they update.

``LivePlot(prog)`` draws packets/s per XDP action from ``prog.counters()``; ``Sampler`` is
the reusable part (a thread that calls a function at a fixed rate and streams its dict of
numbers into a ColumnDataSource) for other live views.
"""
from __future__ import annotations

import threading
import time

from .maps import ACTIONS

_bokehjs_loaded = False


def ensure_bokehjs() -> None:
    """Load BokehJS into the notebook page, once per kernel, from the installed bokeh
    (INLINE: the lab works offline, there is no CDN to fetch it from). jupyter_bokeh's
    widgets render only once it is loaded; ``%load_ext xdplab`` calls this."""
    global _bokehjs_loaded
    if _bokehjs_loaded:
        return
    try:
        from IPython import get_ipython
    except ImportError:
        return
    if get_ipython() is None:
        return                       # no notebook (a script, a test): nothing to load into
    from bokeh.io import output_notebook
    from bokeh.resources import INLINE
    output_notebook(resources=INLINE, hide_banner=True)
    _bokehjs_loaded = True


def widget(model):
    """A bokeh figure/layout as a live notebook widget (BokehJS loaded first)."""
    from jupyter_bokeh import BokehModel
    ensure_bokehjs()
    return BokehModel(model)


COLORS = {"ABORTED": "#d62728", "DROP": "#ff7f0e", "PASS": "#2ca02c", "TX": "#1f77b4",
          "REDIRECT": "#9467bd"}


class Sampler:
    """Call ``read()`` every ``interval`` seconds on a daemon thread and stream the dict it
    returns (plus ``t``: seconds since start) into ``source``. ``alive()`` returning False,
    ``stop()`` or ``duration`` end it. The last ``keep`` samples stay in ``samples``."""

    def __init__(self, read, source=None, interval: float = 0.25, rollover: int = 240,
                 alive=lambda: True, duration: float | None = None, keep: int = 10000):
        self.read, self.source, self.interval = read, source, interval
        self.rollover, self.alive, self.duration, self.keep = rollover, alive, duration, keep
        self.samples: list[dict] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> "Sampler":
        if self.source is not None:
            import pandas  # noqa: F401  bokeh imports it lazily in stream(): not on two threads at once
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, daemon=True, name="xdplab-sampler")
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _loop(self) -> None:
        t0 = time.monotonic()
        next_t = t0
        while not self._stop.is_set():
            if not self.alive() or (self.duration and time.monotonic() - t0 > self.duration):
                break
            try:
                row = self.read()
            except Exception:          # the program went away under us
                break
            if row is not None:
                row = {"t": time.monotonic() - t0, **row}
                self.samples.append(row)
                del self.samples[:-self.keep]
                if self.source is not None:
                    try:
                        self.source.stream({k: [v] for k, v in row.items()}, rollover=self.rollover)
                    except Exception:      # the chart's document busy (another thread): skip a point,
                        pass               # never end the live view
            next_t += self.interval
            self._stop.wait(max(0.0, next_t - time.monotonic()))


def rate_reader(read_totals):
    """Turn a function returning cumulative totals into one returning per-second rates."""
    state = {"last": None, "t": None}

    def read():
        now, totals = time.monotonic(), read_totals()
        last, t = state["last"], state["t"]
        state["last"], state["t"] = totals, now
        if last is None:
            return None
        dt = max(now - t, 1e-6)
        return {k: (totals[k] - last[k]) / dt for k in totals}
    return read


class LivePlot:
    """Packets per second for each XDP action of ``prog``, updated ``hz`` times a second.

    Display it (last expression in a cell, or ``display(plot)``); ``stop()`` ends it,
    and it ends by itself when the program is detached."""

    def __init__(self, prog, hz: float = 4, window: float = 60, title: str | None = None,
                 duration: float | None = None, height: int = 260):
        from bokeh.models import ColumnDataSource
        self.prog = prog
        self.source = ColumnDataSource({"t": [], **{a: [] for a in ACTIONS}})
        self.sampler = Sampler(rate_reader(lambda: prog.counters().packets), self.source,
                               interval=1 / hz, rollover=int(window * hz),
                               alive=lambda: prog.attached, duration=duration)
        self.title = title or f"{prog.name}: packets/s per action"
        self.height = height
        self._widget = None

    def figure(self):
        from bokeh.plotting import figure
        fig = figure(title=self.title, height=self.height, sizing_mode="stretch_width",
                     x_axis_label="seconds", y_axis_label="packets/s", tools="pan,wheel_zoom,reset,hover")
        for a in ACTIONS:
            fig.line("t", a, source=self.source, color=COLORS[a], line_width=2, legend_label=f"XDP_{a}")
        fig.legend.click_policy = "hide"
        fig.add_layout(fig.legend[0], "right")      # beside the plot, not over the lines
        return fig

    @property
    def widget(self):
        if self._widget is None:
            self._widget = widget(self.figure())
        return self._widget

    def start(self) -> "LivePlot":
        self.sampler.start()
        return self

    def stop(self) -> None:
        self.sampler.stop()

    @property
    def samples(self) -> list[dict]:
        return self.sampler.samples

    def _ipython_display_(self):
        from IPython.display import display
        ensure_bokehjs()
        display(self.widget)

    def __repr__(self) -> str:
        state = "running" if self.sampler.running else "stopped"
        return f"<LivePlot {self.prog.name} ({state}, {len(self.samples)} samples)>"
