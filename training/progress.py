"""A one-line progress bar on a terminal: series done, series per second and the time left when the total is
known. Drawn only when the stream is a terminal, at most ten times a second."""

from __future__ import annotations

import sys
import time
from typing import TextIO

WIDTH = 24


def clock(seconds: float) -> str:
    """1234.5 -> '20:34'; an hour or more -> '1:02:03'."""
    minutes, second = divmod(int(seconds), 60)
    hours, minute = divmod(minutes, 60)
    return f"{hours}:{minute:02d}:{second:02d}" if hours else f"{minute}:{second:02d}"


class Progress:
    """`update(done, total)` redraws the bar; `close()` clears it. Silent unless `stream` is a terminal."""

    def __init__(self, stream: TextIO = sys.stderr, enabled: bool = True):
        self.stream = stream
        self.enabled = enabled and stream.isatty()
        self.started = time.monotonic()
        self._drawn = self.started - 1.0  # the first update draws
        self._shown = False

    def update(self, done: int, total: int | None) -> None:
        now = time.monotonic()
        if not self.enabled or now - self._drawn < 0.1:
            return
        self._drawn = now
        rate = done / max(now - self.started, 1e-9)
        if total:
            share = min(done / total, 1.0)
            bar = "#" * round(WIDTH * share) + "-" * (WIDTH - round(WIDTH * share))
            left = clock((total - done) / rate) if rate > 0 else "?"
            line = f"[{bar}] {done}/{total} series  {rate:,.0f}/s  ETA {left}"
        else:
            line = f"{done} series  {rate:,.0f}/s"
        self.stream.write(f"\r{line}\033[K")
        self.stream.flush()
        self._shown = True

    def close(self) -> None:
        if self._shown:
            self.stream.write("\r\033[K")
            self.stream.flush()
