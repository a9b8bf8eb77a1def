"""Studies on PostgreSQL, and searches that join an existing Ray cluster (--address).

These need a PostgreSQL server: `.ci/run` installs Debian's package, starts it on loopback and
exports AUTOML_TEST_POSTGRES_URL together with AUTOML_REQUIRE_POSTGRES=1, so in CI a missing
server fails these tests instead of skipping them. On a machine without the variable they skip.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import optuna
import pytest
from optuna.trial import TrialState

from automl.study import finished_trials

pytestmark = pytest.mark.integration
optuna.logging.set_verbosity(optuna.logging.WARNING)
POSTGRES = os.environ.get("AUTOML_TEST_POSTGRES_URL")


@pytest.fixture(scope="module")
def postgres_url():
    if not POSTGRES:
        if os.environ.get("AUTOML_REQUIRE_POSTGRES") == "1":
            pytest.fail("AUTOML_REQUIRE_POSTGRES=1 but AUTOML_TEST_POSTGRES_URL is not set")
        pytest.skip("no PostgreSQL server (set AUTOML_TEST_POSTGRES_URL; .ci/run does)")
    return POSTGRES


def search_cmd(data, study, storage, trials, *extra):
    return [sys.executable, "-m", "automl", "search", "--data", str(data), "--study", study,
            "--storage", storage, "--trials", str(trials), "--epochs", "1", "--imgsz", "64",
            "--batch", "4", "--seed", "0", "--cpus-per-trial", "1", *extra]


def test_two_processes_share_a_postgresql_study(in_tmp, tiny_data, postgres_url):
    study_name = f"pg-{uuid.uuid4().hex[:8]}"
    cmd = search_cmd(tiny_data, study_name, postgres_url, 3)
    procs = [subprocess.Popen(cmd, cwd=in_tmp, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=420)
        assert p.returncode == 0, err
    study = optuna.load_study(study_name=study_name, storage=postgres_url)
    assert len(study.trials) == len(finished_trials(study)) == 3
    assert all(t.state == TrialState.COMPLETE for t in study.trials)
    result = subprocess.run([sys.executable, "-m", "automl", "studies", "--storage", postgres_url],
                            cwd=in_tmp, capture_output=True, text=True, timeout=120)
    assert study_name in result.stdout


def test_search_joins_a_ray_cluster_and_spreads_trials_over_its_nodes(in_tmp, tiny_data,
                                                                      postgres_url):
    from ray.cluster_utils import Cluster

    # a real two-node Ray cluster on loopback: a head node and a second node, 1 CPU each
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    try:
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        study_name = f"ray-{uuid.uuid4().hex[:8]}"
        cmd = search_cmd(tiny_data, study_name, postgres_url, 4, "--concurrency", "2",
                         "--address", cluster.address)
        result = subprocess.run(cmd, cwd=in_tmp, capture_output=True, text=True, timeout=420)
        assert result.returncode == 0, result.stderr
        study = optuna.load_study(study_name=study_name, storage=postgres_url)
        assert len(finished_trials(study)) == 4
        assert all(t.state == TrialState.COMPLETE for t in study.trials)
        nodes = {t.user_attrs["ray_node"] for t in study.trials}
        assert len(nodes) == 2, nodes
    finally:
        cluster.shutdown()
