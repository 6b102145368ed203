"""``jobsts authz --url`` (the job manager's own table over the API), ``jobsts whoami``,
``jobsts token``, and one-line errors, against a live STS (werkzeug, in a thread)."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from werkzeug.serving import make_server

from agent_client.api.login_store import store_session
from agent_client.api.oauth import TokenResponse
from agent_client.commands.authz import authz
from agent_client.commands.submitter import login, token, whoami
from tests.jobs.conftest import World
from tests.sts.conftest import login as password_login
from tests.sts.fakes import group_id, user_id

pytestmark = pytest.mark.db
ADMIN = user_id("jobmgr", "admin")
USER2 = user_id("jobmgr", "user2")


@pytest.fixture
def live(world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, world.app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    try:
        yield url
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _as(world: World, url: str, username: str) -> None:
    tokens = password_login(world.client, username)
    store_session(url, "jobmgr", username, TokenResponse(tokens["access_token"], 300, tokens["refresh_token"]))


def test_authz_url_grants_remotely_and_the_audit_names_the_caller(
    world: World, live: str, caplog: pytest.LogCaptureFixture
) -> None:
    _as(world, live, "admin")
    runner = CliRunner()
    with caplog.at_level(logging.INFO, logger="jobsts.audit"):
        granted = runner.invoke(authz, ["--url", live, "grant", str(USER2), "monitor"])
    assert granted.exit_code == 0, granted.output
    assert granted.output.startswith(f"+ allow monitor * {USER2}")
    audit = [json.loads(r.getMessage()) for r in caplog.records if r.name == "jobsts.audit"]
    changed = [line for line in audit if line["event"] == "authz.changed"]
    assert changed and changed[-1]["actor"] == str(ADMIN)
    listed = runner.invoke(authz, ["--url", live, "list", "--principal", str(USER2)])
    assert listed.exit_code == 0 and str(ADMIN) in listed.output and "1 entries" in listed.output
    history = runner.invoke(authz, ["--url", live, "history", "--principal", str(USER2)])
    assert history.exit_code == 0 and str(ADMIN) in history.output
    exported = runner.invoke(authz, ["--url", live, "export", "--format", "json"])
    assert exported.exit_code == 0 and str(USER2) in exported.output
    revoked = runner.invoke(authz, ["--url", live, "revoke", str(USER2), "monitor"])
    assert revoked.exit_code == 0 and revoked.output.startswith("- allow monitor")
    # user2 now holds no role: whoami says so, and the table endpoints refuse it.
    _as(world, live, "user2")
    me = runner.invoke(whoami, ["--url", live, "--json"])
    assert me.exit_code == 0, me.output
    assert json.loads(me.output)["roles"] == [] and json.loads(me.output)["access_id"] == str(USER2)
    refused = runner.invoke(authz, ["--url", live, "grant", str(USER2), "administrator"])
    assert refused.exit_code == 2 and "authz.denied" in refused.output


def test_whoami_lists_groups_and_roles_and_token_prints_a_working_token(world: World, live: str) -> None:
    _as(world, live, "john")
    runner = CliRunner()
    shown = runner.invoke(whoami, ["--url", live])
    assert shown.exit_code == 0, shown.output
    assert f"access_id\t{user_id('jobmgr', 'john')}" in shown.output
    assert f"group\t{group_id('jobmgr', 'operators')}" in shown.output
    assert "roles\toperator, monitor" in shown.output
    printed = runner.invoke(token, ["--url", live])
    assert printed.exit_code == 0
    answer = world.client.get("/api/v1/me", headers={"Authorization": f"Bearer {printed.output.strip()}"})
    assert answer.status_code == 200


def test_a_refused_login_is_one_line_with_the_code_once(world: World, live: str) -> None:
    result = CliRunner().invoke(login, ["--url", live, "--realm", "jobmgr", "--username", "john"], input="wrong\n")
    assert result.exit_code == 2
    assert result.output.count("login.failed") == 1 and result.output.startswith("error: login.failed: ")
