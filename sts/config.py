"""The STS configuration file (TOML, read with ``tomllib``), with ``JOBSTS_`` environment overrides.

Example: ``examples/sts.toml``. Validated at load; a mistake gives one ``ConfigError`` line.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from realms.config import RealmConfig, load_realms
from realms.env_secrets import read_env
from realms.errors import AccessIdInvalid, ConfigError, RealmUnknown
from realms.identity.access_id import AccessId
from sts.oauth.clients import RegisteredClient, load_clients

# Each may also be given as <NAME>_FILE, a file holding the value (realms.env_secrets). The
# master key is the exception: JOBSTS_MASTER_KEY_FILE is the path of the key file itself, which
# the STS reads as it reads master_key_file, so the two spellings mean the same thing.
ENV_OVERRIDES = {
    "JOBSTS_BASE_URL": "base_url",
    "JOBSTS_DATABASE_URL": "database_url",
}
MASTER_KEY_FILE_ENV = "JOBSTS_MASTER_KEY_FILE"


@dataclass(frozen=True, slots=True)
class ThrottlePolicy:
    """Brute-force protection (Keycloak's model). Defaults are no looser than Keycloak's."""

    failure_factor: int = 10
    wait_increment_seconds: int = 60
    max_wait_seconds: int = 900
    reset_seconds: int = 43200
    per_address_failure_factor: int = 50


@dataclass(frozen=True, slots=True)
class JobSettings:
    """The job manager's timing: lease length, long-poll step, reaper period, default job lifetime.

    Not read from the file: the defaults suit production; tests and benchmarks pass their own.
    """

    lease_seconds: int = 60
    poll_interval: float = 0.5
    reap_interval: float = 5.0
    default_job_ttl: int = 86400


@dataclass(frozen=True, slots=True)
class StsConfig:
    base_url: str
    database_url: str
    master_key_file: Path | None
    master_key_env: str | None
    realms: Mapping[str, RealmConfig]
    audience: str
    bootstrap_admins: tuple[AccessId, ...] = ()
    max_body_bytes: int = 64 * 1024
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    throttle: ThrottlePolicy = field(default_factory=ThrottlePolicy)
    jobs: JobSettings = field(default_factory=JobSettings)
    base_dir: Path = Path(".")
    # Master keys accepted for reading only, during a master-key rotation (sts.keys.master_rotation).
    fallback_master_key_files: tuple[Path, ...] = ()
    # The longest a private_key_jwt client assertion may live (RFC 7523 §3; Authlib sends 3600 s).
    max_client_assertion_lifetime: int = 3600
    # The authorization code flow's registered clients, by (realm, client_id).
    clients: Mapping[tuple[str, str], RegisteredClient] = field(default_factory=dict)

    def issuer(self, realm: str) -> str:
        """A realm's issuer comes only from the configured base URL, never from a Host header."""
        return f"{self.base_url}/realms/{realm}"

    def hosted_realm(self, realm: str) -> RealmConfig:
        """The settings of a realm this STS hosts; ``realm.unknown`` (404) for any other name."""
        settings = self.realms.get(realm)
        if settings is None:
            raise RealmUnknown(f"realm {realm[:80]!r} is not hosted by this STS", realm=realm[:80])
        return settings


def _require_str(table: Mapping[str, Any], name: str, default: str | None = None) -> str:
    value = table.get(name, default)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"sts.{name}: required, a non-empty string", field=f"sts.{name}")
    return value


def _throttle(table: Any) -> ThrottlePolicy:
    if table is None:
        return ThrottlePolicy()
    if not isinstance(table, dict):
        raise ConfigError("throttle: must be a table", field="throttle")
    defaults = ThrottlePolicy()
    values: dict[str, int] = {}
    for name in ThrottlePolicy.__dataclass_fields__:
        if name in table:
            value = table[name]
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"throttle.{name}: must be a positive whole number", field=f"throttle.{name}")
            values[name] = value
    unknown = set(table) - set(ThrottlePolicy.__dataclass_fields__)
    if unknown:
        raise ConfigError(f"throttle.{sorted(unknown)[0]}: unknown setting", field="throttle")
    policy = ThrottlePolicy(**values)
    if policy.failure_factor > 30 or policy.max_wait_seconds < defaults.wait_increment_seconds:
        raise ConfigError("throttle: looser than Keycloak's defaults (failure_factor <= 30)", field="throttle")
    return policy


def sts_config_from_mapping(
    data: Mapping[str, Any], base_dir: Path, environ: Mapping[str, str] | None = None
) -> StsConfig:
    """Validate a parsed STS configuration. ``environ`` supplies ``JOBSTS_`` overrides."""
    environ = os.environ if environ is None else environ
    sts = dict(data.get("sts") or {})
    for env_name, key in ENV_OVERRIDES.items():
        value = read_env(env_name, environ)
        if value is not None:
            sts[key] = value
    if environ.get(MASTER_KEY_FILE_ENV):
        sts["master_key_file"] = environ[MASTER_KEY_FILE_ENV]
    base_url = _require_str(sts, "base_url").rstrip("/")
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise ConfigError(f"sts.base_url: {base_url!r} is not an http(s) URL", field="sts.base_url")
    database_url = _require_str(sts, "database_url", "sqlite:///jobsts.db")
    if database_url.startswith("sqlite:///") and not database_url.startswith("sqlite:////"):
        relative = database_url.removeprefix("sqlite:///")
        if relative and relative != ":memory:":
            database_url = f"sqlite:///{(base_dir / relative).resolve()}"
    master_key_env = environ.get("JOBSTS_MASTER_KEY") or None
    key_file_value = sts.get("master_key_file")
    master_key_file = (base_dir / key_file_value).resolve() if isinstance(key_file_value, str) else None
    if master_key_env is None and master_key_file is None:
        raise ConfigError("sts.master_key_file: required unless JOBSTS_MASTER_KEY is set", field="sts.master_key_file")
    fallbacks = sts.get("fallback_master_key_files", [])
    if not isinstance(fallbacks, list) or not all(isinstance(f, str) and f for f in fallbacks):
        raise ConfigError("sts.fallback_master_key_files: a list of paths", field="sts.fallback_master_key_files")
    admins: list[AccessId] = []
    for text in sts.get("bootstrap_admins", []):
        try:
            admins.append(AccessId.parse(text))
        except AccessIdInvalid as exc:
            raise ConfigError(f"sts.bootstrap_admins: {exc.message}", field="sts.bootstrap_admins") from None
    proxies = []
    for text in sts.get("trusted_proxies", []):
        try:
            proxies.append(ipaddress.ip_network(text))
        except ValueError:
            raise ConfigError(
                f"sts.trusted_proxies: {text!r} is not an address or network", field="sts.trusted_proxies"
            ) from None
    max_body = sts.get("max_body_bytes", 64 * 1024)
    if isinstance(max_body, bool) or not isinstance(max_body, int) or not 1024 <= max_body <= 16 * 1024 * 1024:
        raise ConfigError("sts.max_body_bytes: must be from 1024 to 16777216", field="sts.max_body_bytes")
    assertion_lifetime = sts.get("max_client_assertion_lifetime", 3600)
    if (
        isinstance(assertion_lifetime, bool)
        or not isinstance(assertion_lifetime, int)
        or not (60 <= assertion_lifetime <= 86400)
    ):
        raise ConfigError(
            "sts.max_client_assertion_lifetime: seconds, from 60 to 86400", field="sts.max_client_assertion_lifetime"
        )
    unknown = set(sts) - {
        "max_client_assertion_lifetime",
        "base_url",
        "database_url",
        "master_key_file",
        "fallback_master_key_files",
        "audience",
        "bootstrap_admins",
        "trusted_proxies",
        "max_body_bytes",
    }
    if unknown:
        raise ConfigError(f"sts.{sorted(unknown)[0]}: unknown setting", field="sts")
    realms = load_realms(data.get("realms"), base_dir)
    return StsConfig(
        base_url=base_url,
        database_url=database_url,
        master_key_file=master_key_file,
        master_key_env=master_key_env,
        realms=realms,
        clients=load_clients(data.get("clients"), realms, base_url),
        audience=_require_str(sts, "audience", base_url),
        bootstrap_admins=tuple(admins),
        max_body_bytes=max_body,
        max_client_assertion_lifetime=assertion_lifetime,
        trusted_proxies=tuple(proxies),
        throttle=_throttle(data.get("throttle")),
        base_dir=base_dir,
        fallback_master_key_files=tuple((base_dir / f).resolve() for f in fallbacks),
    )


def load_sts_config(path: str | Path, environ: Mapping[str, str] | None = None) -> StsConfig:
    """Read and validate an STS TOML file."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}", field="file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}", field="file") from None
    return sts_config_from_mapping(data, path.parent.resolve(), environ)
