"""Joining a cluster `ray start --head` started: Ray 2.60 there requires the token it keeps in
~/.ray/auth_token, which a client sends only in token mode, read when ray is first imported."""

from __future__ import annotations

import os

from automl.execution.ray_runner import use_cluster_auth


def test_a_search_joining_a_cluster_uses_the_token_at_hand(tmp_path, monkeypatch):
    token = tmp_path / "auth_token"
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(token))
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
