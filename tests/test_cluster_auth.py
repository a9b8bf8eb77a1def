"""Joining a cluster `ray start --head` started: Ray 2.60 there requires the token it keeps in
~/.ray/auth_token, which a client sends only in token mode, read when ray is first imported."""

from __future__ import annotations

import os
import sys
import types

from automl.execution.ray_runner import use_cluster_auth

AT_IMPORT = os.environ.get("RAY_AUTH_MODE")


def _token_at_hand(tmp_path, monkeypatch):
    token = tmp_path / "auth_token"
    # set, then deleted: monkeypatch then deletes what the test sets (delenv of an absent
    # variable records nothing, and a leaked token mode failed every later local Ray in CI)
    monkeypatch.setenv("RAY_AUTH_MODE", "")
    monkeypatch.delenv("RAY_AUTH_MODE")
    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(token))
    return token


def test_a_search_joining_a_cluster_uses_the_token_at_hand(tmp_path, monkeypatch):
    token = _token_at_hand(tmp_path, monkeypatch)
    monkeypatch.delitem(sys.modules, "ray", raising=False)  # as in a new `automl` process
    use_cluster_auth("127.0.0.1:6379")
    assert "RAY_AUTH_MODE" not in os.environ  # no token: Ray's own default
    token.write_text("x" * 64)
    use_cluster_auth(None)  # a local Ray needs none
    assert "RAY_AUTH_MODE" not in os.environ
    use_cluster_auth("127.0.0.1:6379")
    assert os.environ["RAY_AUTH_MODE"] == "token"
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")  # the user's own choice stays
    use_cluster_auth("127.0.0.1:6379")
    assert os.environ["RAY_AUTH_MODE"] == "disabled"


def test_the_token_tests_leave_the_mode_as_they_found_it():
    # runs after the two above (file order): a local Ray started later in this process must not
    # demand a token ray did not read at import (CI failed 29 Ray tests this way)
    assert os.environ.get("RAY_AUTH_MODE") == AT_IMPORT


def test_once_ray_is_imported_the_mode_is_left_alone(tmp_path, monkeypatch):
    # ray read its mode (disabled) at import; token mode set now would reach only the GCS of the
    # next local Ray this process starts, which then refuses this process
    token = _token_at_hand(tmp_path, monkeypatch)
    token.write_text("x" * 64)
    monkeypatch.setitem(sys.modules, "ray", sys.modules.get("ray") or types.ModuleType("ray"))
    use_cluster_auth("127.0.0.1:6379")
    assert "RAY_AUTH_MODE" not in os.environ
