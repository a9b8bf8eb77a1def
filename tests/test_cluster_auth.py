"""Joining a cluster `ray start --head` started: Ray 2.60 there requires the token it keeps in
~/.ray/auth_token, which a client sends only in token mode, read when ray is first imported."""

from __future__ import annotations

import os
import sys
import types

from automl.execution.ray_runner import use_cluster_auth


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
    before = os.environ.get("RAY_AUTH_MODE")  # a local ray.init sets token mode itself (Ray 2.60)
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
    # the test leaves the mode as it found it: a token mode it leaked (without the config refresh
    # Ray does when it sets the mode itself) failed every later local Ray in CI
    monkeypatch.undo()
    assert os.environ.get("RAY_AUTH_MODE") == before


def test_once_ray_is_imported_the_mode_is_left_alone(tmp_path, monkeypatch):
    # ray read its mode (disabled) at import; token mode set now would reach only the GCS of the
    # next local Ray this process starts, which then refuses this process
    token = _token_at_hand(tmp_path, monkeypatch)
    token.write_text("x" * 64)
    monkeypatch.setitem(sys.modules, "ray", sys.modules.get("ray") or types.ModuleType("ray"))
    use_cluster_auth("127.0.0.1:6379")
    assert "RAY_AUTH_MODE" not in os.environ
