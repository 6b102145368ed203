"""``jobsts submit --wait`` outlives its access token: a real STS process whose access tokens live
3 seconds (no leeway), a real agent (``jobsts agent run --once``) and the installed console script.

The job sleeps for 10 seconds, more than three access-token lifetimes, then exits 7. The wait must
refresh its token through the one ``httpx.Auth`` flow (proactively, and again on any 401), and
report the job's own outcome: exit 1 (failed) and the job's exit code 7, never ``token.expired``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import JOBSTS, Accounts, AgentNode, StsServer, jobsts, write_csv
from tests.ldap_harness import SlapdServer

ADMIN = "user:jobmgr/uid=admin,ou=people,dc=jobmgr,dc=example"
OPERATORS = "group:jobmgr/cn=operators,ou=groups,dc=jobmgr,dc=example"
JOB_SECONDS = 10  # > 3 lifetimes of ACCESS_TOKEN_TTL (3 s)


def _clean_env(home: Path) -> dict[str, str]:
    environ = {key: value for key, value in os.environ.items() if not key.startswith("JOBSTS_")}
    environ["XDG_CONFIG_HOME"] = str(home)
    return environ


@pytest.fixture
def short_ttl_sts(slapd: SlapdServer, tmp_path: Path) -> Iterator[StsServer]:
    server = StsServer(tmp_path / "sts", [slapd.realm_table("jobmgr")], bootstrap_admins=[ADMIN]).prepare()
    assert server.sock is not None
    table = write_csv(tmp_path / "jobmgr.csv", [(OPERATORS, "operator", "allow", "*")])
    jobsts("authz", "--table", server.database_url, "import", str(table))
    with (tmp_path / "sts.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.cli.short_ttl_sts", str(server.config_path), str(server.sock.fileno())],
            stdout=subprocess.PIPE,
            stderr=log,
            stdin=subprocess.DEVNULL,
            text=True,
            env=_clean_env(tmp_path / "sts-home"),
            pass_fds=[server.sock.fileno()],
        )
    try:
        assert process.stdout is not None
        ready = process.stdout.readline()
        assert ready.startswith("READY"), (tmp_path / "sts.log").read_text()
        yield server
    finally:
        process.terminate()
        process.communicate(timeout=15)
        server.stop()  # releases the held socket


def test_submit_wait_outlives_three_access_token_lifetimes(short_ttl_sts: StsServer, tmp_path: Path) -> None:
    sts = short_ttl_sts
    accounts = Accounts.make(["john"])
    try:
        found = jobsts("access-id", "--config", str(sts.config_path), "jobmgr", "john", "--json")
        john = json.loads(found.stdout)["access_id"]
        node = AgentNode(
            "longnode",
            "jobmgr",
            tmp_path / "agent",
            sts,
            job_types={"run": "operator"},
            rules=[{"access_id": john, "account": accounts["john"]}],
        ).init()
        sts.register_node(sts.token("admin"), "longnode", "jobmgr", node.directory / "node.pub.pem")
        node.import_table([(john, "operator", "allow", "*")])

        home = tmp_path / "john"
        jobsts(
            "login",
            "--url",
            sts.base_url,
            "--realm",
            "jobmgr",
            "--username",
            "john",
            home=home,
            stdin="john-password\n",
        )
        login_store = json.loads((home / "jobsts" / "tokens.json").read_text())
        first_token = login_store["sessions"][sts.base_url]["access_token"]

        waiting = subprocess.Popen(
            [
                str(JOBSTS),
                "submit",
                "--node",
                "longnode",
                "--type",
                "run",
                "--wait",
                "--",
                "/bin/sh",
                "-c",
                f"sleep {JOB_SECONDS}; echo slept; exit 7",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            env=_clean_env(home),
        )
        assert waiting.stdout is not None
        submitted = waiting.stdout.readline()  # the job is queued once its summary line is printed
        node.run_once()  # leases the job, runs it to its end, reports exit code 7
        rest, err = waiting.communicate(timeout=120)
        out = submitted + rest
    finally:
        accounts.remove()

    assert waiting.returncode == 1, f"stdout: {out}\nstderr: {err}"  # the job failed: exit 1, not 2
    assert "token.expired" not in err and "error:" not in err, err
    assert "slept" in out and "failed" in out
    assert "job exit code 7" in err and "jobsts exits 1" in err, err
    assert "running" in err  # the state changes were shown
    stored = json.loads((home / "jobsts" / "tokens.json").read_text())["sessions"][sts.base_url]
    assert stored["access_token"] != first_token and stored["lifetime"] == 3
    # Each refresh is one token.issued for an at+jwt in the audit log: the login, and at least
    # one more per lifetime the job outlived.
    audit = [json.loads(line) for line in (tmp_path / "sts.log").read_text().splitlines() if line.startswith("{")]
    issued = [r for r in audit if r.get("event") == "token.issued" and r.get("profile") == "at+jwt"]
    assert len(issued) >= 4, issued
