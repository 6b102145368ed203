"""``jobsts serve --production``: gunicorn with sts/gunicorn_conf.py, multiprocess metrics, and
the service's stderr after a full cycle (audit lines are JSON; no password or token anywhere)."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from sts import gunicorn_conf
from tests.ldap_harness import SlapdServer, ldif_realm_table
from tests.patience import STARTUP_SECONDS
from tests.production.servers import running, write_sts_config

pytestmark = [pytest.mark.db]


def test_gunicorn_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = gunicorn_conf.settings()
    assert settings["workers"] == (os.cpu_count() or 1)
    # uvicorn workers: agents wait on the event loop; Flask runs on ``threads`` threads.
    assert settings["worker_class"] == "sts.asgi_worker.Worker" and settings["threads"] >= 4
    assert settings["preload_app"] is False
    # Longer than the longest legitimate request (a 30 s lease long-poll), or busy agents get killed.
    assert settings["timeout"] > 30 and settings["graceful_timeout"] > 30
    assert callable(settings["child_exit"])
    assert settings["control_socket_disable"] is True  # no management socket shared by every STS
    monkeypatch.setenv("JOBSTS_GUNICORN_WORKERS", "3")
    monkeypatch.setenv("JOBSTS_GUNICORN_THREADS", "nonsense")
    try:
        reloaded = importlib.reload(gunicorn_conf).settings()
        assert reloaded["workers"] == 3 and reloaded["threads"] == 8
    finally:
        monkeypatch.delenv("JOBSTS_GUNICORN_WORKERS")
        monkeypatch.delenv("JOBSTS_GUNICORN_THREADS")
        importlib.reload(gunicorn_conf)


def test_bad_database_is_one_line(tmp_path: Path) -> None:
    config = write_sts_config(tmp_path, "postgresql+psycopg://nobody@127.0.0.1:1/none", [ldif_realm_table("jobmgr")])
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "from realms.console import main; main()",
            "serve",
            "--production",
            "--config",
            str(config),
            "--port",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "127.0.0.1:1" in done.stderr


@pytest.mark.slapd
def test_production_server_metrics_and_logs(tmp_path: Path, database_url: str, slapd: SlapdServer) -> None:
    config = write_sts_config(tmp_path, database_url, [slapd.realm_table("jobmgr"), slapd.realm_table("cellB")])
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    (metrics_dir / "counter_1.db").write_bytes(b"stale")  # an earlier run's file is cleared at start
    canary = f"canary-{uuid.uuid4().hex}"
    with running(config, tmp_path, workers=2, metrics_dir=metrics_dir) as (server,):
        ready = server.client.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert {"directory:jobmgr", "directory:cellB", "database"} <= ready.json()["checks"].keys()
        secrets = server.full_cycle(canary)
        logins = 12
        for _ in range(logins):  # new connections, so both workers take some
            with httpx.Client(base_url=server.url) as fresh:
                assert (
                    fresh.post(
                        "/realms/jobmgr/token",
                        data={"grant_type": "password", "username": "carol", "password": "carol-password"},
                    ).status_code
                    == 200
                )
        pids = {path.stem.rsplit("_", 1)[-1] for path in metrics_dir.glob("*.db")}
        assert len(pids) >= 2, pids  # both workers write their samples
        text = server.client.get("/metrics").text
        assert f'jobsts_logins_total{{outcome="ok",realm="jobmgr"}} {float(logins + 2)}' in text, text
        assert 'jobsts_agent_refusals_total{code="authz.denied"} 1.0' in text
    stderr = server.stderr()
    audit = [json.loads(line) for line in stderr.splitlines() if line.startswith('{"time"')]
    events = {entry["event"] for entry in audit}
    assert {
        "login",
        "token.issued",
        "node.registered",
        "job.submitted",
        "job.leased",
        "job.started",
        "job.result",
    } <= events, events
    assert "Control socket" not in stderr  # gunicorn opened no management socket
    assert canary not in stderr
    for secret in secrets:
        assert secret not in stderr and secret.rsplit(".", 1)[-1] not in stderr


def test_the_images_command_line_is_a_valid_serve_invocation() -> None:
    """docker/Dockerfile's STS CMD parses as ``jobsts serve`` options (and asks for --production)."""
    import re

    import click

    from sts.commands.serve import serve

    dockerfile = (Path(__file__).resolve().parents[2] / "docker" / "Dockerfile").read_text(encoding="utf-8")
    sts_stage = dockerfile.split(" AS sts", 1)[1].split("FROM ", 1)[0]
    command = json.loads(re.search(r"^CMD (\[.*\])$", sts_stage, re.M).group(1))  # type: ignore[union-attr]
    assert command[:2] == ["jobsts", "serve"]
    context = serve.make_context("serve", command[2:])
    assert context.params["production"] is True and context.params["port"] == 8080
    assert context.params["host"] == "0.0.0.0"
    with pytest.raises(click.UsageError):
        serve.make_context("serve", [*command[2:], "--no-such-option"])


def test_plain_gunicorn_with_the_config_module(tmp_path: Path) -> None:
    """``gunicorn -c python:sts.gunicorn_conf sts.asgi:app``: the documented way without the CLI."""
    import signal
    import time

    from tests.loopback import listening_socket, port_of

    config = write_sts_config(tmp_path, f"sqlite:///{tmp_path / 'g.db'}", [ldif_realm_table("jobmgr")])
    subprocess.run(
        [sys.executable, "-c", "from realms.console import main; main()", "init", "--config", str(config)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    # gunicorn binds fd://N: the listening socket this test holds, so the port cannot be taken.
    sock = listening_socket()
    port = port_of(sock)
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    env = {
        **os.environ,
        "JOBSTS_CONFIG": str(config),
        "JOBSTS_GUNICORN_BIND": f"fd://{sock.fileno()}",
        "JOBSTS_GUNICORN_WORKERS": "2",
        "PROMETHEUS_MULTIPROC_DIR": str(metrics),
        "HOME": str(tmp_path),
    }
    stderr_path = tmp_path / "gunicorn.stderr"
    with stderr_path.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "python:sts.gunicorn_conf", "sts.asgi:app"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            cwd=tmp_path,
            pass_fds=(sock.fileno(),),
        )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            give_up = time.monotonic() + STARTUP_SECONDS
            while True:
                try:
                    if client.get("/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < give_up and process.poll() is None, stderr_path.read_text()
                time.sleep(0.1)
            login = client.post(
                "/realms/jobmgr/token", data={"grant_type": "password", "username": "john", "password": "john-password"}
            )
            assert login.status_code == 200
            assert 'jobsts_logins_total{outcome="ok",realm="jobmgr"} 1.0' in client.get("/metrics").text
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
        sock.close()
    lines = [json.loads(line) for line in stderr_path.read_text().splitlines() if line.startswith('{"time"')]
    assert any(entry["event"] == "login" and entry["outcome"] == "ok" for entry in lines), lines
    assert login.json()["access_token"] not in stderr_path.read_text()
