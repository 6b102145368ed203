"""``jobsts node join-token`` and ``jobsts agent init --join-token`` / ``agent enroll`` against a
live STS (werkzeug, in a thread), with the audit trail."""

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
from realms.console import cli
from sts.nodes.models import Node
from tests.jobs.conftest import World, build_world
from tests.sts.conftest import login as password_login

pytestmark = pytest.mark.db


@pytest.fixture
def live(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[World, str]]:
    world = build_world(tmp_path, database_url)
    server = make_server("127.0.0.1", 0, world.app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    tokens = password_login(world.client, "admin")
    store_session(url, "jobmgr", "admin", TokenResponse(tokens["access_token"], 300, tokens["refresh_token"]))
    try:
        yield world, url
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
        world.services.close()


def test_an_agent_enrolls_with_a_join_token_from_the_cli(
    live: tuple[World, str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    world, url = live
    runner = CliRunner()
    made = runner.invoke(
        cli, ["node", "join-token", "edge1", "--url", url, "--realm", "jobmgr", "--authgroup", "batch", "--ttl", "10m"]
    )
    assert made.exit_code == 0, made.output
    token = made.output.splitlines()[0]
    assert token.startswith("jstjoin_")
    with caplog.at_level(logging.INFO, logger="jobsts.audit"):
        init = runner.invoke(
            cli,
            [
                *("agent", "init", "--node", "edge1", "--realm", "jobmgr", "--sts", url),
                *("--dir", str(tmp_path / "agent"), "--join-token", token),
            ],
        )
    assert init.exit_code == 0, init.output
    assert "node edge1 enrolled" in init.output
    with world.services.db.session() as session:
        node = session.get(Node, "edge1")
        assert node is not None and node.authgroups == ["batch"]
    audit = [json.loads(r.getMessage()) for r in caplog.records if r.name == "jobsts.audit"]
    assert [a["outcome"] for a in audit if a["event"] == "node.enrolled"] == ["ok"]
    again = runner.invoke(
        cli, ["agent", "enroll", "--config", str(tmp_path / "agent" / "agent.toml"), "--join-token", token]
    )
    assert again.exit_code != 0 and "join_token.used" in again.output
