"""Publicly known example keys and ROCA-weak RSA keys are never trusted (realms/tokens/weak_keys.py):
at node registration (``key.weak``), in agent trust bundles and fetched key sets (skipped, and
``jobsts agent check`` lists them), and as realm signing keys. Each test fails without the check."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from flask.testing import FlaskClient

from agent_client.errors import AgentConfigInvalid
from agent_client.trust_store import TrustStore
from realms.errors import ConfigError
from realms.tokens.keys import public_jwk
from realms.tokens.known_keys import KNOWN_KEYS
from sts.keys.material import load_private_key, private_key_bytes
from tests.sts.conftest import bearer
from tests.tokens.test_roca import wycheproof_roca_key

pytestmark = pytest.mark.db
ISSUER = "https://sts.test/realms/jobmgr"


def rfc7515_es256() -> dict[str, str]:
    (found,) = [k for k in KNOWN_KEYS if "7515 Appendix A.3" in k.citation]
    return {**found.jwk, "alg": "ES256", "kid": "example", "use": "sig"}


def roca_rs256() -> dict[str, str]:
    return {**public_jwk(wycheproof_roca_key(), "RS256"), "kid": "roca"}


@pytest.mark.parametrize("weak", [rfc7515_es256, roca_rs256], ids=["rfc7515-A3", "roca"])
def test_node_registration_refuses_weak_keys(client: FlaskClient, admin_token: str, weak: Any) -> None:
    jwk = {k: v for k, v in weak().items() if k != "kid"}
    response = client.post(
        "/api/v1/nodes",
        headers=bearer(admin_token),
        json={"id": "weaknode", "realm": "jobmgr", "authgroups": ["web"], "public_jwk": jwk, "trusted_realms": []},
    )
    assert response.status_code == 400
    assert response.get_json()["code"] == "key.weak"


def test_trust_bundles_skip_weak_keys_and_agent_check_lists_them(tmp_path: Path) -> None:
    good = {**public_jwk(ec.generate_private_key(ec.SECP256R1()).public_key(), "ES256")}
    bundle = tmp_path / "jobmgr.jwks.json"
    bundle.write_text(json.dumps({"keys": [good, rfc7515_es256(), roca_rs256()]}))
    store = TrustStore(
        realms=frozenset({"jobmgr"}),
        issuer_of=lambda realm: ISSUER,
        cache_dir=None,
        fetch=None,
        bundles={"jobmgr": bundle},
    )
    trust = store.issuer_trust(ISSUER)
    assert trust is not None and set(trust.keys) == {good["kid"]}
    problems = store.problems()
    assert any("example" in line and "publicly known" in line for line in problems), problems
    assert any("roca" in line and "ROCA" in line for line in problems), problems
    only_weak = tmp_path / "weak.jwks.json"
    only_weak.write_text(json.dumps({"keys": [rfc7515_es256()]}))
    with pytest.raises(AgentConfigInvalid):
        TrustStore(
            realms=frozenset({"jobmgr"}),
            issuer_of=lambda realm: ISSUER,
            cache_dir=None,
            fetch=None,
            bundles={"jobmgr": only_weak},
        )


def test_a_known_realm_signing_key_is_refused_at_load() -> None:
    (found,) = [k for k in KNOWN_KEYS if "7515 Appendix A.3" in k.citation]
    d = int.from_bytes(__import__("base64").urlsafe_b64decode("jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI="), "big")
    private = ec.derive_private_key(d, ec.SECP256R1())
    assert public_jwk(private.public_key(), "ES256")["x"] == found.jwk["x"]
    with pytest.raises(ConfigError):
        load_private_key(private_key_bytes(private))
