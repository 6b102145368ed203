"""Agent test kit: realm keys, locally minted job tokens, a static trust bundle, a node policy.

Tokens are minted here with PyJWT and a generated key per realm, so no STS is needed.
Realms: ``cellB`` is the node's own realm, ``jobmgr`` is trusted, ``cellC`` is not.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from agent_client.config import MappingConfig, MappingRule
from agent_client.decision import NodeDecider, NodePolicy
from agent_client.journal import StartedJournal
from agent_client.trust_store import TrustStore
from authz_tables.decision import Snapshot
from authz_tables.entries import parse_entry
from authz_tables.roles import Role
from realms.tokens.keys import jwk_thumbprint, public_jwk
from realms.wire.digest import job_digest
from tests.agent_client.fake_sts import FakeState, serve

STS = "https://sts.test"
NODE = "node1"
OWN, TRUSTED, UNTRUSTED = "cellB", "jobmgr", "cellC"
JOHN_JM = "user:jobmgr/uid=john,ou=people,dc=jobmgr,dc=example"
OPS_JM = "group:jobmgr/cn=operators,ou=groups,dc=jobmgr,dc=example"
BOB_B = "user:cellB/uid=bob,ou=people,dc=cellb,dc=example"
OPS_B = "group:cellB/cn=cell-ops,ou=groups,dc=cellb,dc=example"


def issuer(realm: str) -> str:
    return f"{STS}/realms/{realm}"


@dataclass
class RealmKey:
    realm: str
    key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))

    @property
    def kid(self) -> str:
        return jwk_thumbprint(self.key.public_key())

    def jwk(self) -> dict[str, str]:
        return public_jwk(self.key.public_key(), "ES256")


KEYS = {realm: RealmKey(realm) for realm in (OWN, TRUSTED, UNTRUSTED)}


def make_job(spec: dict[str, Any] | None = None, *, job_type: str = "run", realm: str = TRUSTED) -> dict[str, Any]:
    base: dict[str, Any] = {"argv": ["/bin/true"], "env": {}, "cwd": None, "timeout": 30, "authgroup": None}
    now = int(time.time())
    return {
        "id": str(uuid.uuid4()),
        "node": NODE,
        "type": job_type,
        "spec": {**base, **(spec or {})},
        "submitter": JOHN_JM,
        "realm": realm,
        "not_before": now,
        "deadline": now + 3600,
        "attempt": 1,
    }


def mint(
    job: dict[str, Any],
    *,
    realm: str | None = None,
    sub: str | None = None,
    groups: list[str] | None = None,
    signer: RealmKey | None = None,
    typ: str = "job+jwt",
    **overrides: Any,
) -> str:
    """A job token for ``job`` as the STS would mint it; ``overrides`` replace claims (None deletes)."""
    realm = realm or job["realm"]
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": issuer(realm),
        "sub": sub or (JOHN_JM if realm == TRUSTED else BOB_B if realm == OWN else f"user:{realm}/uid=eve,dc=c"),
        "aud": job["node"],
        "iat": now,
        "nbf": now,
        "exp": now + 3600,
        "jti": uuid.uuid4().hex,
        "realm": realm,
        "groups": groups if groups is not None else ([OPS_JM] if realm == TRUSTED else []),
        "job_id": job["id"],
        "job_digest": job_digest(job["id"], job["node"], job["type"], job["spec"]),
    }
    for name, value in overrides.items():
        if value is None:
            claims.pop(name, None)
        else:
            claims[name] = value
    key = signer or KEYS[realm]
    return jwt.encode(claims, key.key, algorithm="ES256", headers={"kid": key.kid, "typ": typ})


def write_bundles(directory: Path, realms: tuple[str, ...] = (OWN, TRUSTED)) -> dict[str, Path]:
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    paths = {}
    for realm in realms:
        path = directory / f"{realm}.jwks.json"
        path.write_text(json.dumps({"keys": [KEYS[realm].jwk()]}))
        path.chmod(0o600)
        paths[realm] = path
    return paths


def table(*rows: tuple[str, ...]) -> Snapshot:
    """A table from (principal, role[, effect[, scope]]) rows."""
    return Snapshot(parse_entry(*row) for row in rows)


DEFAULT_TABLE = (
    (OPS_JM, "operator"),
    (BOB_B, "operator"),
)


def policy(**changes: Any) -> NodePolicy:
    base = NodePolicy(
        node_id=NODE,
        realm=OWN,
        trusted_realms=frozenset({TRUSTED}),
        authgroups=frozenset({"payroll"}),
        job_types={"run": Role.OPERATOR, "inventory": Role.MONITOR, "configure": Role.CONFIGURATOR},
        mapping=MappingConfig(rules=(MappingRule("realm", TRUSTED, "daemon"), MappingRule("realm", OWN, "daemon"))),
        leeway=30,
    )
    return replace(base, **changes)


@pytest.fixture
def bundles(tmp_path: Path) -> dict[str, Path]:
    return write_bundles(tmp_path / "trust")


@pytest.fixture
def trust(bundles: dict[str, Path]) -> TrustStore:
    return TrustStore(realms=frozenset({OWN, TRUSTED}), issuer_of=issuer, cache_dir=None, fetch=None, bundles=bundles)


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[StartedJournal]:
    with StartedJournal(tmp_path / "state" / "started.sqlite") as record:
        yield record


@pytest.fixture
def decider(trust: TrustStore, journal: StartedJournal) -> NodeDecider:
    return NodeDecider(policy(), trust, table(*DEFAULT_TABLE), journal=journal)


def write_node_key(directory: Path, key: ec.EllipticCurvePrivateKey) -> Path:
    """``directory/node.key``: the node's private key, PEM, mode 0600 (as the agent demands)."""
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    path = directory / "node.key"
    path.write_bytes(pem)
    path.chmod(0o600)
    return path


@pytest.fixture
def node_key() -> ec.EllipticCurvePrivateKey:
    """The node's key pair, new for each test."""
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def fake(node_key: ec.EllipticCurvePrivateKey) -> Iterator[FakeState]:
    """A fake STS on loopback that knows ``NODE`` by ``node_key`` (tests/agent_client/fake_sts.py)."""
    state = FakeState(NODE, node_key.public_key(), {realm: key.jwk() for realm, key in KEYS.items()})
    with serve(state):
        yield state
