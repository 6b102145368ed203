"""Each realm's issuer, as the STS names it: from the realm's discovery document, checked
against ``[issuers]`` when the configuration pins one.

Behind a proxy, or in a compose stack, the URL an agent reaches the STS at (``sts_url``) is
not the STS's own ``base_url``, so an issuer derived from ``sts_url`` would match no token.
The agent reads ``issuer`` from ``<sts_url>/realms/<realm>/.well-known/openid-configuration``
(OpenID Connect Discovery 1.0 §4; RFC 8414 §3). Since that URL is not built from the issuer,
RFC 8414 §3.3's identity check becomes two checks: the issuer must name the realm
(``…/realms/<realm>``), and, where ``[issuers]`` pins the realm's issuer, equal it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import httpx

from agent_client.config_reader import TableReader
from realms.errors import ConfigError

if TYPE_CHECKING:
    from agent_client.config import AgentConfig

log = logging.getLogger(__name__)
DISCOVERY_TIMEOUT = 15.0
ISSUER_URL = re.compile(r"https?://[^\s/?#]+(/[^\s?#]*)?")


class IssuerMismatch(ConfigError):
    """The realm's discovery document names another issuer than the configuration expects."""

    code: ClassVar[str] = "agent.issuer_mismatch"


def issuers_config(path: Path, table: Mapping[str, Any], realms: frozenset[str]) -> dict[str, str]:
    """``[issuers]``: realm = "issuer URL", for the realms this node accepts; optional."""
    reader = TableReader(path, dict(table), "issuers")
    issuers: dict[str, str] = {}
    for realm in list(reader.table):
        issuer = reader.get(realm, str)
        if realm not in realms:
            raise reader.fail(realm, "is not the node's realm or one of its trusted_realms")
        if not ISSUER_URL.fullmatch(issuer) or not issuer.endswith(f"/realms/{realm}"):
            raise reader.fail(realm, f"{issuer[:80]!r} is not an http(s) issuer URL ending in /realms/{realm}")
        issuers[realm] = issuer
    reader.done()
    return issuers


def discovered_issuer(http: httpx.Client, sts_url: str, realm: str, expected: str | None) -> str:
    """The ``issuer`` of ``realm``'s discovery document, checked as the module says."""
    url = f"{sts_url}/realms/{realm}/.well-known/openid-configuration"
    response = http.get(url)
    response.raise_for_status()
    document = response.json()
    issuer = document.get("issuer") if isinstance(document, dict) else None
    # Why: an issuer that names another realm (or is no URL) would make this node accept one
    # realm's tokens as another's; a pinned issuer must match exactly (RFC 8414 §3.3).
    if not isinstance(issuer, str) or not ISSUER_URL.fullmatch(issuer) or not issuer.endswith(f"/realms/{realm}"):
        raise IssuerMismatch(f"{url}: issuer {str(issuer)[:80]!r} does not name realm {realm}", realm=realm)
    if expected is not None and issuer != expected:
        raise IssuerMismatch(
            f"{url}: issuer {issuer!r} is not the one [issuers] expects for realm {realm} ({expected!r})", realm=realm
        )
    return issuer


def with_discovered_issuers(config: AgentConfig, *, transport: httpx.BaseTransport | None = None) -> AgentConfig:
    """``config`` with every accepted realm's issuer read from discovery.

    A mismatch refuses (``agent.issuer_mismatch``). An STS that cannot be reached leaves the
    pinned issuer, or the one derived from ``sts_url``, with a warning: the agent retries the
    STS anyway, and ``jobsts agent check --online`` says what is wrong."""
    issuers = dict(config.issuers)
    with httpx.Client(timeout=DISCOVERY_TIMEOUT, verify=config.verify_tls, transport=transport) as http:
        for realm in sorted(config.realms):
            try:
                issuers[realm] = discovered_issuer(http, config.sts_url, realm, config.issuers.get(realm))
            except IssuerMismatch:
                raise
            except (httpx.HTTPError, ValueError) as exc:
                log.warning("discovery of realm %s failed (%s); using issuer %s", realm, exc, config.issuer(realm))
    return replace(config, issuers=issuers)
