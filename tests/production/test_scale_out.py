"""Two STS processes (``jobsts serve --production``, different loopback ports) on one database
behave as one service: shared keys, rotation and revocations; tokens accepted across them;
login throttling counted across them; and no job leased twice.

They run on PostgreSQL when JOBSTS_TEST_DATABASE_URL is set (a fresh schema per test), and on
one SQLite file otherwise (several processes on one SQLite file work too, one writer at a time).
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ldap_harness import ldif_realm_table
from tests.production.servers import StsProcess, bearer, running, write_sts_config

pytestmark = [pytest.mark.db]


@pytest.fixture
def pair(tmp_path: Path, database_url: str) -> Iterator[tuple[StsProcess, StsProcess]]:
    config = write_sts_config(tmp_path, database_url, [ldif_realm_table("jobmgr"), ldif_realm_table("cellB")])
    with running(config, tmp_path, count=2, workers=1) as (first, second):
        assert first.port != second.port
        yield first, second


def _kids(server: StsProcess) -> set[str]:
    return {key["kid"] for key in server.client.get("/realms/jobmgr/jwks").json()["keys"]}


def _active_kid(token: str) -> str:
    import jwt

    return str(jwt.get_unverified_header(token)["kid"])


def test_keys_and_rotation_are_shared(pair: tuple[StsProcess, StsProcess], tmp_path: Path) -> None:
    first, second = pair
    assert _kids(first) == _kids(second) and _kids(first)
    before = _active_kid(first.token("john"))
    assert _active_kid(second.token("john")) == before
    rotated = subprocess.run(
        [
            sys.executable,
            "-c",
            "from realms.console import main; main()",
            "keys",
            "rotate",
            "--config",
            str(tmp_path / "sts.toml"),
            "--realm",
            "jobmgr",
            "--now",  # the emergency rotation: signs at once (a plain rotate pre-publishes first)
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert rotated.returncode == 0, rotated.stderr
    # Each process re-reads the key ring generation at most once per check interval (1 s).
    give_up = time.monotonic() + 60
    while time.monotonic() < give_up:
        kids = [_active_kid(server.token("john")) for server in pair]
        if before not in kids:
            break
        time.sleep(0.2)
    assert kids[0] == kids[1] != before
    # The old key stays published by both (tokens it signed are still valid), the new one too.
    assert {before, kids[0]} <= _kids(first) and _kids(first) == _kids(second)


def test_tokens_and_revocations_cross_processes(pair: tuple[StsProcess, StsProcess]) -> None:
    first, second = pair
    token = first.token("admin")
    assert second.client.get("/api/v1/jobs", headers=bearer(token)).status_code == 200
    private = second.register_node(token, "n1")
    agent = first.agent_token("n1", private)
    assert second.lease(agent) is None  # accepted, nothing queued
    revoked = first.post("/realms/jobmgr/revoke", data={"token": token})
    assert revoked.status == 200
    refused = second.client.get("/api/v1/jobs", headers=bearer(token))
    assert refused.status_code == 401 and refused.json()["code"] == "token.revoked"
    assert first.post("/realms/jobmgr/revoke", data={"token": agent}).status == 200
    gone = second.client.post("/api/v1/agent/lease", headers=bearer(agent), json={"wait": 0})
    assert gone.status_code == 401 and gone.json()["code"] == "token.revoked"


def test_login_throttle_counts_across_processes(pair: tuple[StsProcess, StsProcess]) -> None:
    first, second = pair
    # failure_factor = 3: two failures on one process and one on the other lock the user.
    for server in (first, second, first):
        assert server.login("john", "wrong").body["code"] == "login.failed"
    for server in pair:
        locked = server.login("john")  # the right password, while locked
        assert locked.status == 400 and locked.body["code"] == "login.failed", locked.body
    assert first.login("user1").status == 200  # another user is not affected


def test_leases_never_double_across_processes(pair: tuple[StsProcess, StsProcess]) -> None:
    first, second = pair
    admin = first.token("admin")
    private = first.register_node(admin, "n1")
    jobs = 40
    submitted = {(first if i % 2 else second).submit(admin, "n1") for i in range(jobs)}
    assert len(submitted) == jobs
    handled: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def agent(index: int) -> None:
        try:
            servers = (first, second) if index % 2 else (second, first)
            tokens = [server.agent_token("n1", private) for server in servers]
            turn = 0
            while True:
                # Alternate between the two processes on every call, lease and report alike.
                server, token = servers[turn % 2], tokens[turn % 2]
                leased = server.lease(token)
                if leased is None:
                    return
                turn += 1
                servers[turn % 2].finish(tokens[turn % 2], leased)
                with lock:
                    handled.append(leased["job"]["id"])
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=agent, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors
    counts = Counter(handled)
    assert set(counts) == submitted, "every job exactly once"
    assert max(counts.values()) == 1, [job for job, n in counts.items() if n > 1]
    history = first.client.get("/api/v1/jobs", params={"limit": 100}, headers=bearer(admin)).json()["jobs"]
    assert {job["state"] for job in history} == {"succeeded"} and len(history) == jobs
    assert all(job["attempts"] == 1 for job in history)
