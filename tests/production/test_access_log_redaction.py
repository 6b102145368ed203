"""No secret in a query string reaches the serve logs (sts/http/redaction.py): gunicorn's access
log (``jobsts serve --production``) and werkzeug's request log (``jobsts serve``) write the path
only, never the query string or the referrer. Each test fails with the servers' default formats."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.ldap_harness import ldif_realm_table
from tests.loopback import listening_socket, port_of, werkzeug_fd_environment
from tests.patience import STARTUP_SECONDS
from tests.production.servers import StsProcess, write_sts_config

pytestmark = [pytest.mark.db]
SECRETS = ("access_token", "code", "refresh_token", "password", "token", "client_assertion")


def _leaky_requests(client: httpx.Client) -> str:
    """Send secrets in query strings and a referrer; return the canary."""
    canary = f"CANARY{os.getpid()}x{time.monotonic_ns()}"
    for name in SECRETS:
        client.get(f"/healthz?{name}={canary}")
        client.get(f"/api/v1/jobs?{name}={canary}")
        client.post(f"/realms/jobmgr/token?{name}={canary}", data={"grant_type": "password"})
    client.get("/healthz", headers={"Referer": f"https://app.example/cb?code={canary}"})
    return canary


def test_gunicorn_access_log_has_paths_not_query_strings(tmp_path: Path, database_url: str) -> None:
    config = write_sts_config(tmp_path, database_url, [ldif_realm_table("jobmgr")])
    access_log = tmp_path / "access.log"
    server = StsProcess(config, tmp_path, 1, env={"JOBSTS_GUNICORN_ACCESSLOG": str(access_log)})
    try:
        server.wait_ready()
        canary = _leaky_requests(server.client)
    finally:
        server.stop()
    logged = access_log.read_text(encoding="utf-8") + server.stderr()
    assert "/api/v1/jobs" in logged and "/realms/jobmgr/token" in logged  # the log is on
    assert canary not in logged


def test_jobsts_serve_request_log_has_paths_not_query_strings(tmp_path: Path, database_url: str) -> None:
    config = write_sts_config(tmp_path, database_url, [ldif_realm_table("jobmgr")])
    sock = listening_socket()
    port = port_of(sock)
    out, err = tmp_path / "serve.stdout", tmp_path / "serve.stderr"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from realms.console import main; main()",
                "serve",
                "--config",
                str(config),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                # The request log is a library logger, quiet below debug; at debug everything logs.
                "--log-level",
                "debug",
            ],
            stdout=stdout,
            stderr=stderr,
            cwd=tmp_path,
            pass_fds=(sock.fileno(),),
            env={**os.environ, **werkzeug_fd_environment(sock)},
        )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            give_up = time.monotonic() + STARTUP_SECONDS
            while True:
                assert process.poll() is None, err.read_text()
                try:
                    if client.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    assert time.monotonic() < give_up, err.read_text()
                    time.sleep(0.1)
            canary = _leaky_requests(client)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        sock.close()
    logged = out.read_text(encoding="utf-8", errors="replace") + err.read_text(encoding="utf-8", errors="replace")
    assert "/api/v1/jobs" in logged  # the request log is on
    assert canary not in logged
