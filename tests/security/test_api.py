"""Attacks on the STS HTTP API: mass assignment, IDOR, hostile bodies, SQL
metacharacters in filters, X-Forwarded-For spoofing, secrets in logs, and a schemathesis run
against ``/openapi.json``. OWASP API Security Top 10 (2023): API1 (BOLA), API3 (BOPLA/mass
assignment), API4 (resource consumption), API8 (misconfiguration).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from flask import Flask
from sqlalchemy import func, select

from realms.wire.spec import IDENTITY_FIELDS
from sts import create_app
from sts.jobs.models import Job
from tests.jobs.conftest import World, build_world
from tests.security.conftest import ldap_app
from tests.sts.fakes import user_id

pytestmark = pytest.mark.db
ROOT = Path(__file__).resolve().parents[2]
SUBMISSION = {"node": "node1", "type": "shell", "spec": {"argv": ["/bin/echo", "hi"]}}


def job_count(world: World) -> int:
    with world.services.db.session() as session:
        return session.scalar(select(func.count()).select_from(Job)) or 0


@pytest.mark.parametrize("name", sorted(IDENTITY_FIELDS))
@pytest.mark.parametrize("where", ["body", "spec"])
def test_mass_assignment_of_identity_fields_is_refused(world: World, name: str, where: str) -> None:
    value: Any = (
        str(user_id("jobmgr", "admin"))
        if name not in ("groups", "exp", "iat", "nbf")
        else (["group:jobmgr/cn=jm-admins,ou=groups,dc=jobmgr,dc=example"] if name == "groups" else 4102444800)
    )
    body = json.loads(json.dumps(SUBMISSION))
    (body if where == "body" else body["spec"])[name] = value
    response = world.client.post("/api/v1/jobs", json=body, headers=world.as_user("john"))
    assert response.status_code == 400, response.get_json()
    assert response.get_json()["code"] in ("job.identity_field", "job.invalid_spec")
    assert job_count(world) == 0


def test_the_submitter_is_always_the_token_subject(world: World) -> None:
    job = world.submit("john")
    assert job["submitter"] == str(user_id("jobmgr", "john")) == job["subject"]


def test_jobs_of_others_are_invisible_and_uncancellable(world: World) -> None:
    """BOLA/IDOR: user2 (no role) gets exactly the answer of a job that does not exist."""
    job = world.submit("john")
    missing = str(uuid.uuid4())
    for path in (f"/api/v1/jobs/{job['id']}", f"/api/v1/jobs/{missing}"):
        response = world.client.get(path, headers=world.as_user("user2"))
        assert response.status_code == 404 and response.get_json()["code"] == "job.not_found"
    for job_id in (job["id"], missing):
        response = world.client.post(f"/api/v1/jobs/{job_id}/cancel", headers=world.as_user("user2"))
        assert response.status_code == 404 and response.get_json()["code"] == "job.not_found"
    listed = world.client.get("/api/v1/jobs", headers=world.as_user("user2")).get_json()["jobs"]
    assert listed == []
    # carol is a monitor: she sees it, but seeing is not cancelling.
    assert world.client.get(f"/api/v1/jobs/{job['id']}", headers=world.as_user("carol")).status_code == 200
    cancel = world.client.post(f"/api/v1/jobs/{job['id']}/cancel", headers=world.as_user("carol"))
    assert cancel.status_code in (403, 404)
    state = world.client.get(f"/api/v1/jobs/{job['id']}", headers=world.as_user("john")).get_json()["state"]
    assert state == "queued"


def test_a_node_cannot_act_on_another_nodes_job(world: World) -> None:
    """An agent token of node ``trusting`` cannot lease, start, beat or report node1's job."""
    job = world.submit("john")
    other = world.as_agent("trusting", realm="cellB")
    assert world.client.post("/api/v1/agent/lease", json={"wait": 0}, headers=other).status_code == 204
    lease = world.lease()
    assert lease is not None and lease["job"]["id"] == job["id"]
    result = {"outcome": "succeeded", "exit_code": 0, "stdout_tail": "forged", "stderr_tail": ""}
    for step, body in (("start", {}), ("heartbeat", {}), ("result", result)):
        response = world.client.post(f"/api/v1/agent/jobs/{job['id']}/{step}", json=body, headers=other)
        assert response.status_code in (404, 409), (step, response.get_json())
    shown = world.client.get(f"/api/v1/jobs/{job['id']}", headers=world.as_user("john")).get_json()
    assert shown["state"] == "leased" and shown["result"] is None


def test_oversized_bodies_are_413(world: World) -> None:
    big = {**SUBMISSION, "spec": {"argv": ["/bin/echo", "x" * (200 * 1024)]}}
    response = world.client.post("/api/v1/jobs", json=big, headers=world.as_user("john"))
    assert response.status_code == 413 and response.get_json()["code"] == "request.too_large"
    form = world.client.post(
        "/realms/jobmgr/token", data={"grant_type": "password", "username": "john", "password": "p" * (200 * 1024)}
    )
    assert form.status_code == 413
    assert job_count(world) == 0


@pytest.mark.parametrize("depth", [100, 1000, 20000])
def test_deeply_nested_bodies_are_refused_cleanly(world: World, depth: int) -> None:
    nested = "[" * depth + "]" * depth
    raw = '{"node": "node1", "type": "shell", "spec": {"argv": ["/bin/true"], "env": ' + nested + "}}"
    for path, headers in (
        ("/api/v1/jobs", world.as_user("john")),
        ("/api/v1/agent/lease", world.as_agent()),
        ("/api/v1/nodes", world.as_user("admin")),
    ):
        response = world.client.post(path, data=raw, content_type="application/json", headers=headers)
        assert response.status_code < 500, (path, response.status_code, response.get_data()[:200])
        if path != "/api/v1/agent/lease":  # lease reads only "wait" and ignores other members
            assert response.status_code in (400, 413), (path, response.status_code, response.get_data()[:200])


CONFUSED: list[Any] = [
    [],
    "job",
    42,
    None,
    True,
    [SUBMISSION],
    {**SUBMISSION, "node": 1},
    {**SUBMISSION, "node": ["node1"]},
    {**SUBMISSION, "node": {"id": "node1"}},
    {**SUBMISSION, "type": 7},
    {**SUBMISSION, "type": None},
    {**SUBMISSION, "spec": ["/bin/true"]},
    {**SUBMISSION, "spec": "/bin/true"},
    {**SUBMISSION, "spec": {"argv": "/bin/true"}},
    {**SUBMISSION, "spec": {"argv": [1, 2]}},
    {**SUBMISSION, "spec": {"argv": [["/bin/true"]]}},
    {**SUBMISSION, "spec": {"argv": []}},
    {**SUBMISSION, "spec": {"argv": ["/bin/true"], "env": ["A=1"]}},
    {**SUBMISSION, "spec": {"argv": ["/bin/true"], "env": {"A": 1}}},
    {**SUBMISSION, "spec": {"argv": ["/bin/true"], "env": {"A=B": "1"}}},
    {**SUBMISSION, "spec": {"argv": ["/bin/true"], "timeout": "10"}},
    {**SUBMISSION, "spec": {"argv": ["/bin/true"], "timeout": 1.5}},
    {**SUBMISSION, "spec": {"argv": ["/bin/true"], "timeout": True}},
    {**SUBMISSION, "spec": {"argv": ["/bin/true"], "timeout": 10**30}},
    {**SUBMISSION, "spec": {"argv": ["/bin/true"], "cwd": 5}},
    {**SUBMISSION, "spec": {"argv": ["/bin/true\x00"]}},
    {**SUBMISSION, "not_before": True},
    {**SUBMISSION, "not_before": -1},
    {**SUBMISSION, "deadline": 1e308},
    {**SUBMISSION, "deadline": "tomorrow"},
    {**SUBMISSION, "deadline": [1]},
    {**SUBMISSION, "deadline": 10**40},
    {**SUBMISSION, "credentials": "bob:pw"},
    {**SUBMISSION, "credentials": {"username": 1, "password": []}},
    {**SUBMISSION, "credentials": {"username": "bob"}},
]


@pytest.mark.parametrize("body", CONFUSED, ids=lambda b: json.dumps(b)[:60])
def test_type_confused_json_is_a_400_problem(world: World, body: Any) -> None:
    response = world.client.post(
        "/api/v1/jobs", data=json.dumps(body), content_type="application/json", headers=world.as_user("john")
    )
    assert 400 <= response.status_code < 500, response.get_json()
    assert response.content_type == "application/problem+json" and response.get_json()["code"]
    assert job_count(world) == 0


SQL = [
    "' OR '1'='1",
    "1' OR 1=1 --",
    "'; DROP TABLE jobs; --",
    "%",
    "_",
    "*",
    "\\",
    "node1' --",
    '" OR ""="',
    "1)) OR ((1=1",
    "node1\x00",
    "NULL",
    "0x27",
    "' UNION SELECT token_ciphertext FROM jobs --",
]


@pytest.mark.parametrize("name", ["state", "node", "submitter", "before", "limit"])
def test_sql_metacharacters_in_every_filter(world: World, name: str) -> None:
    mine = world.submit("john")
    world.submit("user1")
    for value in SQL:
        for who in ("user2", "carol"):
            response = world.client.get("/api/v1/jobs", query_string={name: value}, headers=world.as_user(who))
            assert response.status_code in (200, 400), (name, value, response.status_code)
            if response.status_code == 200:
                assert response.get_json()["jobs"] == [], (name, value, who)
    # a non-monitor cannot widen visibility with a filter
    response = world.client.get(
        "/api/v1/jobs", query_string={"submitter": mine["submitter"]}, headers=world.as_user("user2")
    )
    assert response.get_json()["jobs"] == []
    for value in SQL:
        response = world.client.get(f"/api/v1/jobs/{value}", headers=world.as_user("carol"))
        assert response.status_code in (404, 400), (value, response.status_code)
    assert job_count(world) == 2


def _failed_logins(client: Any, count: int, forwarded: Any) -> None:
    for i in range(count):
        response = client.post(
            "/realms/jobmgr/token",
            headers={"X-Forwarded-For": forwarded(i)},
            data={"grant_type": "password", "username": f"ghost{i}", "password": "guess"},
        )
        assert response.status_code == 400


@pytest.mark.parametrize("proxies", [(), ("127.0.0.1/32",)], ids=["no-trusted-proxy", "behind-proxy"])
def test_x_forwarded_for_spoofing_does_not_escape_the_address_throttle(world: World, proxies: tuple[str, ...]) -> None:
    """Rotating X-Forwarded-For must not reset the per-address counter (20 failures here): with no
    trusted proxy the header is ignored; behind one, only the address the proxy appended counts."""
    import ipaddress

    world.services.config = replace(
        world.services.config, trusted_proxies=tuple(ipaddress.ip_network(p) for p in proxies)
    )
    client = world.app.test_client()
    if proxies:
        _failed_logins(client, 21, lambda i: f"10.9.{i}.1, 192.0.2.7")
        spoofed = "10.0.0.99, 192.0.2.7"
    else:
        _failed_logins(client, 21, lambda i: f"10.9.{i}.1")
        spoofed = "10.0.0.99"
    response = client.post(
        "/realms/jobmgr/token",
        headers={"X-Forwarded-For": spoofed},
        data={"grant_type": "password", "username": "john", "password": "john-password"},
    )
    assert response.status_code == 400, "the guessing address was not throttled"
    if proxies:  # another real client behind the same proxy is not punished
        response = client.post(
            "/realms/jobmgr/token",
            headers={"X-Forwarded-For": "198.51.100.3"},
            data={"grant_type": "password", "username": "john", "password": "john-password"},
        )
        assert response.status_code == 200


def _secrets_flow(base: str, http: Any, canaries: dict[str, str]) -> list[str]:
    """Drive logins, a submission with credentials, a lease, bad tokens; return every secret used."""
    bad = http.post(
        f"{base}/realms/jobmgr/token",
        data={"grant_type": "password", "username": "john", "password": canaries["password"]},
    )
    assert bad.status_code == 400
    good = http.post(
        f"{base}/realms/jobmgr/token", data={"grant_type": "password", "username": "john", "password": "john-password"}
    )
    assert good.status_code == 200
    tokens = good.json() if hasattr(good, "json") and callable(good.json) else good.get_json()
    access, refresh = tokens["access_token"], tokens["refresh_token"]
    headers = {"Authorization": f"Bearer {access}"}
    submitted = http.post(
        f"{base}/api/v1/jobs",
        headers=headers,
        json={**SUBMISSION, "node": "cellnode", "credentials": {"username": "bob", "password": canaries["credential"]}},
    )
    assert submitted.status_code in (400, 401, 403), submitted
    forged = access[:-8] + canaries["token"][:8]
    assert http.get(f"{base}/api/v1/jobs", headers={"Authorization": f"Bearer {forged}"}).status_code == 401
    refreshed = http.post(f"{base}/realms/jobmgr/token", data={"grant_type": "refresh_token", "refresh_token": refresh})
    assert refreshed.status_code == 200
    return [access, refresh, canaries["password"], canaries["credential"], "john-password", forged]


def _secret_parts(secrets: list[str]) -> list[str]:
    # A token is also leaked if just its signature or payload is logged.
    parts = []
    for secret in secrets:
        parts.append(secret)
        parts.extend(p for p in secret.split(".") if len(p) > 20)
    return parts


def test_no_secret_reaches_the_logs_in_process(
    world: World, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    canaries = {k: f"CANARY-{k}-{uuid.uuid4().hex}" for k in ("password", "credential", "token")}
    caplog.set_level(logging.DEBUG)
    secrets = _secrets_flow("", world.client, canaries)
    lease = world.lease()
    assert lease is None or lease["job_token"]
    if lease:
        secrets.append(lease["job_token"])
    out, err = capfd.readouterr()
    text = caplog.text + out + err
    leaked = [s[:24] for s in _secret_parts(secrets) if s in text]
    assert leaked == []


@pytest.fixture
def sts_subprocess(tmp_path: Path, database_url: str) -> Iterator[tuple[World, str, subprocess.Popen[str]]]:
    world = build_world(tmp_path, database_url)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONWARNINGS": "ignore"}
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.security.sts_process", str(tmp_path / "sts.toml"), "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=env,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("READY"), process.stderr.read() if process.stderr else line
        yield world, f"http://127.0.0.1:{line.split()[1]}", process
    finally:
        process.kill()
        process.communicate(timeout=30)
        world.services.close()


def test_no_secret_reaches_the_logs_of_a_served_sts(sts_subprocess: tuple[World, str, subprocess.Popen[str]]) -> None:
    """The STS as deployed (own process, every logger at DEBUG): its stderr holds no secret."""
    _world, base, process = sts_subprocess
    canaries = {k: f"CANARY-{k}-{uuid.uuid4().hex}" for k in ("password", "credential", "token")}
    with httpx.Client(timeout=30) as http:
        secrets = _secrets_flow(base, http, canaries)
    process.kill()
    out, err = process.communicate(timeout=30)
    assert "POST /realms/jobmgr/token" in err  # the log really was captured
    leaked = [s[:24] for s in _secret_parts(secrets) if s in out + err]
    assert leaked == []


# --- schemathesis: the API against its own OpenAPI document ------------------------------------

SCHEMATHESIS_EXAMPLES = int(os.environ.get("JOBSTS_SCHEMATHESIS_EXAMPLES", "15"))


@pytest.fixture
def api_app(tmp_path: Path, database_url: str) -> Iterator[tuple[Flask, dict[str, str]]]:
    world = build_world(tmp_path, database_url)
    try:
        yield world.app, world.as_user("admin")
    finally:
        world.services.close()


def test_schemathesis_finds_no_5xx_and_no_schema_violation(api_app: tuple[Flask, dict[str, str]]) -> None:
    """Property-based run of every operation in /openapi.json (in-process WSGI, bounded examples):
    no server error, and every response matches its documented status, content type and schema."""
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, settings
    from schemathesis import checks as st_checks
    from schemathesis.core.result import Err

    app, headers = api_app
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    wanted = [
        st_checks.not_a_server_error,
        st_checks.status_code_conformance,
        st_checks.content_type_conformance,
        st_checks.response_schema_conformance,
    ]
    failures: list[str] = []
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            failures.append(f"the OpenAPI document has an invalid operation: {result.err()}")
            continue
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(
            max_examples=SCHEMATHESIS_EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def run(case: Any) -> None:
            case.call_and_validate(headers=headers, checks=wanted)

        try:
            run()
        except (Exception, BaseExceptionGroup) as exc:  # the (grouped) failures of one operation
            text = " | ".join(line.strip() for line in str(exc).splitlines() if line.strip())
            failures.append(f"{operation.method.upper()} {operation.path}: {text[:400]}")
    unique = sorted(set(failures))
    assert unique == [], "\n".join(unique[:20])


def test_ldap_app_factory_is_usable(tmp_path: Path, database_url: str) -> None:
    """Guard for the helper the LDAP and fault modules share (an LDIF realm set is enough here)."""
    from tests.ldap_harness import ldif_realm_table

    app = ldap_app(tmp_path, database_url, [ldif_realm_table("cellC")])
    try:
        assert set(app.extensions["jobsts"].config.realms) >= {"jobmgr", "cellB", "cellC"}
        assert isinstance(create_app, object)
    finally:
        app.extensions["jobsts"].close()


NUL_REQUESTS = [
    ("get", "/api/v1/nodes/node1%00x", "admin"),
    ("put", "/api/v1/nodes/node1%00x", "admin"),
    ("delete", "/api/v1/nodes/node1%00x", "admin"),
    ("get", "/api/v1/access-ids/jobmgr/john%00", "admin"),
    ("get", "/api/v1/jobs/x%00", "carol"),
    ("post", "/api/v1/jobs/x%00/cancel", "john"),
    ("post", "/api/v1/agent/jobs/x%00/start", None),
    ("post", "/api/v1/agent/jobs/x%00/result", None),
    ("post", "/api/v1/agent/jobs/x%00/heartbeat", None),
    ("get", "/realms/job%00mgr/jwks", "john"),
    ("post", "/realms/jobmgr%00/token", "john"),
]


@pytest.mark.parametrize("method,path,who", NUL_REQUESTS, ids=[f"{m} {p}" for m, p, _ in NUL_REQUESTS])
def test_nul_bytes_in_paths_are_client_errors(world: World, method: str, path: str, who: str | None) -> None:
    """PostgreSQL text cannot hold NUL: a NUL that reaches a query is a 500 there (and only there)."""
    headers = world.as_agent() if who is None else world.as_user(who)
    body = (
        {"outcome": "failed", "exit_code": 1, "stdout_tail": "", "stderr_tail": ""} if path.endswith("result") else {}
    )
    response = getattr(world.client, method)(path, json=body, headers=headers)
    assert 400 <= response.status_code < 500, (response.status_code, response.get_data()[:200])
