"""Progress bars: redrawn in place on a terminal, whole sparse lines (no carriage returns) in a log."""
import io
import math
import subprocess
import sys

from gnnmimo.progress import LogLines, progress_bar
from helpers import TINY_EVALUATE, with_option


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def drive(bar, updates: int = 500) -> None:
    with bar:
        for _ in range(updates):
            bar.update(1)
            bar.set_postfix(errors=3)   # set_postfix asks for a redraw each time


def test_a_bar_on_a_terminal_redraws_in_place():
    stream = Terminal()
    drive(progress_bar(file=stream, total=500, mininterval=0))
    assert stream.getvalue().count("\r") > 100


def test_a_bar_in_a_log_writes_one_line_per_interval_and_its_final_state():
    stream = io.StringIO()
    bar = progress_bar(file=stream, total=500, desc="Nt=8", mininterval=math.inf)
    assert isinstance(bar, LogLines)
    drive(bar)
    lines = stream.getvalue().split("\n")
    assert "\r" not in stream.getvalue() and lines[-1] == ""
    assert len(lines) == 2 and lines[0].startswith("Nt=8: 100%") and "500/500" in lines[0]

    stream = io.StringIO()
    drive(progress_bar(file=stream, total=500, mininterval=0), updates=20)   # no throttle: every redraw a line
    assert "\r" not in stream.getvalue() and stream.getvalue().count("\n") >= 20


def test_a_disabled_bar_writes_nothing():
    stream = io.StringIO()
    drive(progress_bar(enabled=False, file=stream, total=500))
    assert stream.getvalue() == ""


def test_a_redirected_evaluation_writes_no_carriage_returns():
    """``gnnmimo evaluate > log 2>&1`` (stderr a pipe here): one line per point, not a redraw per batch."""
    argv = with_option(with_option([a for a in TINY_EVALUATE if a != "--no-progress"], "--max-symbols", "4000"),
                       "--target-errors", "4000")
    result = subprocess.run([sys.executable, "-m", "gnnmimo", *argv, "--threads", "1"], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "\r" not in result.stderr
    progress = [line for line in result.stderr.splitlines() if line.startswith("Nt=")]
    assert [line.split(":")[0] for line in progress] == ["Nt=2 SNR=0 dB", "Nt=2 SNR=5 dB"]
