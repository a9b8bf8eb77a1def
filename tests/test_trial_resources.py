"""No silent waits: a trial that asks for more than any node has never starts, and Ray would
wait for it for ever. Refused before the first trial on this machine; on a cluster, refused
after a bounded wait (an autoscaler may add a node), in one line naming the resource."""

from __future__ import annotations

import pytest

from automl.errors import ConfigError
from automl.execution.ray_runner import Resources, wait_for_a_node
from automl.machine import machine_cpus
from automl.searching.planning import trial_resources
from tests.conftest import run_cli


def node(cpus: float, gpus: float = 0, alive: bool = True) -> dict:
    """A node as `ray.nodes()` lists it (the fields automl reads)."""
    resources = {"CPU": cpus, "memory": 1e9, **({"GPU": gpus} if gpus else {})}
    return {"Alive": alive, "Resources": resources}


class FakeClock:
    """A fake clock: `sleep` moves it on, and the nodes listed change at given times."""

    def __init__(self, timeline: list[tuple[float, list[dict]]]):
        self.now, self.timeline, self.listed = 0.0, timeline, 0

    def nodes(self) -> list[dict]:
        self.listed += 1
        return [nodes for since, nodes in self.timeline if since <= self.now][-1]

    def sleep(self, seconds: float) -> None:
        assert seconds > 0, "a wait that does not move on would spin"
        self.now += seconds

    def clock(self) -> float:
        return self.now


def wait(clock: FakeClock, resources: Resources, address: str | None, wait_s: float | None):
    wait_for_a_node(resources, address, wait=wait_s, nodes=clock.nodes, sleep=clock.sleep,
                    clock=clock.clock)


def test_on_a_cluster_a_trial_too_large_for_every_node_ends_after_the_wait():
    clock = FakeClock([(0, [node(1), node(1), node(2, alive=False), node(4, alive=False)])])
    with pytest.raises(ConfigError) as e:
        wait(clock, Resources(1, 2, 0), "head:6379", 30)
    assert str(e.value) == (
        "--cpus-per-trial 2: no node has 2 CPUs (the largest has 1) on the Ray cluster at "
        "head:6379 after waiting 30 s for one; pass --cpus-per-trial 1 or less, or add a node "
        "that has them")
    assert 30 <= clock.now < 36  # bounded, and not given up early


def test_a_node_that_joins_during_the_wait_runs_the_trials():
    clock = FakeClock([(0, [node(1)]), (12, [node(1), node(8, gpus=1)])])
    wait(clock, Resources(1, 4, 1), "head:6379", 60)
    assert 12 <= clock.now < 60


def test_a_node_that_fits_means_no_wait_at_all():
    clock = FakeClock([(0, [node(2), node(16, gpus=2)])])
    wait(clock, Resources(4, 16, 0.5), "head:6379", 60)
    assert clock.now == 0 and clock.listed == 1


@pytest.mark.parametrize(("nodes", "asked", "says"), [
    ([node(8)], (1, 1), "--gpus-per-trial 1: no node has 1 GPUs (the largest has 0)"),
    ([node(8), node(2, gpus=1)], (4, 1), "--cpus-per-trial 4 --gpus-per-trial 1: no node has "
                                         "both"),
    ([], (1, 0), "--cpus-per-trial 1: no node has 1 CPUs (the largest has 0)"),
])
def test_the_resource_no_node_has_is_named(nodes, asked, says):
    with pytest.raises(ConfigError, match=says.replace("(", r"\(").replace(")", r"\)")):
        wait(FakeClock([(0, nodes)]), Resources(1, *asked), None, None)


def test_the_local_ray_is_not_waited_for():
    clock = FakeClock([(0, [node(2)])])
    with pytest.raises(ConfigError, match="on the local Ray; pass --cpus-per-trial 2 or less"):
        wait(clock, Resources(1, 3, 0), None, None)
    assert clock.now == 0


def test_more_cores_or_gpus_than_this_machine_has_are_refused_before_any_trial():
    common = dict(concurrency=1, device=None, cpu_count=2, local=True)
    with pytest.raises(ConfigError, match=r"^--cpus-per-trial 3: this machine has 2 CPU cores, "
                                          "so no trial could ever start; pass at most 2"):
        trial_resources(cpus_per_trial=3, gpus_per_trial=None, gpu_count=0, **common)
    with pytest.raises(ConfigError, match=r"^--gpus-per-trial 2: this machine has 1 GPUs"):
        trial_resources(cpus_per_trial=None, gpus_per_trial=2, gpu_count=1, **common)
    assert trial_resources(cpus_per_trial=2, gpus_per_trial=None, gpu_count=0, **common) == (2, 0)
    # on a cluster the nodes decide (wait_for_a_node), not this machine
    assert trial_resources(cpus_per_trial=64, gpus_per_trial=None, gpu_count=0,
                           **{**common, "local": False}) == (64, 0)


def test_search_with_more_cores_per_trial_than_the_machine_has_is_one_line(in_tmp, tiny_data):
    too_many = machine_cpus() + 1
    result = run_cli("search", "--data", tiny_data, "--cpus-per-trial", too_many, "--trials", "1",
                     cwd=in_tmp)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"--cpus-per-trial {too_many}: this machine has" in lines[0]
    assert not (in_tmp / "studies").exists()


@pytest.mark.integration  # starts a real one-CPU Ray cluster
def test_search_on_a_cluster_whose_nodes_are_too_small_ends_naming_the_cpus(in_tmp, tiny_data,
                                                                            monkeypatch):
    import ray
    from ray.cluster_utils import Cluster

    from automl.execution import ray_runner

    monkeypatch.setattr(ray_runner, "NODE_WAIT_S", 3.0)
    # a local search run earlier in this process left its Ray and its single-machine mode on
    # (bind_loopback): a cluster started here would listen on loopback only, and the search,
    # back in multi-machine mode, would look for its GCS at this machine's address for ever
    ray.shutdown()
    ray_runner.bind_loopback(False)
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    address = cluster.address
    try:
        result = run_cli("search", "--data", tiny_data, "--address", address,
                         "--cpus-per-trial", "2", "--trials", "1", "--epochs", "1", cwd=in_tmp)
    finally:
        ray.shutdown()
        cluster.shutdown()
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0] == (
        f"automl search: error: --cpus-per-trial 2: no node has 2 CPUs (the largest has 1) on the "
        f"Ray cluster at {address} after waiting 3 s for one; pass --cpus-per-trial 1 or "
        "less, or add a node that has them")
    assert not list((in_tmp / "studies").rglob("trial_*"))  # nothing trained
