"""Progress bars that suit a terminal and a log file alike.

On a terminal a tqdm bar redraws itself in place with carriage returns, ten times a second. Sent
to a file (``make demo > log``, a job scheduler's output), the same bar leaves every redraw in the
file: thousands of ``\\r``-separated copies on one line. :func:`progress_bar` gives the usual bar
(``tqdm.auto``: a widget in notebooks) when the stream is a terminal, and otherwise
:class:`LogLines`, which writes whole lines, at most one every :data:`LOG_INTERVAL` seconds, and
the final state when the bar closes.
"""
from __future__ import annotations

import sys
from typing import TextIO

from tqdm.auto import tqdm
from tqdm.std import tqdm as text_tqdm

#: seconds between two lines of a bar written to a stream that is not a terminal
LOG_INTERVAL = 30.0


class LogLines(text_tqdm):
    """A tqdm bar for logs: each display is one ``\\n``-terminated line in ASCII, never a carriage
    return, at most one per ``mininterval`` seconds (whatever asks for it: ``update``, ``set_postfix``,
    ``refresh``); nothing is erased (tqdm's clearing is skipped) and closing writes the final state.
    :func:`progress_bar` builds it with ``mininterval`` :data:`LOG_INTERVAL`, so a bar that lasts
    less than that writes one line, its last."""

    _closing = False

    def display(self, msg: str | None = None, pos: int | None = None) -> bool:
        if msg == "":  # tqdm erasing the bar (leave=False): a log keeps its lines
            return False
        elapsed = self.format_dict["elapsed"]
        if not self._closing and elapsed < getattr(self, "_line_at", 0.0) + self.mininterval:
            return False
        self._line_at = elapsed
        self.fp.write(f"{self if msg is None else msg}\n")
        self.fp.flush()
        return True

    def clear(self, nolock: bool = False) -> None:
        """Nothing to erase in a log (``tqdm.write`` calls this around its message)."""

    def close(self) -> None:
        if not self.disable:
            self._closing, self.leave = True, False  # the final line is written here, not again by tqdm
            self.display()
        super().close()


def is_terminal(stream: TextIO) -> bool:
    """Whether ``stream`` is an interactive terminal (a closed or odd stream counts as not)."""
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def progress_bar(*, enabled: bool = True, file: TextIO | None = None, **options) -> tqdm:
    """A tqdm bar (``options`` as tqdm's: ``total``, ``desc``, ``unit``, ``leave``, …) on ``file``
    (default ``sys.stderr``): disabled unless ``enabled``; the usual bar on a terminal; else
    :class:`LogLines` (module doc)."""
    file = sys.stderr if file is None else file
    if not enabled:
        return tqdm(disable=True, **options)
    if is_terminal(file):
        return tqdm(file=file, **options)
    return LogLines(file=file, ascii=True, **{"mininterval": LOG_INTERVAL, **options})
