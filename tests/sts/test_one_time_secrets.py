"""Join tokens, authorization codes and refresh tokens: one way to make, store and match them
(``sts.one_time_secrets``), and the rows stored before that helper existed still verify."""

from __future__ import annotations

import hashlib
import time

import pytest
from flask.testing import FlaskClient
from hypothesis import given
from hypothesis import strategies as st

from sts.nodes.models import JoinToken
from sts.oauth import authorization_codes, refresh_tokens
from sts.oauth.models import AuthorizationCode, RefreshToken
from sts.one_time_secrets import matches, new_secret, secret_hash
from sts.services import Services
from tests.sts.conftest import node_keypair


def _sha256_hex(secret: str) -> str:
    """How each of the three hashed its secret before the helper: the form of every stored row."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


@given(secret=st.text(max_size=200))
def test_the_stored_form_is_the_one_existing_rows_hold(secret: str) -> None:
    """A change of scheme would leave stored rows unreadable: it must come with a migration."""
    assert secret_hash(secret) == _sha256_hex(secret)


def test_matches_only_the_exact_secret() -> None:
    secret = new_secret("jstjoin_")
    stored = secret_hash(secret)
    assert secret.startswith("jstjoin_") and len(secret) >= len("jstjoin_") + 43  # 256 bits, base64url
    assert matches(secret, stored)
    assert not matches(secret + "x", stored)
    assert not matches(secret[:-1], stored)
    assert not matches(secret, stored.upper())  # a case-insensitive collation's match is not ours
    assert not matches(secret, "")


@pytest.mark.db
def test_rows_hashed_before_the_helper_still_verify(client: FlaskClient, services: Services) -> None:
    now = int(time.time())
    join, code, refresh = (new_secret("jstjoin_"), new_secret(), new_secret())
    with services.db.session() as session:
        session.add(
            JoinToken(
                token_hash=_sha256_hex(join),
                node_id="edge9",
                realm="jobmgr",
                authgroups=[],
                created_at=now,
                created_by="test",
                expires_at=now + 600,
            )
        )
        session.add(
            AuthorizationCode(
                code_hash=_sha256_hex(code),
                realm="jobmgr",
                client_id="c",
                redirect_uri="https://c.test/cb",
                code_challenge="x" * 43,
                nonce=None,
                scope="openid",
                subject="s",
                username="john",
                groups=[],
                auth_time=now,
                expires_at=now + 60,
            )
        )
        session.add(
            RefreshToken(
                token_hash=_sha256_hex(refresh),
                family_id="f" * 36,
                realm="jobmgr",
                username="john",
                issued_at=now,
                expires_at=now + 600,
            )
        )
    with services.db.session() as session:
        assert authorization_codes.find(session, "jobmgr", code) is not None
        assert refresh_tokens.find(session, "jobmgr", refresh) is not None
        assert authorization_codes.find(session, "jobmgr", refresh) is None
    enrolled = client.post(
        "/api/v1/nodes/enroll", json={"node": "edge9", "join_token": join, "public_jwk": node_keypair()[1]}
    )
    assert enrolled.status_code == 201, enrolled.get_json()
