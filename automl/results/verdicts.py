"""What a search's study decides for its summary: the plain training's verdict, and no trial
within the caps."""

from __future__ import annotations

from automl.console import measured_text


def no_feasible_trial(study, goals) -> str | None:
    """One line when trials completed but none met the caps, naming the closest one."""
    from optuna.trial import TrialState

    from automl.objectives import feasible
    from automl.study import fitness_of

    if not goals.caps:
        return None
    measured = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                if t.constraints]
    if not measured or any(feasible(t) for t in measured):
        return None
    caps = sorted(goals.caps.items())

    def excess(t) -> float:  # how far over its caps, relative to each cap
        return sum(max(0.0, t.constraints.get(k, 0.0)) / cap for k, cap in caps)

    closest = min(measured, key=lambda t: (excess(t), t.number))
    limits = " and ".join(f"{'--max-size-mb' if k == 'size_mb' else '--max-latency-ms'} {cap:g}"
                          for k, cap in caps)
    return (f"no trial met {limits}: {len(measured)} completed, all over; the closest is "
            f"#{closest.number} ({measured_text(closest.user_attrs)}, fitness "
            f"{fitness_of(closest):.4f}); raise the cap, or search smaller models or images "
            "(model and imgsz as keys of the space)")


def plain_training(study):
    """The study's COMPLETE plain training (trial #0, its repeats aside), or None."""
    from optuna.trial import TrialState

    from automl.study import BASELINE_ATTR, REPEAT_OF_ATTR

    plain = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
             if t.user_attrs.get(BASELINE_ATTR) and REPEAT_OF_ATTR not in t.user_attrs]
    return plain[-1] if plain else None


def baseline_verdict(study) -> str | None:
    """One line: how much the best trial beats the plain training (trial #0), or that it does not."""
    from automl.objectives import feasible
    from automl.study import best_trial, fitness_of, repeat_means

    base, best = plain_training(study), best_trial(study)
    if base is None or best is None:
        return None
    if not feasible(base):
        return (f"the plain training (#{base.number}, fitness {fitness_of(base):.4f}) is over "
                f"a cap ({measured_text(base.user_attrs)}); best within the caps: "
                f"#{best.number} {fitness_of(best):.4f}")
    means = repeat_means(study)
    # with repeats, a trial is worth its mean; the plain training too when it was repeated
    best_value = means[best.number][0] if best.number in means else fitness_of(best)
    base_value = means[base.number][0] if base.number in means else fitness_of(base)
    what = "mean " if means else ""
    if best.number == base.number or best_value <= base_value:
        return (f"the plain training (#{base.number}, {what}fitness {base_value:.4f}) is the best: "
                "no searched configuration beat it; use its settings (or search longer)")
    gain = best_value - base_value
    if f"{gain:.4f}" == "0.0000":  # a gain the printed digits cannot show is no gain
        return (f"best #{best.number} ties the plain training #{base.number} at {what}fitness "
                f"{base_value:.4f}: the search found nothing better on its data; keep the "
                "plain settings (or search longer)")
    rel = f" ({gain / base_value:+.0%})" if base_value > 0 else ""
    return (f"best #{best.number} {what}{best_value:.4f} beats the plain training "
            f"#{base.number} {base_value:.4f} by {gain:+.4f}{rel} on the search's data")
