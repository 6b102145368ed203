"""``jobsts submit`` and ``jobsts jobs ...`` against a live STS (werkzeug, in a thread)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from werkzeug.serving import make_server

from agent_client.api.login_store import load_store, store_session
from agent_client.api.oauth import TokenResponse
from agent_client.commands.submitter import jobs, submit
from tests.jobs.conftest import World
from tests.sts.conftest import login

pytestmark = pytest.mark.db


@pytest.fixture
def live(world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, world.app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    store_session(url, "jobmgr", "john", TokenResponse(world.user_token("john"), 300, None))
    try:
        yield url
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_submit_list_show_cancel(world: World, live: str) -> None:
    runner = CliRunner()
    done = runner.invoke(
        submit, ["--node", "node1", "--type", "shell", "--env", "A=1", "--json", "--", "/bin/echo", "-n", "hello"]
    )
    assert done.exit_code == 0, done.output
    job = json.loads(done.output)
    assert job["spec"]["argv"] == ["/bin/echo", "-n", "hello"] and job["spec"]["env"] == {"A": "1"}
    listed = runner.invoke(jobs, ["list", "--state", "queued"])
    assert listed.exit_code == 0 and job["id"] in listed.output
    shown = runner.invoke(jobs, ["show", "--json", job["id"]])
    assert json.loads(shown.output)["id"] == job["id"]
    cancelled = runner.invoke(jobs, ["cancel", job["id"]])
    assert cancelled.exit_code == 0 and "cancelled" in cancelled.output
    again = runner.invoke(jobs, ["cancel", job["id"]])
    assert again.exit_code != 0 and "job.state" in again.output


def test_submit_refusals_are_one_line(world: World, live: str) -> None:
    result = CliRunner().invoke(submit, ["--node", "cellnode", "--type", "shell", "--", "/bin/true"])
    assert result.exit_code != 0 and "realm.untrusted" in result.output and "Traceback" not in result.output


def test_credentials_from_prompt_reads_stdin_and_wait_follows_the_job(world: World, live: str) -> None:
    def agent() -> None:
        headers = world.as_agent("cellnode", "cellB")
        give_up = time.monotonic() + 120
        while time.monotonic() < give_up:
            response = world.client.post("/api/v1/agent/lease", json={"wait": 1}, headers=headers)
            if response.status_code == 200:
                job_id = response.get_json()["job"]["id"]
                world.client.post(f"/api/v1/agent/jobs/{job_id}/start", json={}, headers=headers)
                world.client.post(
                    f"/api/v1/agent/jobs/{job_id}/result",
                    headers=headers,
                    json={"outcome": "failed", "exit_code": 2, "stdout_tail": "out\n", "stderr_tail": "err\n"},
                )
                return

    worker = threading.Thread(target=agent)
    worker.start()
    result = CliRunner().invoke(
        submit,
        [
            "--node",
            "cellnode",
            "--type",
            "shell",
            "--credentials-from-prompt",
            "--credentials-username",
            "bob",
            "--wait",
            "--",
            "/bin/false",
        ],
        input="bob-password\n",
    )
    worker.join(30)
    assert result.exit_code == 1, result.output  # failed
    assert "failed" in result.output and "out" in result.output
    assert "bob-password" not in result.output


def test_submit_wait_outlives_its_access_token(world: World, live: str) -> None:
    """The stored access token stops working while the job runs (here: 2 s of life, and a tokens file
    that still believes in it). The wait refreshes it on the 401 with the refresh token, and the job's
    own outcome comes back, not the expired token."""
    leeway = world.services.config.realms["jobmgr"].token.leeway
    short_lived = world.user_token("john", ttl=2 - leeway)
    refresh_token = login(world.client, "john")["refresh_token"]
    store_session(live, "jobmgr", "john", TokenResponse(short_lived, 3600, refresh_token))

    def agent() -> None:
        headers = world.as_agent("node1")
        give_up = time.monotonic() + 120
        while time.monotonic() < give_up:  # the job runs until the submitter's token is refused
            stale = world.client.get("/api/v1/jobs", headers={"Authorization": f"Bearer {short_lived}"})
            if stale.status_code == 401:
                break
            time.sleep(0.2)
        while time.monotonic() < give_up:
            response = world.client.post("/api/v1/agent/lease", json={"wait": 1}, headers=headers)
            if response.status_code == 200:
                job_id = response.get_json()["job"]["id"]
                world.client.post(f"/api/v1/agent/jobs/{job_id}/start", json={}, headers=headers)
                world.client.post(
                    f"/api/v1/agent/jobs/{job_id}/result",
                    headers=headers,
                    json={"outcome": "succeeded", "exit_code": 0, "stdout_tail": "done\n", "stderr_tail": ""},
                )
                return

    worker = threading.Thread(target=agent)
    worker.start()
    result = CliRunner().invoke(submit, ["--node", "node1", "--type", "shell", "--wait", "--", "/bin/true"])
    worker.join(40)
    assert result.exit_code == 0, result.output
    assert "succeeded" in result.output and "done" in result.output
    stored = load_store()["sessions"][live]
    assert stored["access_token"] != short_lived and stored["refresh_token"] != refresh_token
