"""The compose stack's bootstrap, run on loopback with real processes.

No Docker engine runs here, so this module runs what the containers run, as processes: a real
STS (gunicorn, tests/e2e/harness.py) on the harness slapd, the agent image's entry point
(docker/agent-entrypoint.sh) for node1 and node2, which makes each node's key pair with
``jobsts agent init``, publishes the public key and waits, and docker/bootstrap.sh with the
environment, node list and grant files of the compose ``bootstrap`` service. Then both nodes
are registered with their agents' keys, the tables and grants exist, the agents start and run
John's jobs, and a second bootstrap changes nothing.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import yaml
from cryptography.hazmat.primitives import serialization

from tests.e2e.harness import Accounts, StsServer, jobsts, toml_table, wait_terminal, write_private
from tests.ldap_harness import SlapdServer

pytestmark = pytest.mark.slapd

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
BOOTSTRAP = DOCKER / "bootstrap.sh"
ENTRYPOINT = DOCKER / "agent-entrypoint.sh"
GRANTS = DOCKER / "bootstrap" / "grants"
ADMIN = "user:jobmgr/uid=admin,ou=people,dc=jobmgr,dc=example"
IS_ROOT = os.geteuid() == 0
STEP_TIMEOUT = 120


def compose_bootstrap_env() -> dict[str, str]:
    """The environment of the compose ``bootstrap`` service (this test runs the same node list)."""
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    return {key: str(value) for key, value in compose["services"]["bootstrap"]["environment"].items()}


def node_specs() -> dict[str, tuple[str, list[str]]]:
    """node id -> (realm, trusted realms), from JOBSTS_BOOTSTRAP_NODES of the compose file."""
    specs = {}
    for word in compose_bootstrap_env()["JOBSTS_BOOTSTRAP_NODES"].split():
        node, realm, *rest = word.split(":")
        specs[node] = (realm, [name for name in (rest[0] if rest else "").split(",") if name])
    return specs


def clean_env(**extra: str) -> dict[str, str]:
    """The test's environment without JOBSTS_* settings, with this venv's programs first on PATH."""
    environ = {key: value for key, value in os.environ.items() if not key.startswith("JOBSTS_")}
    environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{environ.get('PATH', '/usr/bin:/bin')}"
    environ.update(extra)
    return environ


@dataclass
class Site:
    """The STS, the running agent entry points, and how bootstrap.sh is called."""

    sts: StsServer
    workdir: Path
    accounts: Accounts
    agents: dict[str, subprocess.Popen[bytes]]
    first_run: subprocess.CompletedProcess[str]
    waiting_before_bootstrap: dict[str, str]

    def pubkey(self, node: str) -> Path:
        return self.workdir / "pubkeys" / node / "node.pub.pem"

    def table(self, node: str) -> Path:
        return self.workdir / "authz" / node / "authz.sqlite"

    def bootstrap_env(self, **overrides: str) -> dict[str, str]:
        compose = compose_bootstrap_env()
        settings = {
            "JOBSTS_BOOTSTRAP_URL": self.sts.base_url,
            "JOBSTS_BOOTSTRAP_ADMIN_REALM": compose["JOBSTS_BOOTSTRAP_ADMIN_REALM"],
            "JOBSTS_BOOTSTRAP_ADMIN_USERNAME": compose["JOBSTS_BOOTSTRAP_ADMIN_USERNAME"],
            "JOBSTS_BOOTSTRAP_ADMIN_PASSWORD_FILE": str(self.workdir / "admin_password"),
            "JOBSTS_BOOTSTRAP_NODES": compose["JOBSTS_BOOTSTRAP_NODES"],
            "JOBSTS_BOOTSTRAP_PUBLIC_KEY": str(self.workdir / "pubkeys" / "{node}" / "node.pub.pem"),
            "JOBSTS_BOOTSTRAP_NODE_TABLE": str(self.workdir / "authz" / "{node}" / "authz.sqlite"),
            "JOBSTS_BOOTSTRAP_NODE_GRANTS": str(GRANTS / "{node}.csv"),
            "JOBSTS_BOOTSTRAP_STS_TABLE": self.sts.database_url,
            "JOBSTS_BOOTSTRAP_STS_GRANTS": str(GRANTS / "sts.csv"),
            "JOBSTS_BOOTSTRAP_WAIT": "60",
        }
        settings.update(overrides)
        return clean_env(**settings)

    def bootstrap(self, **overrides: str) -> subprocess.CompletedProcess[str]:
        return run_bootstrap(self.bootstrap_env(**overrides))


def run_bootstrap(environ: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(BOOTSTRAP)],
        capture_output=True,
        text=True,
        env=dict(environ),
        stdin=subprocess.DEVNULL,
        timeout=STEP_TIMEOUT,
        check=False,
    )


def write_agent_source(
    directory: Path, node: str, realm: str, trusted: list[str], sts: StsServer, account: str
) -> Path:
    """The node's agent.toml as the compose configs are: absolute paths, key made on first start."""
    agent = {
        "node_id": node,
        "realm": realm,
        "sts_url": sts.base_url,
        "key_file": str(directory / "key" / "node.key"),
        "state_dir": str(directory / "key" / "state"),
        "authz_table": str(directory.parent / "authz" / node / "authz.sqlite"),
        "executor": "setuid" if IS_ROOT else "self",
        "trusted_realms": trusted,
        "poll_wait": 1,
    }
    lines = toml_table("agent", agent) + toml_table("job_types", {"run": "operator"})
    lines += toml_table("mapping", {"fallback": "deny"})
    lines += toml_table("mapping.rules", {"role": "operator", "account": account}, array=True)
    source = directory / "agent.source.toml"
    directory.mkdir(mode=0o700, parents=True)
    write_private(source, "\n".join(lines))
    return source


def start_agent(workdir: Path, node: str, source: Path) -> subprocess.Popen[bytes]:
    """docker/agent-entrypoint.sh as the agent container runs it (its own log file)."""
    etc = workdir / node / "etc"
    etc.mkdir(mode=0o700)
    environ = clean_env(
        JOBSTS_AGENT_CONFIG=str(etc / "agent.toml"),
        JOBSTS_AGENT_CONFIG_SOURCE=str(source),
        JOBSTS_AGENT_PUBLIC_KEY_COPY=str(workdir / "pubkeys" / node / "node.pub.pem"),
    )
    with (workdir / f"{node}.log").open("wb") as log:
        return subprocess.Popen(
            ["sh", str(ENTRYPOINT)], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=environ
        )


def wait_for(path: Path, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STEP_TIMEOUT
    while not path.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"{path} never appeared: {log.read_text(errors='replace')[-2000:]}")
        time.sleep(0.1)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def site(slapd: SlapdServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    specs = node_specs()
    realms = sorted({realm for realm, trusted in specs.values()} | {r for _, t in specs.values() for r in t})
    workdir = tmp_path_factory.mktemp("compose")
    write_private(workdir / "admin_password", "admin-password\n")
    accounts = Accounts.make(["batch"])
    sts = StsServer(workdir / "sts", [slapd.realm_table(realm) for realm in realms], bootstrap_admins=[ADMIN])
    agents: dict[str, subprocess.Popen[bytes]] = {}
    try:
        sts.prepare().start()
        for node, (realm, trusted) in specs.items():
            source = write_agent_source(workdir / node, node, realm, trusted, sts, accounts["batch"])
            agents[node] = start_agent(workdir, node, source)
        # Each entry point makes its key pair and publishes the public key, then waits.
        for node, process in agents.items():
            wait_for(workdir / "pubkeys" / node / "node.pub.pem", process, workdir / f"{node}.log")
        waiting = {}
        for node, process in agents.items():
            log = workdir / f"{node}.log"
            deadline = time.monotonic() + STEP_TIMEOUT
            while "waiting for" not in log.read_text() and time.monotonic() < deadline:
                time.sleep(0.1)
            assert process.poll() is None, log.read_text()
            waiting[node] = log.read_text()
        assert not any((workdir / "authz" / node / "authz.sqlite").exists() for node in specs)
        draft = Site(sts, workdir, accounts, agents, subprocess.CompletedProcess([], 0), waiting)
        first = draft.bootstrap()
        assert first.returncode == 0, f"{first.stdout}\n{first.stderr}"
        draft.first_run = first
        yield draft
    finally:
        for process in agents.values():
            stop(process)
        sts.stop()
        accounts.remove()


def admin_get(site: Site, path: str) -> Any:
    with site.sts.http() as http:
        response = http.get(path, headers={"Authorization": f"Bearer {site.sts.token('admin')}"})
    assert response.status_code == 200, response.text
    return response.json()


def spki(key: Any) -> bytes:
    return bytes(key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo))


def exported(table: str) -> list[dict[str, Any]]:
    done = jobsts("authz", "--table", table, "export", "--format", "json", "--audit")
    rows: list[dict[str, Any]] = json.loads(done.stdout)["entries"]
    return rows


def grants_in(csv_file: Path) -> set[tuple[str, str, str, str]]:
    import csv

    with csv_file.open(encoding="utf-8", newline="") as handle:
        return {(row["access_id"], row["role"], row["effect"], row["scope"]) for row in csv.DictReader(handle)}


def entries(rows: list[dict[str, Any]]) -> set[tuple[str, str, str, str]]:
    return {(row["access_id"], row["role"], row["effect"], row["scope"]) for row in rows}


def test_every_node_of_the_compose_file_is_registered_with_its_agents_key(site: Site) -> None:
    for node, (realm, trusted) in node_specs().items():
        shown = admin_get(site, f"/api/v1/nodes/{node}")
        assert shown["realm"] == realm
        assert shown["trusted_realms"] == sorted(trusted)
        made_by_agent = serialization.load_pem_public_key((site.workdir / node / "key" / "node.pub.pem").read_bytes())
        assert spki(jwt.PyJWK(shown["public_jwk"]).key) == spki(made_by_agent)
        assert shown["created_by"] == ADMIN
        assert f"node {node}: registered in realm {realm}" in site.first_run.stdout


def test_the_private_keys_stay_with_the_agents(site: Site) -> None:
    for node in node_specs():
        key = site.workdir / node / "key" / "node.key"
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
        published = list((site.workdir / "pubkeys" / node).iterdir())
        assert [path.name for path in published] == ["node.pub.pem"]
        assert b"PRIVATE" not in published[0].read_bytes()


def test_each_nodes_table_holds_its_grants_and_the_agent_would_accept_it(site: Site) -> None:
    for node in node_specs():
        table = site.table(node)
        assert entries(exported(f"sqlite:///{table}")) == grants_in(GRANTS / f"{node}.csv")
        info = table.stat()
        assert info.st_uid == os.geteuid()
        assert not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
        assert not list(table.parent.glob("*.new.*"))  # built aside, renamed into place
    assert entries(exported(site.sts.database_url)) >= grants_in(GRANTS / "sts.csv")


def test_the_agents_waited_for_their_table_then_run_johns_jobs(site: Site) -> None:
    for node, text in site.waiting_before_bootstrap.items():
        assert f"node {node}: waiting for {site.table(node)}" in text
    assert all(process.poll() is None for process in site.agents.values())
    token = site.sts.token("john")
    jobs = {node: site.sts.submit(token, node, "run") for node in node_specs()}
    for node, job in jobs.items():
        done = wait_terminal(site.sts, token, job["id"], timeout=STEP_TIMEOUT)
        assert done["state"] == "succeeded", (node, done, (site.workdir / f"{node}.log").read_text()[-2000:])
        assert done["result"]["account"] == site.accounts["batch"]
        assert done["result"]["stdout_tail"].strip() == site.accounts["batch"]


def dump(database: Path) -> list[str]:
    with contextlib.closing(sqlite3.connect(database)) as connection:
        return list(connection.iterdump())


def snapshot(site: Site) -> dict[str, Any]:
    """Everything the bootstrap writes: registrations (with update stamps), each node's whole
    table file, and the job manager's table with its audit columns."""
    return {
        "nodes": {node: admin_get(site, f"/api/v1/nodes/{node}") for node in node_specs()},
        "tables": {node: dump(site.table(node)) for node in node_specs()},
        "sts": exported(site.sts.database_url),
    }


def test_a_second_run_changes_nothing_and_exits_0(site: Site) -> None:
    before = snapshot(site)
    again = site.bootstrap()
    assert again.returncode == 0, again.stderr
    assert snapshot(site) == before
    for node in node_specs():
        assert f"node {node}: registered already, unchanged" in again.stdout
    summaries = [line for line in again.stdout.splitlines() if "import:" in line]
    assert len(summaries) == len(node_specs()) + 1
    assert all(" 0 added, 0 changed, 0 removed," in line for line in summaries), again.stdout


def pem_key_pair(directory: Path) -> Path:
    """A fresh P-256 key pair like ``jobsts agent init`` makes; returns the public key's path."""
    from cryptography.hazmat.primitives.asymmetric import ec

    directory.mkdir(parents=True)
    public = directory / "node.pub.pem"
    public.write_bytes(
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return public


def test_a_node_registered_differently_is_updated(site: Site) -> None:
    """A node re-keyed since it was registered (its agent's volume was lost), now trusting cellB."""
    old = pem_key_pair(site.workdir / "node9-old")
    site.sts.register_node(site.sts.token("admin"), "node9", "jobmgr", old)
    new = pem_key_pair(site.workdir / "pubkeys" / "node9")
    done = site.bootstrap(JOBSTS_BOOTSTRAP_NODES="node9:jobmgr:cellB")
    assert done.returncode == 0, done.stderr
    assert "node node9: registration updated" in done.stdout
    assert "table of node9" in done.stdout and "new: import: 0 added" in done.stdout  # no grants file: empty
    shown = admin_get(site, "/api/v1/nodes/node9")
    assert shown["trusted_realms"] == ["cellB"]
    assert spki(jwt.PyJWK(shown["public_jwk"]).key) == spki(serialization.load_pem_public_key(new.read_bytes()))


def test_a_missing_public_key_fails_after_the_wait_naming_the_file(site: Site) -> None:
    done = site.bootstrap(JOBSTS_BOOTSTRAP_NODES="node8:jobmgr", JOBSTS_BOOTSTRAP_WAIT="1")
    assert done.returncode == 1
    assert f"no public key after 1 s: {site.workdir / 'pubkeys' / 'node8' / 'node.pub.pem'}" in done.stderr
    with site.sts.http() as http:
        response = http.get("/api/v1/nodes/node8", headers={"Authorization": f"Bearer {site.sts.token('admin')}"})
    assert response.status_code == 404


@pytest.mark.parametrize(
    "missing", ["JOBSTS_BOOTSTRAP_URL", "JOBSTS_BOOTSTRAP_NODES", "JOBSTS_BOOTSTRAP_ADMIN_PASSWORD_FILE"]
)
def test_an_incomplete_environment_is_exit_2_naming_the_variable(site: Site, missing: str) -> None:
    environ = site.bootstrap_env()
    del environ[missing]
    done = run_bootstrap(environ)
    assert done.returncode == 2
    assert missing in done.stderr


def test_a_wrong_admin_password_fails_without_registering(site: Site, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong"
    write_private(wrong, "not-the-password\n")
    done = site.bootstrap(JOBSTS_BOOTSTRAP_ADMIN_PASSWORD_FILE=str(wrong), JOBSTS_BOOTSTRAP_NODES="node7:jobmgr")
    assert done.returncode == 1
    assert "login as admin failed" in done.stderr
    with httpx.Client(base_url=site.sts.base_url, timeout=30) as http:
        response = http.get("/api/v1/nodes/node7", headers={"Authorization": f"Bearer {site.sts.token('admin')}"})
    assert response.status_code == 404
