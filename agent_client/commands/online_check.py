"""``jobsts agent check --online``: can this agent work with its STS right now?

In order: connectivity (``GET /healthz``), each accepted realm's discovery document (its
issuer against the pinned or derived one), each realm's JWKS (keys the trust store would
accept), an agent token (``client_credentials`` with the node key, RFC 7523) used on the
revocation list, and the clock skew against the STS from the HTTP ``Date`` header (RFC 9110
§6.6.1), with a warning above the configured leeway: past it, fresh tokens look expired or
not yet valid.
"""

from __future__ import annotations

import email.utils
import time
from dataclasses import dataclass, field

import httpx

from agent_client.api.agent import AgentApi
from agent_client.api.auth import load_node_key
from agent_client.config import AgentConfig
from agent_client.config_issuers import DISCOVERY_TIMEOUT, discovered_issuer
from agent_client.trust_store import TrustStore
from realms.errors import JobstsError


@dataclass(slots=True)
class OnlineReport:
    """One line per check (``ok``/``warn``/``fail``), and the measured skew."""

    lines: list[tuple[str, str, str]] = field(default_factory=list)
    skew_seconds: float | None = None

    def add(self, verdict: str, check: str, detail: str) -> None:
        self.lines.append((verdict, check, detail))

    @property
    def problems(self) -> list[str]:
        return [f"online {check}: {detail}" for verdict, check, detail in self.lines if verdict == "fail"]

    def as_json(self) -> dict[str, object]:
        checks = [{"check": c, "verdict": v, "detail": d} for v, c, d in self.lines]
        return {"checks": checks, "clock_skew_seconds": self.skew_seconds}


def clock_skew(response: httpx.Response, sent: float, received: float) -> float | None:
    """The STS clock minus ours, from ``Date`` (one-second resolution), against the request's midpoint."""
    header = response.headers.get("date")
    if not header:
        return None
    try:
        server = email.utils.parsedate_to_datetime(header).timestamp()
    except (TypeError, ValueError):
        return None
    return server - (sent + received) / 2


def check_online(config: AgentConfig, *, transport: httpx.BaseTransport | None = None) -> OnlineReport:
    report = OnlineReport()
    with httpx.Client(timeout=DISCOVERY_TIMEOUT, verify=config.verify_tls, transport=transport) as http:
        try:
            sent = time.time()
            health = http.get(f"{config.sts_url}/healthz")
            received = time.time()
        except httpx.HTTPError as exc:
            report.add("fail", "connect", f"{config.sts_url}: {exc}")
            return report
        report.add("ok" if health.is_success else "fail", "connect", f"{config.sts_url}/healthz: {health.status_code}")
        report.skew_seconds = clock_skew(health, sent, received)
        if report.skew_seconds is None:
            report.add("warn", "clock", "the STS sent no usable Date header; skew unknown")
        elif abs(report.skew_seconds) > config.leeway:
            report.add(
                "warn",
                "clock",
                f"skew {report.skew_seconds:+.0f}s against the STS is above the leeway ({config.leeway}s): tokens "
                "will look expired or not yet valid; synchronise the clocks (NTP)",
            )
        else:
            report.add("ok", "clock", f"skew {report.skew_seconds:+.0f}s (leeway {config.leeway}s)")
        issuers = dict(config.issuers)
        for realm in sorted(config.realms):
            try:
                issuer = discovered_issuer(http, config.sts_url, realm, config.issuers.get(realm))
            except JobstsError as exc:
                report.add("fail", f"discovery {realm}", f"{exc.code}: {exc.message}")
                continue
            except (httpx.HTTPError, ValueError) as exc:
                report.add("fail", f"discovery {realm}", str(exc)[:200])
                continue
            issuers[realm] = issuer
            derived = f"{config.sts_url}/realms/{realm}"
            note = "" if issuer == derived else f" (not {derived}: the agent uses the discovered one)"
            report.add("ok", f"discovery {realm}", f"issuer {issuer}{note}")
    _check_keys_and_token(config, issuers, report)
    return report


def _check_keys_and_token(config: AgentConfig, issuers: dict[str, str], report: OnlineReport) -> None:
    try:
        key = load_node_key(config.key_file, config.key_algorithm)
    except JobstsError as exc:
        report.add("fail", "token", f"{exc.code}: {exc.message}")
        return
    audience = f"{issuers.get(config.realm) or config.issuer(config.realm)}/token"
    with AgentApi.connect(config.sts_url, config.node_id, config.realm, key, config.key_algorithm,
                          verify=config.verify_tls, audience=audience) as client:  # fmt: skip
        for realm in sorted(config.realms):
            trust = TrustStore(
                realms=frozenset({realm}), issuer_of=lambda name: issuers.get(name) or config.issuer(name),
                cache_dir=None, fetch=client.jwks, bundles=config.trust.bundles,
                algorithms=config.trust.algorithms, max_age=config.trust.max_age,
            )  # fmt: skip
            problems = trust.problems()
            if problems:
                report.add("fail", f"jwks {realm}", "; ".join(problems)[:300])
            else:
                report.add("ok", f"jwks {realm}", f"{config.sts_url}/realms/{realm}/jwks: keys accepted")
        try:
            revoked = client.revocations()
        except JobstsError as exc:
            report.add("fail", "token", f"{exc.code}: {exc.message}")
            return
        report.add("ok", "token", f"agent token for node {config.node_id} works ({len(revoked)} revoked job tokens)")
