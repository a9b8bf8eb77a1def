"""Replayed trainings: recorded learning curves stand in for real ones (benchmarks and tests).

A replayed trial reports the curve its record gives its configuration (automl.execution.record)
instead of training, so a search, its study records and its pruners run unchanged, in seconds
instead of hours:

- through Ray Tune, as a real search (`automl.search(..., replay=PATH)`, trainable `replay_trial`);
- in this process, without Ray (`automl.api.simulate_search`: the real search's steps, with
  automl.execution.simulator standing in for Ray Tune at concurrency 1). Thousands of searches
  fit in minutes this way; tests check it proposes and records exactly what the Ray path does.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from automl.epochs import EpochReport
from automl.execution.record import load_record


def trial_seed(run, config: Mapping[str, Any]) -> int:
    """The training seed of a trial: its own (a repeat's), else the run's fixed `seed`, else 0
    (ultralytics' default: every trial of a search trains with seed 0)."""
    if config.get("seed") is not None:
        return int(config["seed"]) + int(run.fixed.get("seed", 0))
    return int(run.fixed.get("seed", 0))


def replay_trial(config: dict[str, Any]) -> None:
    """Ray Tune function trainable: report the recorded epochs of the nearest configuration.

    The baseline trial replays the plain training's values of the recorded keys.
    """
    import ray
    from ray import tune

    node = ray.get_runtime_context().get_node_id()
    pause = float(getattr(config["run"], "replay_epoch_seconds", 0.0))
    for epoch in replayed_epochs(config):
        if pause:  # the stand-in for an epoch's training time (scale benchmarks)
            time.sleep(pause)
        tune.report({**epoch.as_dict(), "node": node})


def replayed_epochs(config: Mapping[str, Any]) -> list[EpochReport]:
    """What a trial with this Ray config reports when replayed (see replay_trial).

    Each epoch's fitness is the search's fitness of the recorded metrics (a record made under
    another fitness replays under this one: the metrics are what was measured).
    """

    from automl.fitness import parse_fitness

    run = config["run"]
    record = load_record(run.replay)
    params = {**config["params"], **run.baseline_fixed} if config.get("baseline") else \
        {**run.fixed, **config["params"]}
    epochs = record.blended_curve(params, trial_seed(run, config), run.replay_neighbours,
                                  run.replay_bandwidth)
    recorded = str(record.meta.get("fitness") or "v5")
    if parse_fitness(run.fitness).weights == parse_fitness(recorded).weights:
        return epochs
    fit = parse_fitness(run.fitness)
    return [replace(e, fitness=fit(e.metrics())) for e in epochs]
