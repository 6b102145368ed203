"""Metrics, health and the audit log, in process (the multi-process cases are in test_serve.py)."""

from __future__ import annotations

import json
import logging
import threading
import uuid
from typing import Any

import pytest
from flask import Flask
from prometheus_client import REGISTRY

from realms.identity.principal import Principal
from sts.observability import views as health
from sts.services import Services
from tests.production.servers import FlaskActor
from tests.sts.fakes import SpyRegistry

pytestmark = [pytest.mark.db, pytest.mark.slapd]
AUDIT_FIELDS = {"time", "event", "actor", "realm", "node", "job", "outcome", "code", "client"}


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_metrics_count_a_full_cycle(ldap_app: Flask) -> None:
    names = [
        ("jobsts_logins_total", {"realm": "jobmgr", "outcome": "ok"}),
        ("jobsts_logins_total", {"realm": "jobmgr", "outcome": "failed"}),
        ("jobsts_tokens_issued_total", {"profile": "at+jwt"}),
        ("jobsts_tokens_issued_total", {"profile": "agent+jwt"}),
        ("jobsts_tokens_issued_total", {"profile": "job+jwt"}),
        ("jobsts_job_submissions_total", {"outcome": "created"}),
        ("jobsts_job_leases_total", {"outcome": "leased"}),
        ("jobsts_job_transitions_total", {"state": "running", "code": ""}),
        ("jobsts_job_transitions_total", {"state": "succeeded", "code": ""}),
        ("jobsts_job_transitions_total", {"state": "refused", "code": "authz.denied"}),
        ("jobsts_agent_refusals_total", {"code": "authz.denied"}),
        ("jobsts_directory_seconds_count", {"realm": "jobmgr", "operation": "authenticate"}),
    ]
    before = {(n, tuple(sorted(labels.items()))): _sample(n, **labels) for n, labels in names}
    FlaskActor(ldap_app.test_client()).full_cycle("not-the-password")
    delta = {key: _sample(key[0], **dict(key[1])) - value for key, value in before.items()}
    expected = [2, 1, 2, 1, 2, 2, 2, 1, 1, 1, 1, 4]  # 4 directory binds: 3 logins + the credentials
    assert list(delta.values()) == expected, delta
    response = ldap_app.test_client().get("/metrics")
    assert response.status_code == 200 and response.mimetype == "text/plain"
    text = response.get_data(as_text=True)
    assert 'jobsts_logins_total{outcome="ok",realm="jobmgr"}' in text
    assert "jobsts_directory_seconds_bucket" in text


def test_an_agent_chosen_code_cannot_grow_the_series() -> None:
    from sts.observability.metrics import code_label

    assert code_label("authz.denied") == "authz.denied"
    assert code_label(f"x{uuid.uuid4().hex}") == "other"
    assert code_label("Authz.Denied; drop table") == "other"
    assert code_label(None) == ""


def test_readyz_checks_every_directory(ldap_app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    client = ldap_app.test_client()
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.get_json()
    assert ready.get_json()["checks"]["directory:cellB"] == "ok"
    assert client.get("/healthz").status_code == 200

    services: Services = ldap_app.extensions["jobsts"]
    spy = SpyRegistry(services.registries["cellB"])
    spy.down = True
    monkeypatch.setitem(services.registries, "cellB", spy)
    down = client.get("/readyz")
    assert down.status_code == 503
    assert down.get_json()["checks"]["directory:cellB"] == "unavailable"
    assert down.get_json()["checks"]["directory:jobmgr"] == "ok"

    release = threading.Event()

    class Hanging(SpyRegistry):
        def lookup(self, username: str) -> Principal | None:
            release.wait(10)
            return None

    monkeypatch.setitem(services.registries, "cellB", Hanging(spy.inner))
    monkeypatch.setattr(health, "DIRECTORY_TIMEOUT", 0.2)
    try:
        slow = client.get("/readyz")
    finally:
        release.set()
    assert slow.status_code == 503 and slow.get_json()["checks"]["directory:cellB"] == "timeout"
    # Still alive: the process answers even while a directory hangs.
    assert client.get("/healthz").status_code == 200


def _audit_entries(records: list[logging.LogRecord]) -> list[dict[str, Any]]:
    entries = []
    for record in records:
        if record.name == "jobsts.audit":
            entry = json.loads(record.getMessage())
            assert AUDIT_FIELDS <= entry.keys(), entry
            entries.append(entry)
    return entries


def test_audit_log_is_complete_and_never_holds_a_secret(ldap_app: Flask, caplog: pytest.LogCaptureFixture) -> None:
    canary = f"canary-{uuid.uuid4().hex}"
    caplog.set_level(logging.DEBUG)  # every logger, every level
    services: Services = ldap_app.extensions["jobsts"]
    from authz_tables.roles import Role
    from realms.identity.access_id import AccessId

    services.authz.grant(
        AccessId.parse("user:jobmgr/uid=john,ou=people,dc=jobmgr,dc=example"),
        Role.OPERATOR,
        changed_by="user:jobmgr/uid=admin,ou=people,dc=jobmgr,dc=example",
    )
    actor = FlaskActor(ldap_app.test_client())
    secrets = actor.full_cycle(canary)
    assert actor.post("/realms/jobmgr/revoke", data={"token": secrets[0]}).status == 200

    entries = _audit_entries(caplog.records)
    events = [(e["event"], e["outcome"]) for e in entries]
    for wanted in [
        ("login", "failed"),
        ("login", "ok"),
        ("token.issued", "ok"),
        ("node.registered", "ok"),
        ("authz.changed", "added"),
        ("job.submitted", "created"),
        ("job.submitted", "refused"),
        ("job.leased", "ok"),
        ("job.started", "ok"),
        ("job.result", "succeeded"),
        ("job.result", "refused"),
    ]:
        assert wanted in events, (wanted, events)
    profiles = {e["profile"] for e in entries if e["event"] == "token.issued"}
    assert profiles == {"at+jwt", "agent+jwt", "job+jwt"}
    revoked = next(e for e in entries if e["event"] == "token.revoked")
    assert revoked["jti"] and revoked["actor"].startswith("user:jobmgr/uid=admin")
    refusal = next(e for e in entries if e["event"] == "job.result" and e["outcome"] == "refused")
    assert refusal["code"] == "authz.denied" and refusal["node"] == "n1" and refusal["job"]
    submitted = next(e for e in entries if e["event"] == "job.submitted" and e["outcome"] == "created")
    assert submitted["actor"].startswith("user:jobmgr/uid=admin") and submitted["client"] == "127.0.0.1"
    assert submitted["jti"]  # the job token is named by its jti only

    everything = caplog.text + "\n".join(f"{r.getMessage()} {r.args!r} {r.__dict__!r}" for r in caplog.records)
    assert canary not in everything
    assert len(secrets) >= 6
    for secret in secrets:
        assert secret not in everything
        assert secret.rsplit(".", 1)[-1] not in everything  # not even the signature part
