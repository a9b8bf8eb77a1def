"""Shared fixtures. Tests that need ultralytics/Ray run for real on tiny generated data."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys

import pytest

# Never touch the network or the user's ultralytics settings from the test suite.
os.environ.setdefault("YOLO_OFFLINE", "1")


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    """Run in an empty working directory (studies/ lands there) with a private data cache."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AUTOML_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    """A tiny demo dataset (16 train, 8 val images of the demo shapes), made once per session."""
    from automl.data.demo import make_demo_dataset

    return make_demo_dataset(tmp_path_factory.mktemp("tiny"), n_train=16, n_val=8, seed=1)


@pytest.fixture(scope="module")
def ray_session():
    """Tests that run Ray share one local Ray per module, shut down after it."""
    yield
    import ray

    ray.shutdown()


@pytest.fixture(scope="module")
def ray_fakes(ray_session):
    """Ray workers cannot import the tests package: ship tests/fakes.py by value."""
    from ray import cloudpickle

    from tests import fakes

    cloudpickle.register_pickle_by_value(fakes)
    yield fakes
    cloudpickle.unregister_pickle_by_value(fakes)


def boxes_of(image, nc: int = 1000):
    """An image's boxes as ultralytics reads them for training (None when it leaves it out)."""
    from automl.data.yolo_reader import read_images

    return read_images([image], nc)[0].boxes


def run_automl(*args, cwd, timeout: float = 120) -> subprocess.CompletedProcess:
    """`python -m automl ARGS` in `cwd`, output captured as text: the installed command as a
    user runs it (a new process: import-time warnings and logging included)."""
    return subprocess.run([sys.executable, "-m", "automl", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


def run_cli(*args, cwd) -> subprocess.CompletedProcess:
    """`automl ARGS` run in this process in `cwd` (automl.cli.main, argparse's exits included),
    stdout and stderr captured: what run_automl checks, without a new Python process per case."""
    from automl.cli import main

    out, err = io.StringIO(), io.StringIO()
    before, environ = os.getcwd(), dict(os.environ)
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main([str(a) for a in args])
            except SystemExit as e:  # argparse: --help, usage errors
                code = e.code if isinstance(e.code, int) else int(e.code is not None)
    finally:
        os.chdir(before)
        os.environ.clear()  # what main set (a process's own variables) ends with it
        os.environ.update(environ)
    return subprocess.CompletedProcess(["automl", *map(str, args)], code, out.getvalue(),
                                       err.getvalue())


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path
