"""``grant_type=client_credentials`` with ``private_key_jwt`` client authentication.

RFC 7523 §2.2 and §3: the node signs an assertion with its registered key; iss = sub = the
node id, aud = this realm's token endpoint URL, a short exp and a jti never seen before.
The answer is a short ``agent+jwt`` (sub ``node:<id>``) for ``/api/v1/agent/*``.
"""

from __future__ import annotations

import hashlib
import math
import time
from typing import Any, ClassVar

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError

from realms.tokens import AGENT_TOKEN
from realms.tokens.algorithms import signature_is_valid
from realms.tokens.errors import TokenReplayed
from realms.tokens.jws import parse_compact
from realms.tokens.known_keys import jwk_thumbprint
from realms.tokens.verify import FORBIDDEN_HEADER_MEMBERS
from realms.wire.claims import agent_token_claims, new_jti
from sts.nodes.errors import NodeUnknown
from sts.nodes.service import get_node, node_key
from sts.oauth.errors import AssertionInvalid, ClientAuthenticationUnsupported
from sts.oauth.grants.base import Grant
from sts.oauth.models import SeenAssertion

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def _number(claims: dict[str, Any], name: str, node_id: str) -> float:
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise AssertionInvalid(f"node {node_id}: assertion claim {name} is not a NumericDate", node=node_id)
    return float(value)


class ClientCredentialsGrant(Grant):
    grant_type: ClassVar[str] = "client_credentials"

    def issue(self) -> dict[str, Any]:
        if self.form.get("client_assertion_type") != ASSERTION_TYPE:
            raise ClientAuthenticationUnsupported(f"realm {self.realm}: client_assertion_type must be {ASSERTION_TYPE}")
        assertion = self.param("client_assertion") or ""
        parsed = parse_compact(assertion)
        node_id = parsed.claims.get("iss")
        if not isinstance(node_id, str):
            raise AssertionInvalid("assertion has no issuer")
        client_id = self.form.get("client_id")
        if client_id is not None and client_id != node_id:
            raise AssertionInvalid(
                f"node {node_id[:64]}: client_id does not match the assertion issuer", node=node_id[:64]
            )
        with self.services.db.session() as session:
            node = get_node(session, node_id)
        # Why: a node authenticates only at its own realm's endpoint; the same id presented
        # at another realm is not that node.
        if node is None or node.realm != self.realm:
            raise NodeUnknown(f"node {node_id[:64]} is not registered in realm {self.realm}", node=node_id[:64])
        self._verify(parsed, node_id, node_key(node))
        self._remember_jti(node_id, parsed.claims)
        return self._agent_token(node_id, jwk_thumbprint(node.public_jwk))

    def _verify(self, parsed: Any, node_id: str, key: Any) -> None:
        header, claims = parsed.header, parsed.claims
        # Why: the algorithm is the registered key's, never the assertion's choice (no
        # "none", no HMAC keyed with the public key), and no header may bring its own key.
        if header.get("alg") != key.algorithm:
            raise AssertionInvalid(f"node {node_id}: assertion must be signed with {key.algorithm}", node=node_id)
        if FORBIDDEN_HEADER_MEMBERS & header.keys():
            raise AssertionInvalid(f"node {node_id}: assertion header embeds a key or crit", node=node_id)
        if not signature_is_valid(key.algorithm, key.public_key, parsed.signing_input, parsed.signature):
            raise AssertionInvalid(f"node {node_id}: assertion signature does not verify with its key", node=node_id)
        if claims.get("sub") != node_id:
            raise AssertionInvalid(f"node {node_id}: assertion sub must equal iss", node=node_id)
        endpoint = f"{self.issuer}/token"
        audience = claims.get("aud")
        # RFC 7523 §3 item 3: aud identifies this endpoint (a list may name it among others).
        if audience != endpoint and not (isinstance(audience, list) and endpoint in audience):
            raise AssertionInvalid(f"node {node_id}: assertion audience must be {endpoint}", node=node_id)
        now, leeway = time.time(), self.policy.leeway
        exp = _number(claims, "exp", node_id)
        if now >= exp + leeway:
            raise AssertionInvalid(f"node {node_id}: assertion expired", node=node_id)
        # Why: a long-lived assertion is a bearer credential; bounding exp bounds the replay
        # table and the damage of a leaked assertion. The jti is remembered until exp, so the
        # replay cache covers the whole lifetime accepted here.
        longest = self.services.config.max_client_assertion_lifetime
        if exp - now > longest + leeway:
            raise AssertionInvalid(f"node {node_id}: assertion lives longer than {longest}s", node=node_id)
        for name in ("nbf", "iat"):
            if name in claims and _number(claims, name, node_id) > now + leeway:
                raise AssertionInvalid(f"node {node_id}: assertion {name} is in the future", node=node_id)

    def _remember_jti(self, node_id: str, claims: dict[str, Any]) -> None:
        jti = claims.get("jti")
        if not isinstance(jti, str) or not jti or len(jti) > 256:
            raise AssertionInvalid(f"node {node_id}: assertion needs a jti", node=node_id)
        key = hashlib.sha256(f"{node_id}\x00{jti}".encode()).hexdigest()
        now = int(time.time())
        try:
            with self.services.db.session() as session:
                session.execute(delete(SeenAssertion).where(SeenAssertion.exp < now - self.policy.leeway))
                session.add(SeenAssertion(key=key, exp=int(claims["exp"]) + self.policy.leeway))
        except IntegrityError:
            # Why: RFC 7523 §3 item 7: a jti seen before is a replay of a captured assertion.
            raise TokenReplayed(f"node {node_id}: assertion jti was already used", node=node_id) from None

    def _agent_token(self, node_id: str, key_thumbprint: str) -> dict[str, Any]:
        now, ttl = int(time.time()), self.policy.agent_token_ttl
        claims = agent_token_claims(
            issuer=self.issuer,
            node_id=node_id,
            audience=self.services.config.audience,
            issued_at=now,
            expires_at=now + ttl,
            jti=new_jti(),
            key_thumbprint=key_thumbprint,
        )
        token = self.services.keys.sign(self.realm, claims, AGENT_TOKEN.typ)
        return {"access_token": token, "token_type": "Bearer", "expires_in": ttl}
