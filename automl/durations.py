"""Durations as people write them: `45m`, `2h`, `1h30m`, `90s` (`--budget`), read in one place."""

from __future__ import annotations

import math
import re

_UNITS = {"h": 3600, "m": 60, "s": 1}
_PART = re.compile(r"(\d+(?:\.\d+)?)([hms])")


def parse_duration(text: str | float) -> float:
    """Seconds of a duration such as `45m`, `2h`, `1h30m` or `90s` (a bare number is seconds).

    Raises:
        ValueError: anything else (the option's check turns it into one line naming the flag).
    """
    if isinstance(text, (int, float)):
        seconds = float(text)
    else:
        written = str(text).strip().lower().replace(" ", "")
        if re.fullmatch(r"\d+(\.\d+)?", written):
            seconds = float(written)
        else:
            parts = _PART.findall(written)
            units = [unit for _, unit in parts]
            # each unit once, largest first, and nothing else in between
            if (not parts or "".join(f"{n}{u}" for n, u in parts) != written
                    or units != sorted(set(units), key=list(_UNITS).index)):
                raise ValueError(f"not a duration: {text!r}")
            seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"not a positive duration: {text!r}")
    return seconds


def duration_text(seconds: float) -> str:
    """A duration as `--budget` reads it, rounded up to the second: `1h30m`, `12m5s`, `45s`."""
    seconds = max(1, math.ceil(seconds - 1e-9))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return "".join(f"{n}{unit}" for n, unit in ((hours, "h"), (minutes, "m"), (seconds, "s"))
                   if n)
