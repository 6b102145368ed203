"""Agents wait on ``GET /api/v1/agent/wait`` holding no thread: health, login and submit answer
while many agents wait; a submit wakes the agent of its node; the route authenticates exactly
like the other agent endpoints. On SQLite and, with ``-m db``, on PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from agent_client.api.login_store import store_session
from agent_client.api.oauth import TokenResponse
from agent_client.commands.admin import node as node_command
from tests.fleet.fleet import NO_POLL, WAIT, Fleet, config_for, metric, replicas, until
from tests.production.servers import StsProcess, bearer

pytestmark = [pytest.mark.db]
WAITERS = 50


@pytest.fixture
def sts(tmp_path: Path, database_url: str) -> Iterator[StsProcess]:
    with replicas(config_for(tmp_path, database_url), tmp_path, 1) as (server,):
        yield server


def _wait(url: str, token: str, timeout: int = 60) -> httpx.Response:
    return httpx.get(f"{url}{WAIT}", params={"timeout": timeout}, headers=bearer(token), timeout=180)


def test_waiting_agents_hold_no_thread(sts: StsProcess) -> None:
    # The STS runs 4 Flask threads (tests.production.servers); 50 waiting agents would have
    # taken every one of them if a wait held a thread.
    fleet = Fleet.register(sts, WAITERS)
    with ThreadPoolExecutor(WAITERS) as pool:
        waits: dict[str, Future[httpx.Response]] = {
            node: pool.submit(_wait, sts.url, token) for node, token in fleet.tokens.items()
        }
        until(lambda: metric(sts, "jobsts_agents_waiting") == WAITERS, "every agent to wait")
        assert sts.client.get("/healthz").status_code == 200
        assert sts.login("john").status == 200
        # Health and a login were answered while every wait was still open.
        assert not any(wait.done() for wait in waits.values())
        job = sts.submit(fleet.admin, "n0007")
        woken = waits["n0007"].result()
        assert woken.status_code == 200 and woken.json() == {"work": True}
        assert not any(wait.done() for node, wait in waits.items() if node != "n0007")
        leased = sts.lease(fleet.tokens["n0007"])
        assert leased is not None and leased["job"]["id"] == job
        # A short timeout ends a wait with no work; then the rest are let go.
        quiet = _wait(sts.url, fleet.tokens["n0001"], timeout=1)
        assert quiet.status_code == 200 and quiet.json() == {"work": False}
        for node in list(fleet.tokens)[:10]:
            sts.submit(fleet.admin, node)
        for node in list(fleet.tokens)[:10]:
            if node != "n0007":
                assert waits[node].result().json() == {"work": True}
        sts.stop()  # the remaining waits are cut when the server stops
        for wait in waits.values():
            try:
                wait.result()
            except httpx.TransportError:
                pass


def test_a_submit_wakes_a_waiting_agent_of_its_process(tmp_path: Path, database_url: str) -> None:
    """With the fallback poll off, the submit itself wakes the agent: on SQLite the submitting
    process after its commit, on PostgreSQL the notification."""
    with replicas(config_for(tmp_path, database_url), tmp_path, 1, env=NO_POLL) as (server,):
        fleet = Fleet.register(server, 1)
        with ThreadPoolExecutor(1) as pool:
            waiting = pool.submit(_wait, server.url, fleet.tokens["n0000"])
            until(lambda: metric(server, "jobsts_agents_waiting") == 1, "the wait")
            server.submit(fleet.admin, "n0000")
            assert waiting.result().json() == {"work": True}
        assert metric(server, "jobsts_agent_wakeups_total", '{source="notify"}') == 1


def test_queued_work_answers_at_once(sts: StsProcess) -> None:
    fleet = Fleet.register(sts, 1)
    sts.submit(fleet.admin, "n0000")
    answer = _wait(sts.url, fleet.tokens["n0000"], timeout=60)
    assert answer.json() == {"work": True}
    assert answer.headers["cache-control"] == "no-store"


def _refusal(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, response.json()["code"]


def test_wait_authenticates_like_the_agent_endpoints(sts: StsProcess) -> None:
    fleet = Fleet.register(sts, 2)
    user = sts.token("john")
    gone = fleet.tokens["n0001"]
    deleted = sts.client.delete("/api/v1/nodes/n0001", headers=bearer(fleet.admin))
    assert deleted.status_code == 204
    cases = {
        "none": {},
        "garbage": bearer("not-a-token"),
        "user token": bearer(user),
        "unregistered node": bearer(gone),
        "basic": {"Authorization": "Basic Zm9vOmJhcg=="},
    }
    for name, headers in cases.items():
        waited = sts.client.get(WAIT, params={"timeout": 1}, headers=headers)
        leased = sts.client.post("/api/v1/agent/lease", json={"wait": 0}, headers=headers)
        assert waited.status_code == 401, (name, waited.text)
        assert _refusal(waited) == _refusal(leased), name
        assert waited.headers["www-authenticate"] == leased.headers["www-authenticate"], name
        assert waited.headers["content-type"] == "application/problem+json", name
    expected = {"user token", "unregistered node"}
    codes = {name: _refusal(sts.client.get(WAIT, headers=headers))[1] for name, headers in cases.items()}
    assert codes["unregistered node"] == "node.unknown" and codes["none"] == "auth.required"
    assert all(codes[name] != "auth.required" for name in expected)
    # A valid token with a bad timeout is a 400 with its code; a POST is not a wait.
    bad = sts.client.get(WAIT, params={"timeout": 3600}, headers=bearer(fleet.tokens["n0000"]))
    assert bad.status_code == 400 and bad.json()["code"] == "job.invalid_spec"
    post = sts.client.post(WAIT, headers=bearer(fleet.tokens["n0000"]))
    assert post.status_code == 405 and post.json()["code"] == "request.method"


def test_last_seen_and_connected(sts: StsProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fleet = Fleet.register(sts, 2)
    before = sts.client.get("/api/v1/nodes/n0000", headers=bearer(fleet.admin)).json()
    assert before["last_seen_at"] is None and before["connected"] is False
    assert _wait(sts.url, fleet.tokens["n0000"], timeout=1).json() == {"work": False}

    def seen() -> bool:
        node = sts.client.get("/api/v1/nodes/n0000", headers=bearer(fleet.admin)).json()
        return node["last_seen_at"] is not None and node["connected"] is True

    until(seen, "the presence flush")
    listed = {node["id"]: node for node in sts.client.get("/api/v1/nodes", headers=bearer(fleet.admin)).json()["nodes"]}
    assert listed["n0000"]["connected"] is True and listed["n0001"]["connected"] is False
    assert metric(sts, "jobsts_nodes_connected") == 1
    # ``jobsts node list`` shows the same, in lines and with --json.
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    tokens = sts.login("admin").body
    store_session(sts.url, "jobmgr", "admin", TokenResponse(tokens["access_token"], 300, tokens["refresh_token"]))
    lines = CliRunner().invoke(node_command, ["list", "--url", sts.url])
    assert lines.exit_code == 0, lines.output
    by_node = {line.split("\t")[0]: line for line in lines.output.splitlines()}
    assert "\tconnected\tlast_seen=20" in by_node["n0000"]
    assert "\tdisconnected\tlast_seen=never" in by_node["n0001"]
    as_json = CliRunner().invoke(node_command, ["list", "--url", sts.url, "--json"])
    listed_json = {item["id"]: item for item in json.loads(as_json.output)}
    assert listed_json["n0000"]["connected"] is True and isinstance(listed_json["n0000"]["last_seen_at"], int)
