"""The key a bench registers its nodes with, and the ``cnf`` its hand-made agent tokens carry:
the STS binds every agent token to the node key that obtained it (RFC 7800 §3.1, ``jkt``)."""

from __future__ import annotations

from typing import Any

from realms.tokens.keys import public_jwk
from realms.tokens.known_keys import jwk_thumbprint
from sts.keys.material import generate_private_key

NODE_JWK: dict[str, Any] = dict(public_jwk(generate_private_key("ES256").public_key(), "ES256"))
CNF: dict[str, Any] = {"jkt": jwk_thumbprint(NODE_JWK)}
