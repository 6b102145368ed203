"""Package fixtures for the end-to-end tests: ONE STS under gunicorn on the harness slapd
(realms ``jobmgr``, ``cellB``, ``cellC`` on the ``ldap`` backend), shared by every module, the
OS accounts jobs run as, and the access IDs exported with ``jobsts access-id``.

With JOBSTS_TEST_DATABASE_URL set, the STS runs on a fresh PostgreSQL schema instead of
SQLite; the modules marked ``db`` (mixed topology, revocation) then run in the PostgreSQL pass.
Each module builds its own nodes (``make_node``), so modules never share a node or a table.
The job manager's own table: the ``operators`` group (john, user1, user2) is operator there,
eve (cellC) too; admin is the bootstrap administrator; carol (monitors) is a monitor.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.conftest import PG_URL_ENV
from tests.e2e.harness import Accounts, AgentNode, StsServer, jobsts, write_csv
from tests.ldap_harness import SlapdServer
from tests.pg_schema import postgres_schema

ADMIN = "user:jobmgr/uid=admin,ou=people,dc=jobmgr,dc=example"
OPERATORS = "group:jobmgr/cn=operators,ou=groups,dc=jobmgr,dc=example"
MONITORS = "group:jobmgr/cn=monitors,ou=groups,dc=jobmgr,dc=example"
EVE = "user:cellC/uid=eve,ou=people,dc=cellc,dc=example"
# The job types every test node knows, and the role each one requires (the seed's task table).
JOB_TYPES = {"run": "operator", "configure": "configurator", "inventory": "monitor", "install": "administrator"}
ACCOUNT_KEYS = ("john", "user1", "user2", "admin", "bjohn", "eve")


@pytest.fixture(scope="package")
def accounts() -> Iterator[Accounts]:
    """The local accounts: ``accounts["john"]`` is the account John's jobs are mapped to."""
    made = Accounts.make(ACCOUNT_KEYS)
    try:
        yield made
    finally:
        made.remove()


@pytest.fixture(scope="package")
def sts_database() -> Iterator[str | None]:
    """None (an SQLite file), or a fresh PostgreSQL schema when JOBSTS_TEST_DATABASE_URL is set."""
    base = os.environ.get(PG_URL_ENV)
    if not base:
        yield None
        return
    with postgres_schema(base) as url:
        yield url


@pytest.fixture(scope="package")
def sts(slapd: SlapdServer, sts_database: str | None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StsServer]:
    server = StsServer(
        tmp_path_factory.mktemp("sts"),
        [slapd.realm_table(realm) for realm in ("jobmgr", "cellB", "cellC")],
        bootstrap_admins=[ADMIN],
        database=sts_database,
    ).prepare()
    # The job manager's table lives in the STS database; an admin fills it with the CLI.
    rows = [(OPERATORS, "operator", "allow", "*"), (MONITORS, "monitor", "allow", "*"), (EVE, "operator", "allow", "*")]
    csv = write_csv(server.workdir / "jobmgr-table.csv", rows)
    jobsts("authz", "--table", server.database_url, "import", str(csv))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="package")
def exported(sts: StsServer) -> dict[str, dict[str, Any]]:
    """``jobsts access-id REALM USER --json`` for each submitter (what an admin exports)."""
    found: dict[str, dict[str, Any]] = {}
    for key, realm, username in (
        ("john", "jobmgr", "john"),
        ("user1", "jobmgr", "user1"),
        ("user2", "jobmgr", "user2"),
        ("admin", "jobmgr", "admin"),
        ("bjohn", "cellB", "john"),
        ("eve", "cellC", "eve"),
    ):
        done = jobsts("access-id", "--config", str(sts.config_path), realm, username, "--json")
        found[key] = json.loads(done.stdout)
    return found


@pytest.fixture(scope="package")
def admin_token(sts: StsServer) -> Callable[[], str]:
    """A fresh administrator access token (access tokens live 5 minutes)."""
    return lambda: sts.token("admin")


NodeFactory = Callable[..., AgentNode]


@pytest.fixture(scope="module")
def make_node(sts: StsServer, admin_token: Callable[[], str], tmp_path_factory: pytest.TempPathFactory) -> NodeFactory:
    """Build a registered node: ``make_node(node_id, realm, rows=[(access_id, role, effect, scope)],
    rules=[...], sts_trusts=[...], agent_trusts=[...], authgroups=[...])``."""

    def build(
        node_id: str,
        realm: str = "jobmgr",
        *,
        rows: Sequence[tuple[str, str, str, str]] = (),
        rules: Sequence[dict[str, Any]] = (),
        sts_trusts: Sequence[str] = (),
        agent_trusts: Sequence[str] | None = None,
        authgroups: Sequence[str] = (),
    ) -> AgentNode:
        directory = tmp_path_factory.mktemp(node_id) / "agent"
        node = AgentNode(
            node_id,
            realm,
            directory,
            sts,
            trusted=list(sts_trusts if agent_trusts is None else agent_trusts),
            authgroups=list(authgroups),
            job_types=dict(JOB_TYPES),
            rules=list(rules),
        ).init()
        sts.register_node(
            admin_token(), node_id, realm, directory / "node.pub.pem", trusted=sts_trusts, authgroups=authgroups
        )
        node.import_table(rows)  # also creates the (possibly empty) table the agent insists on
        return node

    return build


def build_nodes(make_node: NodeFactory, specs: dict[str, dict[str, Any]]) -> dict[str, AgentNode]:
    """``make_node(**spec)`` for each named spec, in parallel (each one runs a few subprocesses)."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {name: pool.submit(make_node, **spec) for name, spec in specs.items()}
        return {name: future.result() for name, future in futures.items()}


def allow(access_id: str, role: str, scope: str = "*") -> tuple[str, str, str, str]:
    return (access_id, role, "allow", scope)


def deny(access_id: str, role: str, scope: str = "*") -> tuple[str, str, str, str]:
    return (access_id, role, "deny", scope)


def rule(access_id: str, account: str) -> dict[str, Any]:
    """A mapping rule by exact user access ID (or by group, for ``group:`` IDs)."""
    kind = "group" if access_id.startswith("group:") else "access_id"
    return {kind: access_id, "account": account}


__all__ = ["JOB_TYPES", "NodeFactory", "allow", "build_nodes", "deny", "rule"]
