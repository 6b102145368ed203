"""Signing keys: per realm, encrypted at rest, RFC 7638 kids, rotation and publication."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from flask.testing import FlaskClient
from sqlalchemy import event, select

from realms.tokens import ACCESS_TOKEN, jwk_thumbprint, verify
from realms.tokens.errors import TokenUnknownKey
from realms.tokens.keys import PRIVATE_MEMBERS
from sts import create_app
from sts.keys import KeyStore
from sts.keys.master_key import MasterKeyMismatch
from sts.keys.models import SigningKey
from sts.services import Services, build_services
from tests.clocks import ManualClock
from tests.sts.conftest import make_config

pytestmark = pytest.mark.db


def _claims(services: Services, realm: str = "jobmgr", ttl: int = 300, now: float | None = None) -> dict[str, Any]:
    issued = int(now if now is not None else time.time())
    return {
        "iss": services.config.issuer(realm),
        "sub": "user:jobmgr/uid=john",
        "aud": services.config.audience,
        "iat": issued,
        "nbf": issued,
        "exp": issued + ttl,
        "jti": f"j{time.monotonic_ns()}",
        "realm": realm,
        "groups": [],
    }


@pytest.mark.parametrize("algorithm", ["ES256", "EdDSA", "RS256", "PS256"])
def test_each_algorithm_signs_and_verifies(tmp_path: Path, database_url: str, algorithm: str) -> None:
    services = build_services(make_config(tmp_path, database_url, algorithms={"jobmgr": algorithm}))
    try:
        token = services.keys.sign("jobmgr", _claims(services), "at+jwt")
        verified = verify(token, ACCESS_TOKEN, services.keys.trust_resolver(), audience=services.config.audience)
        assert verified.header == {"alg": algorithm, "kid": verified.kid, "typ": "at+jwt"}
        public = services.keys.realm_keys("jobmgr").active.verification.public_key  # type: ignore[union-attr]
        assert jwt.decode(token, public, algorithms=[algorithm], audience=services.config.audience)["realm"] == "jobmgr"
        jwk = services.keys.jwks("jobmgr")["keys"][0]
        assert jwk["alg"] == algorithm and jwk["use"] == "sig"
        assert jwk["kid"] == jwk_thumbprint(services.keys.realm_keys("jobmgr").active.verification.public_key)  # type: ignore[union-attr]
    finally:
        services.close()


def test_realms_have_their_own_keys_and_jwks_are_public_only(services: Services, client: FlaskClient) -> None:
    a, b = services.keys.jwks("jobmgr")["keys"], services.keys.jwks("cellB")["keys"]
    assert {k["kid"] for k in a}.isdisjoint({k["kid"] for k in b})
    response = client.get("/realms/jobmgr/jwks")
    assert response.status_code == 200 and "max-age" in response.headers["Cache-Control"]
    for key in response.get_json()["keys"]:
        assert not PRIVATE_MEMBERS & key.keys()


def test_private_keys_are_encrypted_at_rest(services: Services) -> None:
    with services.db.session() as session:
        rows = list(session.scalars(select(SigningKey)))
    assert rows
    for row in rows:
        assert row.private_key is not None
        assert b"PRIVATE" not in row.private_key and row.private_key[0] == 1


def test_a_wrong_master_key_refuses_to_start(tmp_path: Path, database_url: str) -> None:
    services = build_services(make_config(tmp_path, database_url))
    services.close()
    other = tmp_path / "other"
    other.mkdir()
    with pytest.raises(MasterKeyMismatch):
        create_app(make_config(other, database_url))


def test_rotation_keeps_the_retiring_key_published_until_its_tokens_expire(tmp_path: Path, database_url: str) -> None:
    services = build_services(make_config(tmp_path, database_url))
    clock = ManualClock(time.time())
    store = KeyStore(services.db, services.master_key, services.config, clock=clock, check_interval=0)
    try:
        old_token = store.sign("jobmgr", _claims(services, ttl=7 * 86400, now=clock.now), "at+jwt")
        old_kid = store.realm_keys("jobmgr").active.kid  # type: ignore[union-attr]
        new_kid = store.rotate("jobmgr", immediate=True)
        assert new_kid != old_kid
        assert {k.kid for k in store.published("jobmgr")} == {old_kid, new_kid}
        new_token = store.sign("jobmgr", _claims(services, now=clock.now), "at+jwt")
        assert new_token.count(".") == 2
        clock.now += 6 * 86400  # a job token of the longest lifetime is still valid: the old key stays
        assert store.retire_expired("jobmgr") == []
        assert old_kid in {k.kid for k in store.published("jobmgr")}
        clock.now += 86400 + 2 * 3600  # past the longest lifetime + grace + leeway
        assert store.retire_expired("jobmgr") == [old_kid]
        assert {k.kid for k in store.published("jobmgr")} == {new_kid}
        with pytest.raises(TokenUnknownKey):
            verify(
                old_token,
                ACCESS_TOKEN,
                store.trust_resolver(),
                audience=services.config.audience,
                now=clock.now - 86400,
            )
        states = {k["kid"]: k["state"] for k in store.describe("jobmgr")}
        assert states == {old_kid: "retired", new_kid: "active"}
        with services.db.session() as session:
            assert session.get(SigningKey, old_kid).private_key is None  # type: ignore[union-attr]
    finally:
        services.close()


def test_another_process_sees_a_rotation(tmp_path: Path, database_url: str) -> None:
    one = build_services(make_config(tmp_path, database_url))
    two = build_services(make_config(tmp_path, database_url))
    try:
        clock = ManualClock(time.time())
        one.keys.clock = two.keys.clock = clock
        one.keys.check_interval = two.keys.check_interval = 0
        before = two.keys.realm_keys("jobmgr").active.kid  # type: ignore[union-attr]
        new_kid = one.keys.rotate("jobmgr", immediate=True)
        clock.now += 2  # --now: the new key signs within the second (strictly after the old one)
        token = one.keys.sign("jobmgr", _claims(one, now=clock.now), "at+jwt")
        assert two.keys.realm_keys("jobmgr").active.kid == new_kid != before  # type: ignore[union-attr]
        verify(token, ACCESS_TOKEN, two.keys.trust_resolver(), audience=two.config.audience, now=clock.now)
    finally:
        one.close()
        two.close()


def test_changing_the_algorithm_rotates_on_start(tmp_path: Path, database_url: str) -> None:
    one = build_services(make_config(tmp_path, database_url))
    one.close()
    two = build_services(make_config(tmp_path, database_url, algorithms={"jobmgr": "EdDSA"}))
    try:
        assert two.keys.realm_keys("jobmgr").active.algorithm == "EdDSA"  # type: ignore[union-attr]
        assert two.keys.realm_keys("cellB").active.algorithm == "ES256"  # type: ignore[union-attr]
    finally:
        two.close()


def test_signing_writes_nothing_to_the_database(services: Services) -> None:
    far = int(time.time()) + 30 * 86400
    written: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if not statement.lstrip().upper().startswith("SELECT"):
            written.append(statement)

    services.keys.realm_keys("jobmgr")
    event.listen(services.db.engine, "before_cursor_execute", record)
    try:
        services.keys.sign("jobmgr", {**_claims(services), "exp": far}, "job+jwt")
        services.keys.sign("jobmgr", {**_claims(services), "exp": far + 1}, "job+jwt")
    finally:
        event.remove(services.db.engine, "before_cursor_execute", record)
    assert not [w for w in written if "sts_signing_keys" in w or "sts_key_rings" in w]
