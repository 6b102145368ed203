"""The STS commands (init, keys), access-id (local and over the API), and login/logout/node against a live server."""

from __future__ import annotations

import json
import os
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from flask import Flask
from werkzeug.serving import make_server

from agent_client.api.login_store import load_store, save_store, tokens_path
from agent_client.api.user import user_api
from realms.console import cli
from tests.sts.conftest import node_keypair, write_config

pytestmark = pytest.mark.db


@pytest.fixture
def config_file(tmp_path: Path, database_url: str) -> Path:
    return write_config(tmp_path, database_url)


def test_init_creates_key_0600_database_and_keys(config_file: Path) -> None:
    (config_file.parent / "master.key").unlink()
    result = CliRunner().invoke(cli, ["init", "--config", str(config_file)])
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE((config_file.parent / "master.key").stat().st_mode) == 0o600
    assert "realm jobmgr: active key" in result.output and "realm cellB: active key" in result.output
    again = CliRunner().invoke(cli, ["init", "--config", str(config_file)])
    assert again.exit_code == 0  # idempotent; the key file is kept


def test_keys_rotate_and_list(config_file: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(cli, ["init", "--config", str(config_file)]).exit_code == 0
    rotated = runner.invoke(cli, ["keys", "rotate", "--config", str(config_file), "--realm", "jobmgr"])
    assert rotated.exit_code == 0 and "published, signs from" in rotated.output
    listed = runner.invoke(cli, ["keys", "list", "--config", str(config_file), "--realm", "jobmgr"])
    assert listed.output.count(" active ") == 1 and " next " in listed.output
    now = runner.invoke(cli, ["keys", "rotate", "--now", "--config", str(config_file), "--realm", "jobmgr"])
    assert now.exit_code == 0, now.output
    listed = runner.invoke(cli, ["keys", "list", "--config", str(config_file), "--realm", "jobmgr"])
    assert listed.output.count(" active ") == 1 and " retiring " in listed.output and " next " not in listed.output
    due = runner.invoke(cli, ["keys", "rotate-due", "--config", str(config_file)])
    assert due.exit_code == 0 and "0 new key(s)" in due.output


def test_access_id_prints_the_access_id_and_groups(config_file: Path) -> None:
    result = CliRunner().invoke(cli, ["access-id", "--config", str(config_file), "jobmgr", "john"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "user:jobmgr/uid=john,ou=people,dc=jobmgr,dc=example"
    assert "group:jobmgr/cn=ops-all,ou=groups,dc=jobmgr,dc=example" in lines
    as_json = CliRunner().invoke(cli, ["access-id", "--config", str(config_file), "--json", "cellB", "john"])
    assert json.loads(as_json.output)["access_id"] == "user:cellB/uid=john,ou=people,dc=cellb,dc=example"
    missing = CliRunner().invoke(cli, ["access-id", "--config", str(config_file), "jobmgr", "ghost"])
    assert missing.exit_code == 2 and "error: user.unknown: " in missing.output  # one line, exit 2


@pytest.fixture
def live_url(app: Flask, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("JOBSTS_URL", raising=False)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _login(url: str, user: str = "admin", password: str | None = None) -> Any:
    return CliRunner().invoke(
        cli,
        ["login", "--url", url, "--realm", "jobmgr", "--username", user],
        input=f"{password or user + '-password'}\n",
    )


def test_login_stores_tokens_0600_and_node_commands_use_them(live_url: str, tmp_path: Path) -> None:
    result = _login(live_url)
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(tokens_path().stat().st_mode) == 0o600
    assert stat.S_IMODE(tokens_path().parent.stat().st_mode) == 0o700
    assert "admin-password" not in tokens_path().read_text()
    _, jwk = node_keypair()
    key_file = tmp_path / "node.jwk"
    key_file.write_text(json.dumps(jwk))
    runner = CliRunner()
    registered = runner.invoke(
        cli,
        [
            "node",
            "register",
            "web1",
            "--realm",
            "jobmgr",
            "--public-key",
            str(key_file),
            "--authgroup",
            "web",
            "--trusted-realm",
            "cellB",
        ],
    )
    assert registered.exit_code == 0, registered.output
    listed = runner.invoke(cli, ["node", "list"])
    assert "web1\tjobmgr\tauthgroups=web\ttrusted=cellB" in listed.output
    updated = runner.invoke(cli, ["node", "update", "web1", "--json", "--trusted-realm", "cellC"])
    assert json.loads(updated.output)["trusted_realms"] == ["cellC"]
    assert runner.invoke(cli, ["node", "unregister", "web1"]).exit_code == 0
    assert "web1" not in runner.invoke(cli, ["node", "list"]).output


def test_wrong_password_is_one_line(live_url: str) -> None:
    result = _login(live_url, password="nope")
    assert result.exit_code != 0 and "login.failed" in result.output and "Traceback" not in result.output


def test_expired_session_is_refreshed(live_url: str) -> None:
    assert _login(live_url).exit_code == 0
    store = load_store()
    store["sessions"][live_url]["expires_at"] = int(time.time()) - 1
    old_refresh = store["sessions"][live_url]["refresh_token"]
    save_store(store)
    with user_api() as api:
        assert api.call("GET", "/api/v1/nodes", "the node list").status_code == 200
    assert load_store()["sessions"][live_url]["refresh_token"] != old_refresh


def test_logout_revokes_and_deletes(live_url: str) -> None:
    assert _login(live_url).exit_code == 0
    token = load_store()["sessions"][live_url]["access_token"]
    result = CliRunner().invoke(cli, ["logout"])
    assert result.exit_code == 0 and "logged out" in result.output
    assert live_url not in load_store()["sessions"]
    import httpx

    response = httpx.get(f"{live_url}/api/v1/nodes", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401 and response.json()["code"] == "token.revoked"
    assert os.path.exists(tokens_path())


def test_node_register_takes_a_pem_public_key(live_url: str, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization

    assert _login(live_url).exit_code == 0
    private, jwk = node_keypair("EdDSA")
    pem = private.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    (tmp_path / "node.pem").write_bytes(pem)
    result = CliRunner().invoke(
        cli, ["node", "register", "ed1", "--json", "--realm", "cellB", "--public-key", str(tmp_path / "node.pem")]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["public_jwk"]["kid"] == jwk["kid"]
    refused = CliRunner().invoke(
        cli, ["node", "register", "ed1", "--realm", "cellB", "--public-key", str(tmp_path / "node.pem")]
    )
    assert refused.exit_code != 0 and "node.exists" in refused.output


def test_commands_without_login_say_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "empty"))
    monkeypatch.delenv("JOBSTS_URL", raising=False)
    result = CliRunner().invoke(cli, ["node", "list"])
    assert result.exit_code == 2 and "error: session.missing: " in result.output and "jobsts login" in result.output


def test_serve_builds_the_app_and_runs_uvicorn(config_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    def fake_run(app: Any, **options: Any) -> None:
        seen.update(app=app, **options)

    monkeypatch.setattr("uvicorn.run", fake_run)
    monkeypatch.delenv("WERKZEUG_SERVER_FD", raising=False)
    result = CliRunner().invoke(cli, ["serve", "--config", str(config_file), "--port", "9999"])
    assert result.exit_code == 0, result.output
    assert seen["port"] == 9999 and seen["host"] == "127.0.0.1" and seen["lifespan"] == "on"
    assert seen["app"].flask.debug is False
    seen["app"].flask.extensions["jobsts"].close()


def test_wsgi_entry_point_reads_jobsts_config(config_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib
    import sys

    monkeypatch.setenv("JOBSTS_CONFIG", str(config_file))
    sys.modules.pop("sts.wsgi", None)
    module = importlib.import_module("sts.wsgi")
    try:
        assert module.app.test_client().get("/healthz").status_code == 200
    finally:
        module.app.extensions["jobsts"].close()
        sys.modules.pop("sts.wsgi", None)


def test_unreachable_sts_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.loopback import RefusedPort

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    with RefusedPort() as nothing_listens:
        result = _login(nothing_listens.url("http"))
    assert result.exit_code == 2 and "error: sts.unreachable" in result.output and "Traceback" not in result.output


def test_access_id_through_the_api_with_the_stored_login(live_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JOBSTS_CONFIG", raising=False)
    assert _login(live_url).exit_code == 0
    result = CliRunner().invoke(cli, ["access-id", "jobmgr", "carol"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "user:jobmgr/uid=carol,ou=people,dc=jobmgr,dc=example",
        "group:jobmgr/cn=monitors,ou=groups,dc=jobmgr,dc=example",
    ]
    missing = CliRunner().invoke(cli, ["access-id", "jobmgr", "ghost"])
    assert missing.exit_code == 2 and missing.output.count("user.unknown") == 1
