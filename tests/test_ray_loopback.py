"""The local Ray a search starts listens on loopback only (automl.execution.ray_runner)."""

from __future__ import annotations

import contextlib
import ipaddress
import signal
import subprocess
import sys
import time

import psutil
import pytest


def _loopback(ip: str) -> bool:
    address = ipaddress.ip_address(ip.split("%")[0])
    # ::ffff:127.0.0.1 (a dual-stack socket bound to 127.0.0.1) is loopback too
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_loopback or bool(mapped and mapped.is_loopback)


def _ray_session(processes) -> str | None:
    for p in processes:
        for arg in _cmdline(p):
            if arg.startswith("--session-name="):
                return arg.partition("=")[2]
    return None


def _cmdline(p) -> list[str]:
    try:
        return p.cmdline()
    except psutil.Error:
        return []


def _listening(processes) -> list[tuple[str, str, int]]:
    """(process name, address, port) of every listening TCP and every bound UDP socket."""
    out = []
    for p in processes:
        try:
            for c in p.net_connections(kind="inet"):
                if c.laddr and (c.status == psutil.CONN_LISTEN or c.type == 2):  # 2: SOCK_DGRAM
                    out.append((p.name(), c.laddr.ip, c.laddr.port))
        except psutil.NoSuchProcess:
            continue
    return out


@pytest.mark.integration
def test_a_search_listens_on_loopback_only(in_tmp):
    search = subprocess.Popen(
        [sys.executable, "-m", "automl", "search", "--trials", "1", "--epochs", "3",
         "--study", "loop"], cwd=in_tmp, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    root = psutil.Process(search.pid)
    sockets: list[tuple[str, str, int]] = []
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and search.poll() is None:
            tree = [root, *root.children(recursive=True)]
            if any("ImplicitFunc" in p.name() or "run_trial" in " ".join(_cmdline(p))
                   for p in tree if p.is_running()):
                time.sleep(3)  # the trial is training: every server of the search is up
                tree = [root, *root.children(recursive=True)]
                session = _ray_session(tree)
                assert session, "no Ray session found in the search's processes"
                ours = {p.pid for p in tree}
                tree += [p for p in psutil.process_iter()
                         if p.pid not in ours and any(session in a for a in _cmdline(p))]
                sockets = _listening(tree)
                break
            time.sleep(0.5)
    finally:
        started = [root, *root.children(recursive=True)] if search.poll() is None else []
        search.send_signal(signal.SIGINT)  # Ctrl-C: the search stops its Ray itself
        try:
            search.wait(timeout=60)
        except subprocess.TimeoutExpired:
            search.kill()
            search.wait()
        for p in started:  # whatever of its tree outlived it
            with contextlib.suppress(psutil.Error):
                p.kill()
    assert sockets, "no trial was seen running, or nothing listened"
    names = {name for name, _, _ in sockets}
    assert {"gcs_server", "raylet"} <= names, names  # the check saw Ray's own servers
    outside = [s for s in sockets if not _loopback(s[1])]
    assert not outside, f"listening outside loopback: {outside}"
