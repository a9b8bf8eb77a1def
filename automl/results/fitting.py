"""`automl fit`'s steps: which run, what each left, and the summary, kept in one folder.

The steps of a fit run in order (`STEPS`); each finished one is written to the folder's
`steps.json` (atomically: a kill leaves the previous state or the new one, never half of one)
with what it left and its seconds. The same command run again reads it and goes on from the
first step not finished: a finished search is not searched again, a promotion not trained again.
The budget's clock goes on too: the seconds of the finished steps count as spent.

Everything here is pure but `StepState.load` / `save`; the steps themselves are automl.api.fit's.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from automl.errors import ConfigError

STATE = "steps.json"
STEPS = ("check", "search", "validate", "promote", "plain", "thresholds", "deploy", "report",
         "summary")
# Validations tried after the search, largest first: (top trials, training seeds) each; every
# one also trains the plain training with each seed.
VALIDATIONS = ((3, 2), (2, 2), (2, 1), (1, 1))
# Seconds kept after the search besides the two full-data trainings: thresholds (one val pass,
# swept on its cache), the report and the summary; and each export format (export, latency runs,
# one val pass).
AFTER_S = 30.0
DEPLOY_S = 60.0


def after_search_s(formats: str | None) -> float:
    """Seconds a fit keeps after the search besides its full-data trainings."""
    return AFTER_S + (DEPLOY_S * len([f for f in str(formats).split(",") if f.strip()])
                      if formats else 0.0)


@dataclass
class StepState:
    """The steps a fit finished, with what each left (a JSON-able dict) and its seconds.

    Attributes:
        folder: the fit's folder (steps.json is written there).
        settings: the command's settings: a fit goes on only with the same ones.
        done: step name -> {"seconds": s, ...what the step returned}.
    """

    folder: Path
    settings: dict[str, Any]
    done: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def spent_s(self) -> float:
        """Seconds the finished steps took (a step cut short counts nothing)."""
        return sum(float(d.get("seconds", 0.0)) for d in self.done.values())

    @classmethod
    def load(cls, folder: str | Path, settings: Mapping[str, Any]) -> StepState:
        """The folder's state, or a new one; an earlier fit of other settings is refused.

        Raises:
            ConfigError: the folder holds a fit with other settings (names them and the fix).
        """
        folder = Path(folder)
        path = folder / STATE
        if not path.is_file():
            return cls(folder, dict(settings))
        stored = json.loads(path.read_text())
        if stored.get("settings") != dict(settings):
            differ = sorted(k for k in {*stored.get("settings", {}), *settings}
                            if stored.get("settings", {}).get(k) != settings.get(k))
            raise ConfigError(f"--out {folder}: holds a fit with other settings ("
                              + ", ".join(f"{k}: {stored['settings'].get(k)!r} there, "
                                          f"{settings.get(k)!r} now" for k in differ)
                              + "); run it with the same flags to go on, or give a new --out")
        return cls(folder, dict(settings), dict(stored.get("done", {})))

    def save(self) -> None:
        """Write steps.json atomically (a temporary file renamed over it); only into a folder
        that exists (a fit makes it once its search is planned: a refusal leaves nothing)."""
        if not self.folder.is_dir():
            return
        text = json.dumps({"settings": self.settings, "done": self.done}, indent=1,
                          default=str, allow_nan=True)
        handle, temporary = tempfile.mkstemp(dir=self.folder, prefix=f".{STATE}.")
        try:
            with os.fdopen(handle, "w") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.replace(temporary, self.folder / STATE)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise


def run_steps(state: StepState, steps: Mapping[str, Callable[[], dict[str, Any] | None]], *,
              say: Callable[[str], None], clock: Callable[[], float] = time.monotonic) -> None:
    """Run each step of `steps` (in STEPS' order) that `state` has not finished, saving after each.

    A step returns what it left (a dict) or None when it had nothing to do (skipped: recorded
    too, so that a rerun does not weigh it again). A step that raises is not recorded.
    """
    for name in (s for s in STEPS if s in steps):
        if name in state.done:
            say(f"fit: step {name} finished before, not run again")
            continue
        started = clock()
        left = steps[name]()
        state.done[name] = {**(left or {"skipped": True}), "seconds": clock() - started}
        state.save()
        say(f"fit: step {name} {'skipped' if left is None else 'done'} "
            f"({state.done[name]['seconds']:.0f} s)")


def training_s(*, epochs: int, epoch_s: float, fraction: float, overhead_s: float,
               trials_s: list[float] = ()) -> float:
    """Seconds of one full-data training: the search's epoch (at `fraction` of the images)
    extrapolated to all of them, or, longer, its whole trials' median wall seconds so
    extrapolated (their start included: a loaded machine starts a training slowly)."""
    planned = epochs * epoch_s / fraction + overhead_s
    if not trials_s:
        return planned
    return max(planned, statistics.median(trials_s) / fraction)


def choose_validation(*, left_s: float, train_s: float, kept_s: float,
                      candidates: int) -> tuple[int, int] | None:
    """(top, seeds) of the largest validation that fits what is left, or None.

    Args:
        left_s: seconds left of the budget (its margin taken off).
        train_s: seconds of one full-data training.
        kept_s: seconds the steps after the validation need (the promotions, thresholds, ...).
        candidates: searched trials that could be validated (the plain training not counted).
    """
    if candidates < 1 or not math.isfinite(train_s):
        return None
    for top, seeds in VALIDATIONS:
        top = min(top, candidates)
        if (top + 1) * seeds * train_s <= left_s - kept_s:
            return top, seeds
    return None


def comparison(tuned: Mapping[str, float], plain: Mapping[str, float],
               keys: tuple[str, ...] = ("fitness", "map50", "map50_95", "precision", "recall",
                                        "mask_map50_95", "pose_map50_95", "top1", "top5")
               ) -> list[dict[str, Any]]:
    """Rows of the tuned model against the plain training, both trained on the full data (the
    keys either has: box metrics, mask or keypoint mAP50-95, top-1 and top-5)."""
    rows = []
    for key in keys:
        a, b = tuned.get(key), plain.get(key)
        if a is None and b is None:
            continue
        gain = (a - b) if a is not None and b is not None else None
        rows.append({"metric": key, "tuned": a, "plain": b, "gain": gain})
    return rows


def summary_markdown(summary: Mapping[str, Any]) -> str:
    """The summary as markdown: what was made, the comparison, the thresholds, the time."""
    def num(v: Any) -> str:
        return "" if v is None else f"{v:+.4f}" if isinstance(v, float) and v < 0 else \
            f"{v:.4f}" if isinstance(v, float) else str(v)

    lines = [f"# automl fit: {summary['study']}", "",
             f"Data `{summary['data']}`, budget {summary['budget']}: "
             f"{summary['spent']} spent ({summary['planned']} planned).", "",
             f"- final weights: `{summary['weights']}` (trial #{summary['trial']})"]
    if summary.get("thresholds"):
        t = summary["thresholds"]
        lines.append(f"- thresholds: `{t['path']}` (conf {t['conf']:g}, NMS IoU {t['iou']:g}, "
                     f"chosen for {t['metric']})")
    for fmt, path in summary.get("exports", {}).items():
        lines.append(f"- {fmt}: `{path}`")
    lines += [f"- report: `{summary['report']}`", "",
              "## The tuned model against the plain training, both on the full data", "",
              "| metric | tuned | plain | gain |", "| --- | --- | --- | --- |"]
    for row in summary["comparison"]:
        gain = row["gain"]
        lines.append(f"| {row['metric']} | {num(row['tuned'])} | {num(row['plain'])} | "
                     + ("" if gain is None else f"{gain:+.4f}") + " |")
    if summary.get("validation"):
        lines += ["", f"Validation: {summary['validation']}"]
    lines += ["", "## Steps", "", "| step | seconds |", "| --- | --- |"]
    lines += [f"| {name} | {'skipped' if s is None else f'{s:.0f}'} |"
              for name, s in summary["steps"].items()]
    return "\n".join(lines) + "\n"
