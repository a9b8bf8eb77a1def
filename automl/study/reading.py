"""Reading every trial of a large study fast, for the commands that only read it.

Optuna's RDB storage loads a study's trials through its ORM, one object per row of every table
(a 10,000-trial study of 20-epoch trials holds about 200,000 intermediate values and 130,000
attribute rows): seconds to minutes. `read_once` reads the same tables with plain SELECTs of
Optuna's own table definitions, leaves the intermediate values out unless asked, builds the same
FrozenTrials with Optuna's own conversions, and answers every later `get_trials` of that study
object from that one read. tests/test_study.py holds it equal to Optuna's own read.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any


def _rdb(study):
    """The study's RDBStorage (behind Optuna's cache), or None for other storages."""
    return rdb_of(getattr(study, "_storage", None))


def rdb_of(storage):
    """The RDBStorage behind a storage (Optuna's cache), or None for other storages."""
    from optuna.storages import RDBStorage

    storage = getattr(storage, "_backend", storage)
    return storage if isinstance(storage, RDBStorage) else None


def fast_trials(study, *, intermediate: bool = True) -> list | None:
    """Every trial of the study as Optuna's FrozenTrials, read with plain SELECTs (intermediate
    values only when asked); None when the storage is not Optuna's RDB storage."""
    storage = _rdb(study)
    return None if storage is None else rdb_trials(storage, study._study_id,
                                                   intermediate=intermediate)


def rdb_trials(storage, study_id: int, *, intermediate: bool = True,
               numbers: Collection[int] | None = None) -> list:
    """Every trial of study `study_id` of an RDBStorage (or those numbered `numbers`), as
    `fast_trials` reads them.

    Private API: Optuna's RDB table models (`optuna.storages._rdb.models`) and their stored
    representations (pyproject.toml's private-apis).
    """
    import sqlalchemy
    from optuna import distributions
    from optuna.storages._rdb import models
    from optuna.trial import FrozenTrial, TrialState

    trials_t = models.TrialModel.__table__
    which = trials_t.c.study_id == study_id
    if numbers is not None:
        which = which & trials_t.c.number.in_(sorted(numbers))
    ids = sqlalchemy.select(trials_t.c.trial_id).where(which)
    rows: dict[int, dict[str, Any]] = {}
    with storage.engine.connect() as c:
        for r in c.execute(sqlalchemy.select(trials_t).where(which).order_by(trials_t.c.number)):
            rows[r.trial_id] = {"number": r.number, "state": r.state, "start": r.datetime_start,
                                "complete": r.datetime_complete, "values": {}, "params": [],
                                "user": {}, "system": {}, "steps": {}}

        def each(model, *columns: str):  # plain tuples: a row object per cell costs seconds
            table = model.__table__
            return c.execute(sqlalchemy.select(table.c.trial_id, *(table.c[k] for k in columns))
                             .where(table.c.trial_id.in_(ids)))

        # a stored value is None exactly when it is not finite (its type then says which)
        to_value = models.TrialValueModel.stored_repr_to_value
        for trial_id, objective, v, kind in each(models.TrialValueModel, "objective", "value",
                                                 "value_type"):
            rows[trial_id]["values"][objective] = v if v is not None else to_value(v, kind)
        for trial_id, *param in each(models.TrialParamModel, "param_id", "param_name",
                                     "param_value", "distribution_json"):
            rows[trial_id]["params"].append(param)
        for trial_id, key, text in each(models.TrialUserAttributeModel, "key", "value_json"):
            rows[trial_id]["user"][key] = json.loads(text)
        for trial_id, key, text in each(models.TrialSystemAttributeModel, "key", "value_json"):
            rows[trial_id]["system"][key] = json.loads(text)
        if intermediate:
            step_value = models.TrialIntermediateValueModel.stored_repr_to_intermediate_value
            for trial_id, step, v, kind in each(models.TrialIntermediateValueModel, "step",
                                                "intermediate_value", "intermediate_value_type"):
                rows[trial_id]["steps"][step] = v if v is not None else step_value(v, kind)
    parsed: dict[str, Any] = {}  # distribution JSON -> distribution (a study has few of them)
    out = []
    for trial_id, r in rows.items():
        params, dists = {}, {}
        for _, name, value, dist_json in sorted(r["params"]):
            dist = parsed.get(dist_json) or parsed.setdefault(
                dist_json, distributions.json_to_distribution(dist_json))
            params[name] = dist.to_external_repr(value)
            dists[name] = dist
        values = [r["values"][k] for k in sorted(r["values"])] or None
        state = r["state"] if isinstance(r["state"], TrialState) else TrialState[r["state"]]
        out.append(FrozenTrial(
            number=r["number"], state=state, value=None, values=values,
            datetime_start=r["start"], datetime_complete=r["complete"], params=params,
            distributions=dists, user_attrs=r["user"], system_attrs=r["system"],
            intermediate_values=r["steps"], trial_id=trial_id))
    return out


NUMBERS_MAX = 500  # the most trial numbers rdb_trials_kept names in one query


def rdb_trials_kept(storage, study_id: int, finished: dict) -> list:
    """Every trial of study `study_id`, as `rdb_trials` reads them, reading again only those not
    in `finished` (trial number -> a finished trial, which Optuna's storage never changes again)
    and keeping the finished ones it reads there: a reader that asks again and again (the
    dashboard, every few seconds) reads the running and the new trials, not 10,000 of them."""
    import sqlalchemy
    from optuna.storages._rdb import models

    trials_t = models.TrialModel.__table__
    with storage.engine.connect() as c:
        have = {n: (i, start) for n, i, start in c.execute(sqlalchemy.select(
            trials_t.c.number, trials_t.c.trial_id, trials_t.c.datetime_start).where(
            trials_t.c.study_id == study_id))}
    for number in [n for n, t in finished.items()
                   if have.get(n) != (t._trial_id, t.datetime_start)]:
        del finished[number]  # a deleted study's (SQLite gives its ids to the next ones)
    todo = {n for n in have if n not in finished}
    # a long IN list is slow, and SQLite may refuse more than 999 values: then read them all
    read = rdb_trials(storage, study_id, numbers=todo if len(todo) <= NUMBERS_MAX else None
                      ) if todo else []
    finished.update((t.number, t) for t in read if t.state.is_finished())
    return sorted([*finished.values(), *(t for t in read if not t.state.is_finished())],
                  key=lambda t: t.number)


def with_intermediate(study, trials: list) -> list:
    """`trials` of `study` with their intermediate values: on an RDB storage read again for these
    trials alone (a study read by `read_once(intermediate=False)` has none), elsewhere as they
    are (every other storage's trials carry them)."""
    storage = _rdb(study)
    if storage is None or not trials:
        return trials
    return rdb_trials(storage, study._study_id, numbers={t.number for t in trials})


def read_once(study, *, intermediate: bool = True):
    """The study with its trials read once, for a command that only reads (status, report,
    export): every later `get_trials`/`trials` answers from that one read instead of loading
    every trial again. On an RDB storage the read is `fast_trials` (without the intermediate
    values when `intermediate` is False: a summary suffices). Nothing may write to the study
    object afterwards: its answers would not show the writes."""
    trials = fast_trials(study, intermediate=intermediate)
    return answering(study, study.get_trials(deepcopy=False) if trials is None else trials)


def answering(study, trials: list):
    """`study`, its `get_trials` and `trials` answering from `trials` (nothing copied or written;
    the caller writes nothing to it afterwards). Also a view of some trials of a study: an empty
    in-memory study answering with them (`automl report` draws a large study's curves so)."""
    def get_trials(deepcopy: bool = True, states=None):
        return [t for t in trials if states is None or t.state in states]

    study.get_trials = get_trials  # an instance attribute: `study.trials` reads it too
    study._get_trials = lambda deepcopy=True, states=None, use_cache=False: get_trials(
        deepcopy, states)
    return study
