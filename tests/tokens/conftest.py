"""Fixtures for the shared verifier: two realms with their own keys, and a token minter."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from realms.tokens import IssuerTrust, VerificationKey, jwk_thumbprint

ISS_A = "https://sts.test/realms/jobmgr"
ISS_B = "https://sts.test/realms/cellB"


@dataclass
class Realm:
    name: str
    issuer: str
    algorithm: str
    private_key: Any
    extra_keys: dict[str, VerificationKey] = field(default_factory=dict)

    @property
    def key(self) -> VerificationKey:
        public = self.private_key.public_key()
        return VerificationKey(jwk_thumbprint(public), self.algorithm, public)

    def trust(self) -> IssuerTrust:
        keys = {self.key.kid: self.key, **self.extra_keys}
        return IssuerTrust(self.name, self.issuer, frozenset({self.algorithm}), keys)


def new_private_key(algorithm: str) -> Any:
    if algorithm == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if algorithm == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


class StaticResolver:
    """A TrustResolver over fixed realms; counts refetches."""

    def __init__(self, *realms: Realm) -> None:
        self.realms = {r.issuer: r for r in realms}
        self.refetches = 0
        self.refreshed: dict[str, IssuerTrust] = {}

    def issuer_trust(self, issuer: str) -> IssuerTrust | None:
        realm = self.realms.get(issuer)
        return realm.trust() if realm else None

    def refreshed_trust(self, issuer: str) -> IssuerTrust | None:
        self.refetches += 1
        return self.refreshed.get(issuer)


@pytest.fixture
def realm_a() -> Realm:
    return Realm("jobmgr", ISS_A, "ES256", new_private_key("ES256"))


@pytest.fixture
def realm_b() -> Realm:
    return Realm("cellB", ISS_B, "ES256", new_private_key("ES256"))


@pytest.fixture
def resolver(realm_a: Realm, realm_b: Realm) -> StaticResolver:
    return StaticResolver(realm_a, realm_b)


Mint = Callable[..., str]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@pytest.fixture
def job_claims(realm_a: Realm) -> dict[str, Any]:
    now = int(time.time())
    return {
        "iss": realm_a.issuer,
        "sub": "user:jobmgr/uid=john,ou=people,dc=jobmgr,dc=example",
        "aud": "node1",
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "jti": str(uuid.uuid4()),
        "realm": "jobmgr",
        "groups": ["group:jobmgr/cn=operators,ou=groups,dc=jobmgr,dc=example"],
        "job_id": str(uuid.uuid4()),
        "job_digest": "0" * 64,
    }


@pytest.fixture
def mint(realm_a: Realm) -> Mint:
    def _mint(claims: dict[str, Any], *, realm: Realm | None = None, typ: str = "job+jwt", **headers: Any) -> str:
        # Built by hand (not jwt.encode) so tests can put headers PyJWT itself would refuse to write.
        signer = realm or realm_a
        header = {"alg": signer.algorithm, "kid": signer.key.kid, "typ": typ, **headers}
        signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
        signature = jwt.get_algorithm_by_name(signer.algorithm).sign(signing_input.encode(), signer.private_key)
        return f"{signing_input}.{_b64(signature)}"

    return _mint
