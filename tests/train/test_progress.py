"""The stderr progress bar."""

from __future__ import annotations

import io

from alltokens.train.progress import ProgressBar, format_duration


def test_format_duration():
    assert format_duration(5) == "0:05"
    assert format_duration(125) == "2:05"
    assert format_duration(3725) == "1:02:05"
    assert format_duration(-3) == "0:00"


def test_bar_shows_step_fields_and_eta_one_line_per_update_off_a_terminal():
    stream = io.StringIO()
    bar = ProgressBar(total=10, stream=stream, width=10)
    bar.update(5, loss="1.2345", **{"tok/s": "1,000"})
    bar.update(10, loss="1.0000")
    bar.close()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("step 5/10 [#####.....] loss 1.2345 tok/s 1,000 eta ")
    assert lines[1].startswith("step 10/10 [##########]") and lines[1].endswith("eta 0:00")


def test_bar_redraws_in_place_on_a_terminal():
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Tty()
    bar = ProgressBar(total=4, stream=stream)
    bar.update(1)
    bar.update(2)
    bar.close()
    out = stream.getvalue()
    assert out.count("\r") == 2 and out.endswith("\n") and out.count("\n") == 1
