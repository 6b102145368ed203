"""Forged tokens against the STS HTTP API.

Every forgery of ``tests/security/conftest.token_attacks`` is presented as a bearer token to
an endpoint that needs an access token (``GET /api/v1/jobs``) and to one that needs an agent
token (``POST /api/v1/agent/lease``); each must get 401 with the expected stable code, and
the loopback listener named by ``jku``/``x5u`` must never be contacted. The verifier's unit
tests (tests/tokens/test_verify.py) isolate each rule; this module proves the HTTP boundary
uses them all. Motivation: RFC 8725 (JWT BCP) §2-§3, CVE-2015-9235, CVE-2016-10555, CVE-2018-0114.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from werkzeug.test import TestResponse

from realms.tokens.keys import jwk_thumbprint, public_jwk
from tests.jobs.conftest import World
from tests.loopback import Listener
from tests.security.conftest import (
    Attack,
    b64,
    hmac_jws,
    public_key_encodings,
    sign_raw,
    signer_of,
    split,
    token_attacks,
)
from tests.sts.fakes import group_id, user_id

pytestmark = pytest.mark.db


def _refusals(world: World, attacks: list[Attack], call: Any) -> list[str]:
    """Run every attack; return a line per attack that was not refused exactly as expected."""
    wrong = []
    for attack in attacks:
        response = call(attack.token)
        body = response.get_json(silent=True) or {}
        if response.status_code != 401 or body.get("code") not in attack.codes:
            wrong.append(f"{attack.name}: {response.status_code} {body.get('code')} (want {sorted(attack.codes)})")
    return wrong


def test_forged_access_tokens_are_refused_at_the_api(world: World, listener: Listener) -> None:
    valid = world.user_token("john")

    def call(token: str) -> TestResponse:
        return world.client.get("/api/v1/jobs", headers={"Authorization": f"Bearer {token}"})

    assert call(valid).status_code == 200  # the control: the genuine token works
    attacks = token_attacks(valid, signer_of(world, "jobmgr"), signer_of(world, "cellB"), listener.url)
    assert len(attacks) > 120
    assert _refusals(world, attacks, call) == []
    assert listener.connections == []  # no jku/x5u was ever fetched


def test_forged_agent_tokens_are_refused_at_the_api(world: World, listener: Listener) -> None:
    valid = world.agent_token("node1")

    def call(token: str) -> Any:
        return world.client.post("/api/v1/agent/lease", json={"wait": 0}, headers={"Authorization": f"Bearer {token}"})

    assert call(valid).status_code == 204
    attacks = []
    for attack in token_attacks(valid, signer_of(world, "jobmgr"), signer_of(world, "cellB"), listener.url):
        if attack.name == "realm-claim-lies":
            continue  # agent+jwt has no realm claim to lie with
        if attack.name == "other-realm-vouches-for-our-subject":
            # node1 is registered in jobmgr: cellB speaking for node:node1 is someone else's node.
            attack = Attack(attack.name, attack.token, frozenset({"node.unknown"}))
        attacks.append(attack)
    assert _refusals(world, attacks, call) == []
    assert listener.connections == []


def test_a_kid_in_both_realms_never_crosses_realms(world: World) -> None:
    """A cellB key published under jobmgr's kid (a malicious realm admin copying the kid):
    the verifier picks the key by issuer first, so the signature is checked with jobmgr's key."""
    jobmgr, cell_b = signer_of(world, "jobmgr"), signer_of(world, "cellB")
    header, claims = split(world.user_token("john"))
    forged = sign_raw({**header, "kid": jobmgr.kid}, claims, cell_b.private_key, cell_b.alg)
    response = world.client.get("/api/v1/jobs", headers={"Authorization": f"Bearer {forged}"})
    assert response.status_code == 401 and response.get_json()["code"] == "token.signature"


def test_a_realm_cannot_vouch_for_another_realms_groups(world: World) -> None:
    """cellB lists jobmgr's jm-admins group for its own user: the group is dropped, not honoured
    (docs/architecture.md, "The trust model")."""
    cell_b = signer_of(world, "cellB")
    now = int(time.time())
    claims = {
        "iss": world.services.config.issuer("cellB"),
        "sub": str(user_id("cellB", "bob")),
        "aud": world.services.config.audience,
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "jti": str(uuid.uuid4()),
        "realm": "cellB",
        "preferred_username": "bob",
        "groups": [str(group_id("jobmgr", "jm-admins")), str(user_id("jobmgr", "admin"))],
    }
    token = world.services.keys.sign("cellB", claims, "at+jwt")
    del cell_b
    headers = {"Authorization": f"Bearer {token}"}
    assert world.client.get("/api/v1/jobs", headers=headers).status_code == 200  # bob is a real user
    private = ec.generate_private_key(ec.SECP256R1())
    register = world.client.post(
        "/api/v1/nodes",
        headers=headers,
        json={
            "id": "evil",
            "realm": "jobmgr",
            "authgroups": [],
            "public_jwk": public_jwk(private.public_key(), "ES256"),
            "trusted_realms": [],
        },
    )
    assert register.status_code == 403 and register.get_json()["code"] == "authz.denied"


def test_a_finished_jobs_token_is_not_a_bearer_credential(world: World) -> None:
    """A job+jwt (even one a node leaked after the job finished) is refused where an access
    or agent token is expected: typ separates profiles (RFC 8725 §3.11)."""
    job = world.submit()
    lease = world.lease()
    assert lease is not None and lease["job"]["id"] == job["id"]
    job_token = lease["job_token"]
    for path, method in (("/api/v1/jobs", "get"), ("/api/v1/agent/lease", "post")):
        response = getattr(world.client, method)(path, json={}, headers={"Authorization": f"Bearer {job_token}"})
        assert response.status_code == 401 and response.get_json()["code"] == "token.type", path


def _register(world: World) -> Any:
    private = ec.generate_private_key(ec.SECP256R1())
    response = world.client.post(
        "/api/v1/nodes",
        headers=world.as_user("admin"),
        json={
            "id": "anode",
            "realm": "jobmgr",
            "authgroups": [],
            "public_jwk": public_jwk(private.public_key(), "ES256"),
            "trusted_realms": [],
        },
    )
    assert response.status_code == 201, response.get_json()
    return private


def _assertion_request(world: World, assertion: str) -> Any:
    return world.client.post(
        "/realms/jobmgr/token",
        data={
            "grant_type": "client_credentials",
            "client_id": "anode",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion,
        },
    )


def test_forged_client_assertions_are_refused(world: World, listener: Listener) -> None:
    """RFC 7523 private_key_jwt: the assertion's alg, key and URLs are never the token's choice."""
    private = _register(world)
    now = int(time.time())
    aud = f"{world.services.config.base_url}/realms/jobmgr/token"
    claims = {"iss": "anode", "sub": "anode", "aud": aud, "iat": now, "exp": now + 60}
    header = {"alg": "ES256", "typ": "JWT", "kid": jwk_thumbprint(private.public_key())}

    def fresh() -> dict[str, Any]:
        return {**claims, "jti": str(uuid.uuid4())}

    good = jwt.encode(fresh(), private, algorithm="ES256")
    assert _assertion_request(world, good).status_code == 200
    attacker = ec.generate_private_key(ec.SECP256R1())
    forged = {
        "alg-none": f"{b64(json.dumps({'alg': 'none'}).encode())}.{b64(json.dumps(fresh()).encode())}.",
        "replayed-jti": good,
        "attacker-key": jwt.encode(fresh(), attacker, algorithm="ES256"),
        "embedded-jwk": sign_raw(
            {**header, "jwk": public_jwk(attacker.public_key(), "ES256")}, fresh(), attacker, "ES256"
        ),
        "jku": sign_raw({**header, "jku": listener.url}, fresh(), private, "ES256"),
        "x5u": sign_raw({**header, "x5u": listener.url}, fresh(), private, "ES256"),
        "wrong-audience": jwt.encode({**fresh(), "aud": "https://elsewhere/token"}, private, algorithm="ES256"),
        "long-lived": jwt.encode({**fresh(), "exp": now + 86400}, private, algorithm="ES256"),
        "other-subject": jwt.encode({**fresh(), "sub": "node1"}, private, algorithm="ES256"),
    }
    for encoding, secret in public_key_encodings(private.public_key(), "ES256").items():
        forged[f"hmac-{encoding}"] = hmac_jws({**header, "alg": "HS256"}, fresh(), secret, "HS256")
    accepted = {}
    for name, assertion in forged.items():
        response = _assertion_request(world, assertion)
        if response.status_code == 200:
            accepted[name] = response.get_json()
    assert accepted == {}
    assert listener.connections == []


def test_hmac_secrets_cover_every_public_key_encoding(world: World) -> None:
    """Guard on the corpus itself: the five encodings differ, so no case is silently a duplicate."""
    public = signer_of(world, "jobmgr").public_key
    encodings = public_key_encodings(public, "ES256")
    assert len(set(encodings.values())) == 5
    assert encodings["pem"].endswith(b"\n") and not encodings["pem-no-final-newline"].endswith(b"\n")
    assert encodings["openssh"].startswith(b"ecdsa-sha2-nistp256 ")
    assert serialization.load_der_public_key(encodings["der"]) is not None
