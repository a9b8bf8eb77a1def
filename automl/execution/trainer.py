"""One trial = one ultralytics training that reports its metrics after every epoch.

Kept free of Ray so the same code trains a promoted model; `automl.execution` wraps it.
"""

from __future__ import annotations

import gc
import math
import os
import time
import traceback
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from automl.config import RunSpec
from automl.epochs import EpochReport, task_metrics
from automl.fitness import parse_fitness
from automl.ultralytics_env import offline_env

_RAYTUNE_CALLBACK_MODULE = "ultralytics.utils.callbacks.raytune"


def epoch_metrics(trainer) -> dict[str, float]:
    """Precision, recall, mAP50, mAP75, mAP50-95 and F1 of the validation just run (of the boxes,
    and of the masks for a segmentation model)."""
    return task_metrics(trainer.validator.metrics)


def validation_loss(trainer) -> float:
    """The summed validation losses (box + cls + dfl for detection) of the epoch just run."""
    losses = [float(v) for k, v in (getattr(trainer, "metrics", None) or {}).items()
              if k.startswith("val/") and k.endswith("loss")]
    return sum(losses) if losses else float("nan")


def _trainer_setup(*, threads: int | None, final_eval: bool) -> Callable[[Any], None]:
    """An on_pretrain_routine_start callback: adjusts the trainer before its first epoch.

    (ultralytics still writes weights at the final epoch with save=False, ~0.5 s a trial:
    `YOLO.train` reloads them afterwards and raises without them, so they stay.)
    """

    def setup(trainer) -> None:
        # ultralytics seeds Python's global random in the trainer's __init__, then imports its
        # integration callbacks, whose first import (ray.tune -> rich) draws from it and so
        # changes the augmentation stream (docs/measured.md#provenance-not-recorded). Seeded
        # again here, before the dataset and model exist, a training no longer depends on what
        # the process ran before it.
        from ultralytics.utils import RANK
        from ultralytics.utils.torch_utils import init_seeds

        init_seeds(int(trainer.args.seed) + 1 + RANK, deterministic=trainer.args.deterministic)
        _drop_raytune_callback(trainer)
        if threads:
            # ultralytics' select_device resets torch to min(8, cores - 1) threads (1 on a
            # 2-core machine); a trial gets the CPUs it was given
            import torch

            torch.set_num_threads(int(threads))
        if not final_eval:
            # The final re-validation of best.pt costs a full val pass and re-fires
            # on_fit_epoch_end as epoch N+1; a trial already has every epoch's metrics.
            trainer.final_eval = lambda: None

    return setup


def _drop_raytune_callback(trainer) -> None:
    # Ultralytics attaches its own Ray Tune reporter when SETTINGS['raytune'] is on; inside our
    # trials it would report results without our metric and Ray's strict metric check would fail
    # the trial. Removing it from this trainer leaves the user's settings file untouched.
    for event, funcs in trainer.callbacks.items():
        trainer.callbacks[event] = [
            f for f in funcs if getattr(f, "__module__", "") != _RAYTUNE_CALLBACK_MODULE
        ]


def train_args(params: Mapping[str, Any], run: RunSpec, *, name: str) -> dict[str, Any]:
    """The keyword arguments for `YOLO.train`: fixed args, then the trial's params, then plumbing."""
    args: dict[str, Any] = dict(run.fixed)
    args.update(params)
    args.pop("model", None)  # a searched model is built by train_once (run_model)
    args.update(
        data=run.data,
        epochs=int(run.epochs),
        imgsz=int(params.get("imgsz", run.imgsz)),  # a searched imgsz, else the run's
        project=str(run.project),
        name=name,
        exist_ok=True,
        plots=False,  # plotting can try to fetch a font; trials need no plots
        save=run.save,
        val=True,
        verbose=False,
    )
    if "batch" not in params and run.batch is not None:
        args["batch"] = run.batch
    if run.device not in (None, ""):
        args["device"] = run.device
    if run.workers is not None:
        args["workers"] = run.workers
    return args


def run_model(params: Mapping[str, Any], run: RunSpec) -> str:
    """The model a training builds: the trial's own when the space searches `model`."""
    return str(params.get("model") or run.model)


def train_once(
    params: Mapping[str, Any],
    run: RunSpec,
    *,
    name: str,
    report: Callable[[EpochReport], None],
    should_stop: Callable[[], bool] | None = None,
    gpu_share: float | None = None,
) -> dict[str, Any]:
    """Train once and call `report` with an EpochReport after each validated epoch.

    Out of memory (model build, any batch, validation) trains again from the start with half the
    batch, `nbs` kept (ultralytics then accumulates gradients over nbs images and scales weight
    decay as the configuration meant), down to `run.min_batch`; the reports of a retry carry its
    batch and start again at epoch 1. ultralytics itself halves the batch in place on an
    out-of-memory forward or backward pass of the first epoch; that is kept, under the same floor.

    Never raises for a failed training: the error comes back as {"error": message}, with CUDA
    memory released, so the caller can mark the trial FAIL and go on.

    Returns:
        {"epochs": n, "batch": b} on success (b: the batch it trained with, 0 when unknown),
        {"stopped": True} when `should_stop` cut it short, or {"error": "..."}.
    """
    from automl.execution.memory import below_floor_message, retry_batch

    os.environ.update(offline_env())
    requested = _requested_batch(params, run)
    batch = requested
    while True:
        tried = {**params, "batch": batch} if batch != requested else params
        outcome = _train_at(tried, run, name=name, report=report, should_stop=should_stop,
                            gpu_share=gpu_share, requested=requested)
        if "out_of_memory" not in outcome:
            return outcome
        failed, where = outcome["out_of_memory"]
        batch = retry_batch(failed, run.min_batch)
        if batch is None:
            return {"error": below_floor_message(failed, run.min_batch, where)
                    if failed >= 1 else outcome["error"]}


def _requested_batch(params: Mapping[str, Any], run: RunSpec) -> int:
    """The batch a training asks for (ultralytics' default when nothing sets it); 0 when it is
    not a number of images (-1 or a memory fraction: ultralytics' autobatch)."""
    batch = train_args(params, run, name="").get("batch")
    if batch is None:
        from ultralytics.cfg import DEFAULT_CFG_DICT

        batch = DEFAULT_CFG_DICT["batch"]
    return int(batch) if float(batch) >= 1 and float(batch) == int(batch) else 0


def _train_at(
    params: Mapping[str, Any],
    run: RunSpec,
    *,
    name: str,
    report: Callable[[EpochReport], None],
    should_stop: Callable[[], bool] | None,
    gpu_share: float | None,
    requested: int,
) -> dict[str, Any]:
    """One attempt of `train_once`; {"out_of_memory": (batch, where), "error": ...} when it ran
    out of memory, where the batch is the one that did not fit."""
    from automl.execution.memory import is_out_of_memory, peak_memory, reset_peak

    fitness = parse_fitness(run.fitness)
    model = None
    checked = ExitStack()
    # what the trainer was doing when memory ran out: its batch and where (model build until
    # the first epoch starts)
    at: dict[str, Any] = {"batch": int(params.get("batch") or requested or 0),
                          "where": "model build"}
    try:
        from ultralytics import YOLO

        from automl.weights import checked_model

        start = time.perf_counter()  # train_seconds: the training's own time, model build on
        # a .pt is read and checked here, in this process, and ultralytics loads those bytes
        path = run_model(params, run)
        model = YOLO(checked.enter_context(checked_model(
            path, sha256=run.weights_sha256.get(path))))
        model.add_callback("on_pretrain_routine_start", _trainer_setup(
            threads=run.threads, final_eval=run.final_eval))

        def on_pretrain_routine_start(trainer) -> None:
            reset_peak(trainer.device)  # this training's peak, not an earlier one's in this process
            at["trainer"] = trainer
            if int(trainer.batch_size) >= 1:
                at["batch"] = int(trainer.batch_size)

        def on_train_epoch_start(trainer) -> None:
            batch = int(trainer.batch_size)
            if 1 <= batch < min(at["batch"], run.min_batch):
                # ultralytics halved it in place after an out-of-memory first batch
                raise _OutOfMemoryAt(at["batch"], at["where"])
            at["batch"], at["where"] = batch, f"epoch {int(trainer.epoch) + 1}"

        def on_epoch_end(trainer) -> None:
            metrics = epoch_metrics(trainer)
            value = fitness(metrics)
            epoch = int(trainer.epoch) + 1
            seconds = time.perf_counter() - start
            measured = {}
            if run.measure and epoch == int(run.epochs):
                measured = footprint(trainer, int(trainer.args.imgsz))  # the size it trained at
            stopped_by = early_stop(trainer, epoch)
            report(EpochReport(
                stopped_by=stopped_by,
                batch=int(trainer.batch_size),
                epoch=epoch,
                fitness=value if math.isfinite(value) else float("nan"),
                val_loss=validation_loss(trainer),
                train_seconds=seconds,
                device=str(trainer.device),
                requested_batch=requested,
                gpu_share=float("nan") if gpu_share is None else float(gpu_share),
                **peak_memory(trainer.device),
                **metrics,
                **measured,
            ))

        model.add_callback("on_pretrain_routine_start", on_pretrain_routine_start)
        model.add_callback("on_train_epoch_start", on_train_epoch_start)
        model.add_callback("on_fit_epoch_end", on_epoch_end)
        if should_stop is not None:

            def on_batch_end(trainer) -> None:
                if should_stop():
                    raise _Stopped

            model.add_callback("on_train_batch_end", on_batch_end)
        args = train_args(params, run, name=name)
        if isinstance(args.get("pretrained"), str) and Path(args["pretrained"]).suffix == ".pt":
            # pretrained=FILE is read by path too: the private copy of its checked bytes
            args["pretrained"] = checked.enter_context(checked_model(
                args["pretrained"], "pretrained=",
                sha256=run.weights_sha256.get(args["pretrained"])))
        model.train(**args)
        return {"epochs": int(model.trainer.epoch) + 1,  # fewer where patience stopped it
                "batch": max(int(at["batch"]), 0)}
    except _Stopped:
        return {"stopped": True}
    except _OutOfMemoryAt as e:
        return {"out_of_memory": (e.batch, e.where), "error": _describe(e)}
    except Exception as e:  # a bad hyperparameter or CUDA OOM fails this trial only
        halved = int(getattr(at.get("trainer"), "batch_size", 0) or 0)
        if is_out_of_memory(e) or 1 <= halved < min(at["batch"], run.min_batch):
            # (the second: ultralytics halved the batch below the floor and its rebuild at that
            # batch failed, e.g. batch 1 refused for BatchNorm)
            return {"out_of_memory": (at["batch"], at["where"]), "error": _describe(e)}
        return {"error": _describe(e)}
    finally:
        checked.close()
        at.pop("trainer", None)  # a retry needs the failed training's GPU memory back
        del model
        gc.collect()
        _free_cuda()
        _freeze_survivors()


def early_stop(trainer, epoch: int) -> str:
    """Why ultralytics' own stopping ends the training at this epoch: "time" when `time=` ends
    it (its epochs are then the ones that time allowed, whatever `epochs` said), "patience" when
    its early stopping ends it before its last epoch, "" otherwise. Its weights are then saved as
    at a final epoch: `YOLO.train` reloads them (with save=False ultralytics writes them at what
    it took for the final epoch alone, which `time=` moves after the fact)."""
    if not trainer.stop:
        return ""
    timed = bool(trainer.args.time)
    if not timed and epoch >= int(trainer.epochs):
        return ""
    if not trainer.args.save:
        trainer.save_model()
    return "time" if timed else "patience"


def footprint(trainer, imgsz: int) -> dict[str, float]:
    """Size and CPU latency of the weights the trainer just saved at its final epoch (last.pt,
    stripped as a deployment would be), on the threads the training used.

    Raises:
        RuntimeError: the weights could not be measured (the trial fails with this message).
    """
    import torch

    from automl.execution.footprint import measure_checkpoint

    try:
        size, latency = measure_checkpoint(trainer.last, imgsz, threads=torch.get_num_threads())
    except Exception as e:
        raise RuntimeError(f"measuring the trained weights' size and latency failed: "
                           f"{type(e).__name__}: {e}") from e
    return {"size_mb": size, "latency_ms": latency}


_frozen = False


def _freeze_survivors() -> None:
    """After a process's first training, move every surviving object out of the collector's view.

    What survives a full collection then is module state and caches that torch, ultralytics and
    polars built lazily during the first training: hundreds of thousands of objects that every
    later `gc.collect()` (ultralytics' at the end of each training, ours above) would scan
    again. Frozen, those collections scan only what the trial itself created, which matters for
    reused Ray workers, each training many trials (benchmarks/README.md, "Engine overhead per
    trial"). The cost is that an object frozen here is never collected, and it is alive when
    frozen, so at most some caches stay for good.
    """
    global _frozen
    if not _frozen:
        gc.freeze()
        _frozen = True


class _Stopped(Exception):
    """Raised inside the training loop when the scheduler has stopped the trial."""


class _OutOfMemoryAt(Exception):
    """Raised when ultralytics' own retry went below the floor: memory ran out at `batch`."""

    def __init__(self, batch: int, where: str) -> None:
        super().__init__(f"out of memory at batch {batch} ({where})")
        self.batch, self.where = batch, where


def _describe(e: BaseException) -> str:
    from automl.execution.memory import is_out_of_memory

    name = type(e).__name__
    if is_out_of_memory(e):
        return f"CUDA out of memory ({e}); lower --batch or --imgsz, or raise --gpus-per-trial"
    where = traceback.extract_tb(e.__traceback__)[-1] if e.__traceback__ else None
    at = f" (at {os.path.basename(where.filename)}:{where.lineno})" if where else ""
    return f"{name}: {e}{at}"


def _free_cuda() -> None:
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except Exception:  # freeing memory must never mask the trial's own outcome
        pass
