"""Shared fixtures. Tests that need ultralytics/Ray run for real on tiny generated data."""

from __future__ import annotations

import os

import pytest

# Never touch the network or the user's ultralytics settings from the test suite.
os.environ.setdefault("YOLO_OFFLINE", "1")


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    """Run in an empty working directory (studies/ lands there) with a private data cache."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AUTOML_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path
