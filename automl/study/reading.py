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


def rdb_trials(storage, study_id: int, *, intermediate: bool = True) -> list:
    """Every trial of study `study_id` of an RDBStorage, as `fast_trials` reads them.

    Private API: Optuna's RDB table models (`optuna.storages._rdb.models`) and their stored
    representations (pyproject.toml's private-apis).
    """
    import sqlalchemy
    from optuna import distributions
    from optuna.storages._rdb import models
    from optuna.trial import FrozenTrial, TrialState

    trials_t = models.TrialModel.__table__
    ids = sqlalchemy.select(trials_t.c.trial_id).where(trials_t.c.study_id == study_id)
    rows: dict[int, dict[str, Any]] = {}
    with storage.engine.connect() as c:
        for r in c.execute(sqlalchemy.select(trials_t).where(
                trials_t.c.study_id == study_id).order_by(trials_t.c.number)):
            rows[r.trial_id] = {"number": r.number, "state": r.state, "start": r.datetime_start,
                                "complete": r.datetime_complete, "values": {}, "params": [],
                                "user": {}, "system": {}, "steps": {}}

        def each(model):
            table = model.__table__
            return c.execute(sqlalchemy.select(table).where(table.c.trial_id.in_(ids)))

        for r in each(models.TrialValueModel):
            rows[r.trial_id]["values"][r.objective] = models.TrialValueModel.stored_repr_to_value(
                r.value, r.value_type)
        for r in each(models.TrialParamModel):
            rows[r.trial_id]["params"].append((r.param_id, r.param_name, r.param_value,
                                               r.distribution_json))
        for r in each(models.TrialUserAttributeModel):
            rows[r.trial_id]["user"][r.key] = json.loads(r.value_json)
        for r in each(models.TrialSystemAttributeModel):
            rows[r.trial_id]["system"][r.key] = json.loads(r.value_json)
        if intermediate:
            convert = models.TrialIntermediateValueModel.stored_repr_to_intermediate_value
            for r in each(models.TrialIntermediateValueModel):
                rows[r.trial_id]["steps"][r.step] = convert(r.intermediate_value,
                                                             r.intermediate_value_type)
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
