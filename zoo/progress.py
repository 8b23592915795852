"""Progress of `zoo bench` (and the bars of `zoo invert` / `zoo edit`): one place decides what is shown.

* On a terminal: tqdm bars (per method and split, with the methods' per-step bars inside a batch) plus one line when
  a method starts.
* Otherwise (a log file: `./run bench > log 2>&1`): plain lines, never bars --
  `bench: method 3/10 idinvert on peeps, unit 5/16, elapsed 2m10s, method ETA 4m05s` -- at most every
  `ZOO_PROGRESS_INTERVAL` seconds (default 10) as units finish, one when a method starts and when its timing starts,
  and a heartbeat (`..., still on unit 6 (45s)`) when one unit (or batch) runs longer than three intervals.
* `zoo -q` (the `zoo` logger above INFO) hides both; lines go through the run's `log` function.

`run_bench` calls `start(...)` once, `BenchProgress.method` / `.plan` / `.phase` per method and `stop()` at the end;
`run_units` reports units through `units_bar` (a tqdm-like context manager) and asks `step_bars()` whether the
inverter should draw its own per-step bar.
"""

from __future__ import annotations

import math
import os
import sys
import threading
import time
from collections.abc import Callable

from tqdm.auto import tqdm

from . import log as zlog

INTERVAL_ENV = "ZOO_PROGRESS_INTERVAL"
DEFAULT_INTERVAL = 10.0
HEARTBEAT_FACTOR = 3  # a heartbeat line after this many intervals (30 s) without one

_active: BenchProgress | None = None


def bars_enabled(progress: bool | None = None) -> bool:
    """tqdm bars: never below INFO (`-q`); `progress` True / False forces them; None = when stderr is a terminal."""
    if not zlog.shown(zlog.logging.INFO) or progress is False:
        return False
    if progress:
        return True
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def interval() -> float:
    try:
        return max(0.0, float(os.environ.get(INTERVAL_ENV, DEFAULT_INTERVAL)))
    except ValueError:
        return DEFAULT_INTERVAL


def duration(seconds: float | None) -> str:
    """12 -> '12s', 130 -> '2m10s', 7300 -> '2h01m'; None -> '?'."""
    if seconds is None or not math.isfinite(seconds):
        return "?"
    s = round(max(0.0, seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


class BenchProgress:
    """The overall progress of a bench run: method k of N, unit i of M, elapsed time and the method's ETA.

    ETA = remaining units x (seconds per unit computed so far in this method); units loaded from the cache count
    as done and do not enter the rate.
    """

    def __init__(self, n_methods: int, log: Callable[[str], None] | None = None, *, bars: bool = False,
                 every: float | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.n_methods = n_methods
        self.log = log or zlog.info
        self.bars = bars
        self.every = interval() if every is None else every
        self.clock = clock
        self.start_time = self.last_line = clock()
        self.k = 0
        self.name = ""
        self.units = 0
        self.done = 0
        self.computed = 0
        self.computed_s = 0.0
        self.method_start = self.unit_start = self.start_time
        self.what = ""
        self.closed = False
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ what the runner calls
    def method(self, method: str, domain: str | None = None) -> None:
        """The next method (k += 1) starts; its unit count follows with `plan`."""
        with self._lock:
            self.k += 1
            self.name = f"{method} on {domain}" if domain else method
            self.units = self.done = self.computed = 0
            self.computed_s = 0.0
            self.method_start = self.unit_start = self.clock()
            self.what = ""

    def plan(self, units: int) -> None:
        """The method has `units` work units (all splits); logs the start line."""
        with self._lock:
            self.units = units
            self._emit(force=True)

    def phase(self, what: str) -> None:
        """A stage after the units, e.g. 'timing 5 images at batch size 1' (logged at once)."""
        with self._lock:
            self.what = what
            self._emit(force=True)

    def advance(self, n: int, computed: bool = True) -> None:
        """`n` units finished (computed now, or loaded from the cache)."""
        if n <= 0:
            return
        with self._lock:
            now = self.clock()
            self.done += n
            if computed:
                self.computed += n
                self.computed_s += now - self.unit_start
            self.unit_start = now
            self._emit(force=self.done >= self.units > 0 and computed)

    def finish(self) -> None:
        with self._lock:
            if not self.closed and self.k:
                self.log(f"bench: {self.k} method run(s) done in {duration(self.clock() - self.start_time)}")
        self.close()

    def close(self) -> None:
        self.closed = True
        self._stop.set()

    # ------------------------------------------------------------------ lines
    def eta(self) -> float | None:
        if not self.computed:
            return None
        return (self.units - self.done) * self.computed_s / self.computed

    def line(self, heartbeat: bool = False) -> str:
        now = self.clock()
        head = f"bench: method {self.k}/{self.n_methods} {self.name}"
        if self.what:
            body = f"{head}, {self.what}, elapsed {duration(now - self.start_time)}"
        else:
            body = (f"{head}, unit {self.done}/{self.units}, elapsed {duration(now - self.start_time)}, "
                    f"method ETA {duration(self.eta()) if self.done < self.units else '0s'}")
        if heartbeat and not self.what and self.done < self.units:
            body += f", still on unit {self.done + 1} ({duration(now - self.unit_start)})"
        return body

    def _emit(self, force: bool = False, heartbeat: bool = False) -> None:
        now = self.clock()
        if not force and now - self.last_line < self.every:
            return
        self.last_line = now
        self.log(self.line(heartbeat))

    def prefix(self) -> str:
        return f"[{self.k}/{self.n_methods}] " if self.k else ""

    # ------------------------------------------------------------------ heartbeat
    def start_heartbeat(self) -> None:
        if self.every <= 0 or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._beat, name="zoo-progress", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        wait = self.every * HEARTBEAT_FACTOR
        while not self._stop.wait(wait / 4):
            with self._lock:
                if self.closed or _active is not self:
                    return
                if self.k and self.clock() - self.last_line >= wait:
                    self._emit(force=True, heartbeat=True)


def start(n_methods: int, log: Callable[[str], None] | None = None, progress: bool | None = None) -> BenchProgress:
    """Make a BenchProgress the active one (closing any earlier) with its heartbeat; `progress` as `bars_enabled`."""
    global _active
    stop()
    _active = BenchProgress(n_methods, log, bars=bars_enabled(progress))
    if not _active.bars:
        _active.start_heartbeat()
    return _active


def stop() -> None:
    """Close the active BenchProgress (idempotent)."""
    global _active
    if _active is not None:
        _active.close()
    _active = None


def active() -> BenchProgress | None:
    return _active


def step_bars() -> bool:
    """Whether an inverter should draw its own per-step bar (`invert(..., progress=True)`): bars are on."""
    return _active is not None and _active.bars


class ItemProgress:
    """Plain progress lines of `zoo invert` / `zoo edit` (never on a terminal, where the methods' bars show):
    `invert: 16/100 images, elapsed 1m02s, ETA 5m30s`, at most every interval and after the last item."""

    def __init__(self, label: str, total: int, log: Callable[[str], None] | None = None,
                 clock: Callable[[], float] = time.monotonic, every: float | None = None) -> None:
        self.label, self.total, self.log, self.clock = label, total, log or zlog.info, clock
        self.every = interval() if every is None else every
        self.start = self.last = clock()
        self.done = 0
        self.enabled = not bars_enabled(None)

    def advance(self, n: int) -> None:
        self.done += n
        now = self.clock()
        if not self.enabled or (now - self.last < self.every and self.done < self.total):
            return
        self.last = now
        rate = (now - self.start) / self.done if self.done else None
        eta = duration((self.total - self.done) * rate) if rate is not None else "?"
        self.log(f"{self.label}: {self.done}/{self.total} images, elapsed {duration(now - self.start)}, ETA {eta}")


class units_bar:  # lower case: used like tqdm
    """What `run_units` reports through: a tqdm bar on a terminal, and the active BenchProgress's counts.

    total: units to compute now; of: all units of the call (the others came from the cache)."""

    def __init__(self, total: int, of: int | None = None, desc: str = "", progress: bool | None = None) -> None:
        self.tracker = _active
        if self.tracker is not None and of is not None:
            self.tracker.advance(of - total, computed=False)
        show = self.tracker.bars if self.tracker is not None and progress is None else bars_enabled(progress)
        prefix = self.tracker.prefix() if self.tracker is not None else ""
        self.bar = tqdm(total=total, desc=prefix + desc, unit="img", leave=False, disable=not show)

    def update(self, n: int = 1) -> None:
        self.bar.update(n)
        if self.tracker is not None:
            self.tracker.advance(n)

    def close(self) -> None:
        self.bar.close()

    def __enter__(self) -> units_bar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
