"""Thousands of replayed trials on a two-node Ray cluster on this machine, shared PostgreSQL studies,
several drivers, random kills: the engine's overhead, what a study costs in storage, and that
nothing is lost (issue 30).

A head node and a worker node start with `ray start` on loopback (each its own --num-cpus; the
worker gets more CPUs so that its processes can be told apart), PostgreSQL holds the studies
(AUTOML_TEST_POSTGRES_URL, as .ci/run provisions it), and each phase runs D drivers, each an
`automl search --replay ... --address ...` process joining one study with its own --concurrency.
Every replayed trial reports the 20 recorded epochs of benchmarks/records/small.npz, each after
sleeping --epoch-seconds, with no pruner: a trial takes exactly 20 x epoch-seconds, and a phase of
N trials over S slots cannot take less than ceil(N / S) x that (the theoretical minimum).

    python benchmarks/scale.py --phases 1:400 2:600 4:1000 --epoch-seconds 0.25 \\
        --chaos-phase 4 --big 10000 --out /tmp/scale

prints per phase: wall time against the theoretical minimum, the engine's overhead per trial
(slot-seconds not spent in a replayed epoch, per trial), trials per second, storage rows and
bytes per trial; then the chaos phase's kills and its checks (no trial left RUNNING, every FAIL
an interruption whose configuration ran again, COMPLETE trials exactly the budget, the best
equal to the best of the COMPLETE trials, no proposal repeated), and how long `automl
status`, `report`, `export`, the dashboard's first page and its next poll take on the phases'
studies and on one of --big trials (500 made by the in-process replay, the same searcher and
storage writes, then copied with Optuna's add_trials up to --big). `--time-study NAME` times
those on an existing study alone (`--repeat` times).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RECORD = ROOT / "benchmarks" / "records" / "small.npz"
EPOCHS = 20  # the record's
HEAD_PORT = 6390
# the cluster's own folder: its processes are the ones whose command line names it (`ray stop`
# would stop every Ray on the machine, another search's too)
TEMP_DIR = "/tmp/ray-scale"


def sh(*cmd: str, check: bool = True, **kw) -> subprocess.CompletedProcess:
    done = subprocess.run(list(cmd), capture_output=True, text=True, **kw)
    if check and done.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stdout[-3000:]}"
                         f"\n{done.stderr[-3000:]}")
    return done


def ray_bin() -> str:
    return str(Path(sys.executable).with_name("ray"))


def start_head(cpus: int) -> None:
    sh(ray_bin(), "start", "--head", "--port", str(HEAD_PORT), "--num-cpus", str(cpus),
       "--node-ip-address", "127.0.0.1", "--include-dashboard", "false", "--disable-usage-stats",
       "--temp-dir", TEMP_DIR)


def start_worker(cpus: int) -> None:
    # the head (Ray 2.60) requires the token `ray start --head` keeps in ~/.ray/auth_token
    sh(ray_bin(), "start", "--address", f"127.0.0.1:{HEAD_PORT}", "--num-cpus", str(cpus),
       "--node-ip-address", "127.0.0.1", "--disable-usage-stats",
       env={**os.environ, "RAY_AUTH_MODE": "token"})


def worker_pids(cpus: int) -> list[int]:
    """The worker node's raylet and the processes it started (its CPU count tells it apart)."""
    procs = _processes()
    raylets = [p for p, _, a in procs if "/raylet " in a and f"CPU,{cpus}," in a
               and TEMP_DIR in a and "__internal_head__" not in a]
    return _with_descendants(raylets, procs)


def _processes() -> list[tuple[int, int, str]]:
    out = sh("ps", "-eo", "pid,ppid,args").stdout.splitlines()[1:]
    return [(int(p), int(pp), a) for p, pp, a in (line.split(None, 2) for line in out)]


def _with_descendants(roots: list[int], procs: list[tuple[int, int, str]]) -> list[int]:
    found, todo = set(roots), list(roots)
    while todo:
        parent = todo.pop()
        for pid, ppid, _ in procs:
            if ppid == parent and pid not in found:
                found.add(pid)
                todo.append(pid)
    return sorted(found)


def stop_ray() -> None:
    """Kill this benchmark's cluster: every process whose command line names its folder, and
    what they started (Ray's agents rename themselves `ray::DashboardAgent`, ...)."""
    procs = _processes()
    roots = [p for p, _, a in procs if TEMP_DIR in a and p != os.getpid()]
    for pid in _with_descendants(roots, procs):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def postgres_url() -> str:
    url = os.environ.get("AUTOML_TEST_POSTGRES_URL")
    if not url:
        raise SystemExit("set AUTOML_TEST_POSTGRES_URL (source .ci/provision does)")
    return url


def driver_cmd(args, study: str, trials: int, space: Path, storage: str) -> list[str]:
    return [sys.executable, "-m", "automl", "search", "--replay", str(RECORD), "--data",
            "replayed.yaml", "--space", str(space), "--study", study, "--storage", storage,
            "--trials", str(trials), "--pruner", "none", "--address",
            f"127.0.0.1:{HEAD_PORT}", "--concurrency", str(args.concurrency),
            "--cpus-per-trial", str(args.cpus_per_trial), "--replay-epoch-seconds",
            str(args.epoch_seconds), "--keep-weights", "none"]


def cpu_times() -> tuple[float, float]:
    """This machine's (busy, all) CPU seconds since boot, every core summed (/proc/stat)."""
    ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    idle = ticks[3] + ticks[4]  # idle, iowait
    hz = os.sysconf("SC_CLK_TCK")
    return (sum(ticks) - idle) / hz, sum(ticks) / hz


def run_phase(args, drivers: int, trials: int, space: Path, storage: str, work: Path,
              chaos: bool) -> dict:
    study = f"scale-{drivers}d-{trials}t{'-chaos' if chaos else ''}-{args.run}"
    env = {**os.environ, "AUTOML_HEARTBEAT_S": str(args.heartbeat)}
    logs = [open(work / f"{study}-driver{i}.log", "w") for i in range(drivers)]
    cmd = driver_cmd(args, study, trials, space, storage)
    cpu_start = cpu_times()
    start = time.perf_counter()
    procs = [subprocess.Popen(cmd, cwd=work, env=env, stdout=logs[i], stderr=subprocess.STDOUT,
                              start_new_session=True) for i in range(drivers)]
    kills = {"driver": 0, "worker node": 0}
    rng = random.Random(0)
    while any(p.poll() is None for p in procs):
        time.sleep(args.chaos_every if chaos else 1.0)
        if not chaos or time.perf_counter() - start > args.chaos_for:
            continue
        live = [i for i, p in enumerate(procs) if p.poll() is None]
        if not live:
            break
        if rng.random() < 0.6:  # a driver, started again at once with the same command
            i = rng.choice(live)
            os.killpg(procs[i].pid, signal.SIGKILL)
            procs[i].wait()
            procs[i] = subprocess.Popen(cmd, cwd=work, env=env, stdout=logs[i],
                                        stderr=subprocess.STDOUT, start_new_session=True)
            kills["driver"] += 1
        else:  # the worker node and every process on it, then it joins again
            for pid in worker_pids(args.worker_cpus):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(2)
            start_worker(args.worker_cpus)
            kills["worker node"] += 1
    wall = time.perf_counter() - start
    busy, every = (b - a for a, b in zip(cpu_start, cpu_times(), strict=True))
    codes = [p.returncode for p in procs]
    slots = min(drivers * args.concurrency,
                int((args.head_cpus + args.worker_cpus) / args.cpus_per_trial))
    trial_seconds = EPOCHS * args.epoch_seconds
    minimum = math.ceil(trials / slots) * trial_seconds
    return {"study": study, "drivers": drivers, "trials": trials, "slots": slots, "wall": wall,
            "minimum": minimum, "exit_codes": codes, "kills": kills,
            "overhead_ms": 1000 * (wall * slots - trials * trial_seconds) / trials,
            "trials_per_s": trials / wall,
            # the whole machine's: drivers, Ray's processes, PostgreSQL (and anything else)
            "cpu_busy": busy / every if every else math.nan, "cpu_ms_per_trial": 1000 * busy / trials,
            # Ray's processes left at the end (a killed node's that outlived it would show here)
            "ray_processes": sum(1 for _, _, a in _processes() if TEMP_DIR in a or "ray::" in a)}


def storage_cost(storage: str, study: str) -> dict:
    """Rows and bytes of the study in PostgreSQL, per trial."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(storage)
    with engine.connect() as c:
        sid = c.execute(sqlalchemy.text("SELECT study_id FROM studies WHERE study_name = :n"),
                        {"n": study}).scalar_one()
        n = c.execute(sqlalchemy.text("SELECT count(*) FROM trials WHERE study_id = :s"),
                      {"s": sid}).scalar_one()
        rows, size = 0, 0
        for table in ("trials", "trial_params", "trial_values", "trial_intermediate_values",
                      "trial_user_attributes", "trial_system_attributes", "trial_heartbeats"):
            sub = ("study_id = :s" if table == "trials" else
                   "trial_id IN (SELECT trial_id FROM trials WHERE study_id = :s)")
            count, width = c.execute(sqlalchemy.text(
                f"SELECT count(*), coalesce(sum(pg_column_size(t.*)), 0) FROM {table} t "
                f"WHERE {sub}"), {"s": sid}).one()
            rows += count
            size += width
    engine.dispose()
    return {"rows_per_trial": rows / n, "bytes_per_trial": size / n, "trials_in_study": n}


def verify(storage: str, study: str, budget: int) -> dict:
    """The checks of a run with kills: nothing lost, nothing counted twice, nothing repeated."""
    import optuna
    from optuna.trial import TrialState

    from automl.study import (
        BASELINE_ATTR,
        INTERRUPTED_ATTR,
        RETRY_OF_ATTR,
        best_trial,
        finished_trials,
    )

    s = optuna.load_study(study_name=study, storage=storage)
    trials = s.get_trials(deepcopy=False)
    states = {st.name: sum(1 for t in trials if t.state == st) for st in TrialState}
    fails = [t for t in trials if t.state == TrialState.FAIL]
    unexplained = [t.number for t in fails if not t.user_attrs.get(INTERRUPTED_ATTR)]
    retries = [t.user_attrs[RETRY_OF_ATTR] for t in trials if RETRY_OF_ATTR in t.user_attrs]
    not_retried = [t.number for t in fails if t.number not in retries]
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    best = best_trial(s)
    proposals = [tuple(sorted(t.params.items())) for t in trials
                 if RETRY_OF_ATTR not in t.user_attrs and not t.user_attrs.get(BASELINE_ATTR)
                 and t.state != TrialState.WAITING]
    return {
        "states": {k: v for k, v in states.items() if v},
        "running_left": states.get("RUNNING", 0),
        "fails_unexplained": unexplained,
        "fails_not_retried": not_retried,
        "retried_twice": sorted({r for r in retries if retries.count(r) > 1}),
        "finished_counted": len(finished_trials(s)), "budget": budget,
        "best_is_best_complete": best is not None and best.value == max(t.value for t in complete),
        "repeated_proposals": len(proposals) - len(set(proposals)),
        # a COMPLETE trial's own time in the study (ask to tell): the replayed epochs' sleep plus
        # the per-epoch round trips (Ray's result, the study's report) and the trial's writes
        "median_trial_s": statistics.median(
            (t.datetime_complete - t.datetime_start).total_seconds() for t in complete),
    }


def timed(cmd: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    sh(*cmd, cwd=cwd)
    return time.perf_counter() - start


POLL_S = 11  # optuna-dashboard reads a study of 500 trials or more again after 10 s


def usability(storage: str, study: str, work: Path) -> dict:
    """Seconds of `automl status`, `report`, `export`, the dashboard's first page and its next
    poll (the page asking for the trials after those it has, once optuna-dashboard's cache of
    the study's trials expired)."""
    automl = [sys.executable, "-m", "automl"]
    out = {"status": timed([*automl, "status", "--study", study, "--storage", storage], work),
           "report": timed([*automl, "report", "--study", study, "--storage", storage, "--out",
                            str(work / f"{study}.html")], work),
           "export": timed([*automl, "export", "--study", study, "--storage", storage, "--out",
                            str(work / f"{study}-export")], work)}
    port = 8765
    server = subprocess.Popen([*automl, "dashboard", "--storage", storage, "--port", str(port)],
                              cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):  # the server up
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1).read()
                break
            except OSError:
                time.sleep(0.2)
        start = time.perf_counter()
        studies = json.loads(urllib.request.urlopen(
            f"http://127.0.0.1:{port}/api/studies", timeout=600).read())
        sid = next(x["study_id"] for x in studies["study_summaries"]
                   if x["study_name"] == study)
        trials = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies/{sid}",
                                                   timeout=600).read())["trials"]
        out["dashboard"] = time.perf_counter() - start
        # the page then asks for the trials after those it has, every 10 s for a large study
        time.sleep(POLL_S)
        start = time.perf_counter()
        urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies/{sid}?after={len(trials)}",
                               timeout=600).read()
        out["dashboard_poll"] = time.perf_counter() - start
    finally:
        server.terminate()
        server.wait()
    return out


REPLAYED = 500  # of the big study's trials, made by the replay; the rest are copies


def big_study(storage: str, n: int, space: Path, run: str) -> tuple[str, float]:
    """A study of n trials: REPLAYED replayed trials made in this process (the same searcher
    and storage writes as a search, without Ray; ~0.3 s a trial on PostgreSQL here), then
    copies of them added with Optuna's own add_trials (~0.1 s a trial) up to n: the same rows
    per trial as a search writes, in a fraction of the time."""
    from automl.api import simulate_search
    from automl.study import get_storage

    name = f"scale-big-{n}-{run}"
    start = time.perf_counter()
    study = simulate_search(RECORD, storage=get_storage(storage, name), searcher="random",
                            trials=min(n, REPLAYED), seed=0, pruner="none", space=str(space),
                            study=name)
    made = study.get_trials(deepcopy=False)
    have = len(made)
    while have < n:
        study.add_trials(made[:n - have])
        have = min(n, have + len(made))
        print(f"  {name}: {have} trials, {time.perf_counter() - start:.0f} s", flush=True)
    return name, time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--phases", nargs="*", default=["1:400", "2:600", "4:1000"],
                   help="DRIVERS:TRIALS per phase, each its own study (none: the chaos phase "
                        "alone)")
    p.add_argument("--epoch-seconds", type=float, default=0.25)
    p.add_argument("--concurrency", type=int, default=4, help="trials at once per driver")
    p.add_argument("--cpus-per-trial", type=float, default=0.25)
    p.add_argument("--head-cpus", type=int, default=4)
    p.add_argument("--worker-cpus", type=int, default=6)
    p.add_argument("--heartbeat", type=int, default=5, help="AUTOML_HEARTBEAT_S of the drivers")
    p.add_argument("--chaos-phase", type=int, default=None,
                   help="run this many drivers once more, killing a driver or the worker node "
                        "every --chaos-every s for --chaos-for s")
    p.add_argument("--chaos-trials", type=int, default=400)
    p.add_argument("--chaos-every", type=float, default=8.0)
    p.add_argument("--chaos-for", type=float, default=120.0)
    p.add_argument("--big", type=int, default=0, help="also time a study of this many trials")
    p.add_argument("--out", type=Path, default=Path("/tmp/scale"))
    p.add_argument("--time-study", nargs="+", metavar="STUDY",
                   help="only time status/report/export/dashboard on these existing studies "
                        "(e.g. a --big study of an earlier run), each --repeat times")
    p.add_argument("--repeat", type=int, default=1)
    args = p.parse_args()
    args.run = time.strftime("%m%d%H%M")  # each run its own studies (a study keeps its budget)
    from automl.execution.record import load_record, record_space

    storage = postgres_url()
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="scale-", dir=args.out))
    if args.time_study:
        print("| study | " + " | ".join(f"{k} s" for k in USABILITY) + " |\n"
              + "|" + " --- |" * (len(USABILITY) + 1), flush=True)
        for name in args.time_study:
            for _ in range(args.repeat):
                u = usability(storage, name, work)
                print(f"| {name} | " + " | ".join(f"{u[k]:.1f}" for k in USABILITY) + " |",
                      flush=True)
        return
    space = record_space(load_record(RECORD), work / "recorded.yaml")
    results = {"phases": [], "args": {k: str(v) for k, v in vars(args).items()}}
    stop_ray()
    start_head(args.head_cpus)
    start_worker(args.worker_cpus)
    try:
        plan = [(int(d), int(n), False) for d, n in (x.split(":") for x in args.phases)]
        if args.chaos_phase:
            plan.append((args.chaos_phase, args.chaos_trials, True))
        for drivers, trials, chaos in plan:
            row = run_phase(args, drivers, trials, space, storage, work, chaos)
            row.update(storage_cost(storage, row["study"]))
            row["checks"] = verify(storage, row["study"], trials)
            results["phases"].append(row)
            print(json.dumps(row), flush=True)
            (args.out / "results.json").write_text(json.dumps(results, indent=1))
    finally:
        stop_ray()
    for row in results["phases"]:
        row["usability"] = usability(storage, row["study"], work)
        print(row["study"], json.dumps(row["usability"]), flush=True)
    if args.big:
        name, seconds = big_study(storage, args.big, space, args.run)
        results["big"] = {"study": name, "trials": args.big, "made_in_s": seconds,
                          "replayed": min(args.big, REPLAYED),
                          **storage_cost(storage, name), "usability": usability(storage, name,
                                                                               work)}
        print(json.dumps(results["big"]), flush=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=1))
    print(table(results))


USABILITY = ("status", "report", "export", "dashboard", "dashboard_poll")


def table(results: dict) -> str:
    lines = ["| drivers | trials | slots | wall s | minimum s | over min | overhead ms/trial | "
             "trials/s | trial s (median) | CPU busy | CPU ms/trial | rows/trial | bytes/trial | status s | "
             "report s | export s | dashboard s | poll s |", "|" + " --- |" * 18]
    for r in results["phases"]:
        u = r.get("usability", {})
        lines.append(
            f"| {r['drivers']}{' (kills)' if r['kills']['driver'] + r['kills']['worker node'] else ''}"
            f" | {r['trials']} | {r['slots']} | {r['wall']:.0f} | {r['minimum']:.0f} | "
            f"{r['wall'] / r['minimum'] - 1:+.0%} | {r['overhead_ms']:.0f} | "
            f"{r['trials_per_s']:.2f} | {r['checks']['median_trial_s']:.2f} | "
            f"{r.get('cpu_busy', math.nan):.0%} | "
            f"{r.get('cpu_ms_per_trial', math.nan):.0f} | {r['rows_per_trial']:.1f} | "
            f"{r['bytes_per_trial']:.0f} | "
            + " | ".join(f"{u.get(k, float('nan')):.1f}" for k in USABILITY) + " |")
    if "big" in results:
        b, u = results["big"], results["big"]["usability"]
        lines.append(f"| big ({b['replayed']} replayed, copied) | {b['trials']} | - "
                     f"| {b['made_in_s']:.0f} | - | - | - "
                     f"| - | - | - | - | {b['rows_per_trial']:.1f} | {b['bytes_per_trial']:.0f} | "
                     + " | ".join(f"{u.get(k, math.nan):.1f}" for k in USABILITY) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
