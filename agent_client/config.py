"""The agent's TOML configuration, validated at load (docs/architecture.md, the agent).

Every mistake is one ``agent.config`` line naming the file and the field, never a
traceback. Relative paths are taken from the configuration file's directory. The
``JOBSTS_AGENT_STS_URL`` environment variable overrides ``[agent] sts_url``.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent_client.config_issuers import issuers_config
from agent_client.config_reader import TableReader, check_account_name, config_path
from agent_client.config_remote import credentials_config, remote_hosts_config
from agent_client.credentials.store import CredentialsConfig
from agent_client.errors import AgentConfigInvalid, MapBadAccount, NodeKeyMissing
from agent_client.remote.hosts import RemoteHost
from authz_tables.errors import AuthzError
from authz_tables.roles import Role, parse_role
from realms.env_secrets import read_env
from realms.errors import AccessIdInvalid
from realms.identity.access_id import REALM_NAME, AccessId, AccessIdKind, is_valid_realm_name
from realms.tokens.algorithms import DEFAULT_ALGORITHM
from realms.tokens.profiles import MAX_LEEWAY_SECONDS, SIGNING_ALGORITHMS

HTTP_URL = re.compile(r"https?://[^\s/?#]+(/[^\s?#]*)?")
AUTHGROUP_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
EXECUTORS = ("setuid", "sudo", "self")
LIMIT_NAMES = ("cpu_seconds", "address_space", "nofile", "nproc", "fsize", "core")
STS_URL_ENV = "JOBSTS_AGENT_STS_URL"
# The longest wait for work an agent asks for (``poll_wait``), in seconds: under the STS's limit of
# 60 and under the 60 s idle timeout common to load balancers, with room for the answer. A long
# period is cheap for a large fleet (each agent re-waits less often) and costs no latency.
MAX_POLL_WAIT = 55


@dataclass(frozen=True, slots=True)
class MappingRule:
    """One ordered rule: exactly one matcher (access_id, group, role or realm) and an account,
    or a ``privilege_map`` (the local user whose groups are lent to the privilege-map account)."""

    kind: str  # "access_id" | "group" | "role" | "realm"
    match: str
    account: str
    primary_group: str | None = None
    load_profile: bool = False
    access_id: AccessId | None = None
    role: Role | None = None
    privilege_map: str | None = None


@dataclass(frozen=True, slots=True)
class PrivilegeMapConfig:
    """``[mapping.privilege_map]``: the dedicated unprivileged account, and the root-equivalent
    groups that may still be lent (each named explicitly)."""

    account: str | None = None
    allow_groups: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class MappingConfig:
    rules: tuple[MappingRule, ...] = ()
    equivalency: frozenset[str] = frozenset()
    fallback: str = "deny"  # "deny" | "nobody" | an account name
    allow_root: bool = False
    equivalency_min_uid: int = 1000
    # Root-equivalent groups (agent_client.privileged_groups) a mapped account may be in.
    allow_privileged_groups: frozenset[str] = frozenset()
    privilege_map: PrivilegeMapConfig = PrivilegeMapConfig()


@dataclass(frozen=True, slots=True)
class Limits:
    """Resource limits applied to each job, and the executor's own bounds."""

    rlimits: Mapping[str, int] = field(default_factory=dict)
    output_bytes: int = 64 * 1024
    kill_grace: float = 5.0
    max_timeout: int = 86400


@dataclass(frozen=True, slots=True)
class TrustConfig:
    """Where each trusted realm's keys come from: the STS JWKS, or a static bundle file."""

    max_age: int = 3600
    refetch_interval: int = 30
    bundles: Mapping[str, Path] = field(default_factory=dict)
    algorithms: Mapping[str, frozenset[str]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AgentConfig:
    path: Path
    node_id: str
    realm: str
    sts_url: str
    key_file: Path
    key_algorithm: str
    state_dir: Path
    authz_table: Path
    executor: str
    trusted_realms: frozenset[str]
    authgroups: frozenset[str]
    job_types: Mapping[str, Role]
    mapping: MappingConfig
    trust: TrustConfig
    limits: Limits
    leeway: int = 30
    poll_wait: int = 20
    max_jobs: int = 1  # slots: jobs run at once, each in its own executor child
    verify_tls: bool | str = True
    wait_url: str | None = None  # the STS's agent-wait listener, when it has one (else sts_url)
    remote_hosts: Mapping[str, RemoteHost] = field(default_factory=dict)
    credentials: CredentialsConfig | None = None
    issuers: Mapping[str, str] = field(default_factory=dict)  # pinned ([issuers]) or discovered

    def issuer(self, realm: str) -> str:
        """The issuer of ``realm`` as the STS names it: pinned in ``[issuers]`` or read from
        discovery (``config_issuers.py``), else ``<sts_url>/realms/<realm>``."""
        return self.issuers.get(realm) or f"{self.sts_url}/realms/{realm}"

    @property
    def assertion_audience(self) -> str:
        """RFC 7523 §3: the agent's assertions name the own realm's token endpoint, as the STS knows it."""
        return f"{self.issuer(self.realm)}/token"

    @property
    def realms(self) -> frozenset[str]:
        """Every realm whose tokens this node accepts: its own, always, and the trusted list."""
        return self.trusted_realms | {self.realm}

    @property
    def journal_file(self) -> Path:
        return self.state_dir / "started.sqlite"

    @property
    def outbox_dir(self) -> Path:
        return self.state_dir / "outbox"

    @property
    def jwks_cache_dir(self) -> Path:
        return self.state_dir / "jwks"

    def require_key(self) -> None:
        """``agent.key_missing`` when the node key does not exist (before any file-mode check, whose
        "does not exist" would not say what to do)."""
        if not self.key_file.exists() and not self.key_file.is_symlink():
            raise NodeKeyMissing(
                f"node key {self.key_file} does not exist: run jobsts agent init --node {self.node_id} "
                f"--realm {self.realm} --sts {self.sts_url} --dir {self.key_file.parent}, then register "
                "its public key (jobsts node register)",
                field="agent.key_file",
            )

    def protected_files(self) -> list[Path]:
        """The files whose modes are checked at start (``file_modes.check_paths``)."""
        files = [self.path, self.key_file, self.authz_table, *self.trust.bundles.values()]
        return files + self.credential_files()

    def credential_files(self) -> list[Path]:
        """The credential store's key and data files that exist (both private, like the node key)."""
        if self.credentials is None:
            return []
        return [p for p in (self.credentials.key_file, self.credentials.store) if os.path.lexists(p)]


def _realm_list(reader: TableReader, name: str) -> frozenset[str]:
    values = reader.get(name, list, [])
    for value in values:
        if not isinstance(value, str) or not is_valid_realm_name(value):
            raise reader.fail(name, f"{str(value)[:40]!r} is not a realm name")
    return frozenset(values)


def _mapping(path: Path, table: Any, trusted: frozenset[str]) -> MappingConfig:
    reader = TableReader(path, table, "mapping")
    fallback = reader.get("fallback", str, "deny")
    if fallback not in ("deny", "nobody"):
        try:
            check_account_name(fallback, "fallback account")
        except MapBadAccount as exc:
            raise reader.fail("fallback", exc.message) from None
    allow_root = reader.get("allow_root", bool, False)
    equivalency = _realm_list(reader, "equivalency")
    if equivalency - trusted:
        raise reader.fail("equivalency", f"realm {sorted(equivalency - trusted)[0]!r} is not trusted by this node")
    min_uid = reader.number("equivalency_min_uid", 1000, 0, 2**31)
    allowed_groups = reader.get("allow_privileged_groups", list, [])
    if not all(isinstance(g, str) for g in allowed_groups):
        raise reader.fail("allow_privileged_groups", "must be a list of group names")
    privilege = _privilege_map(path, reader.get("privilege_map", dict, {}))
    rules: list[MappingRule] = []
    for index, rule_table in enumerate(reader.get("rules", list, [])):
        rules.append(_rule(path, rule_table, f"mapping.rules[{index}]", privilege))
    reader.done()
    return MappingConfig(tuple(rules), equivalency, fallback, allow_root, min_uid, frozenset(allowed_groups), privilege)


def _privilege_map(path: Path, table: Any) -> PrivilegeMapConfig:
    reader = TableReader(path, table, "mapping.privilege_map")
    account = reader.get("account", str, None)
    allowed = reader.get("allow_groups", list, [])
    try:
        if account is not None:
            check_account_name(account)
        for name in allowed:
            check_account_name(name, "group")
    except MapBadAccount as exc:
        raise reader.fail("account" if account is not None else "allow_groups", exc.message) from None
    reader.done()
    return PrivilegeMapConfig(account, frozenset(allowed))


def _rule(path: Path, table: Any, prefix: str, privilege: PrivilegeMapConfig) -> MappingRule:
    reader = TableReader(path, table, prefix)
    matchers = [name for name in ("access_id", "group", "role", "realm") if name in table]
    if len(matchers) != 1:
        raise reader.fail("", "needs exactly one of access_id, group, role, realm")
    kind = matchers[0]
    match = reader.get(kind, str)
    access_id: AccessId | None = None
    role: Role | None = None
    if kind in ("access_id", "group"):
        try:
            access_id = AccessId.parse(match)
        except AccessIdInvalid as exc:
            raise reader.fail(kind, exc.message) from None
        expected = AccessIdKind.GROUP if kind == "group" else AccessIdKind.USER
        if access_id.kind is not expected:
            raise reader.fail(kind, f"must be a {expected.value} access ID")
    elif kind == "role":
        try:
            role = parse_role(match)
        except AuthzError as exc:
            raise reader.fail(kind, exc.message) from None
    elif not is_valid_realm_name(match):
        raise reader.fail(kind, "is not a realm name")
    lent: str | None = None
    if "privilege_map" in table:
        # Why: a privilege-map rule runs as the one dedicated account; naming another account
        # (or a primary group) in the same rule would make it unclear whose identity the job has.
        if "account" in table or "primary_group" in table or "load_profile" in table:
            raise reader.fail("privilege_map", "cannot be combined with account, primary_group or load_profile")
        if privilege.account is None:
            raise reader.fail("privilege_map", "needs [mapping.privilege_map] account (the dedicated account)")
        try:
            lent = check_account_name(reader.get("privilege_map", str), "privilege_map user")
        except MapBadAccount as exc:
            raise reader.fail("privilege_map", exc.message) from None
        reader.done()
        return MappingRule(kind, match, privilege.account, None, False, access_id, role, lent)
    try:
        account = check_account_name(reader.get("account", str))
        primary = reader.get("primary_group", str, None)
        if primary is not None:
            check_account_name(primary, "group")
    except MapBadAccount as exc:
        raise reader.fail("account", exc.message) from None
    load_profile = reader.get("load_profile", bool, False)
    reader.done()
    return MappingRule(kind, match, account, primary, load_profile, access_id, role)


def _trust(path: Path, base: Path, table: Any, realms: frozenset[str]) -> TrustConfig:
    reader = TableReader(path, table, "trust")
    max_age = reader.number("max_age", 3600, 60, 30 * 86400)
    refetch = reader.number("refetch_interval", 30, 1, 3600)
    bundles: dict[str, Path] = {}
    for realm, file in reader.get("bundles", dict, {}).items():
        if realm not in realms:
            raise reader.fail(f"bundles.{realm}", "is not this node's realm or a trusted realm")
        if not isinstance(file, str):
            raise reader.fail(f"bundles.{realm}", "must be a file path")
        bundles[realm] = config_path(base, file)
    algorithms: dict[str, frozenset[str]] = {}
    for realm, names in reader.get("algorithms", dict, {}).items():
        if realm not in realms:
            raise reader.fail(f"algorithms.{realm}", "is not this node's realm or a trusted realm")
        if not isinstance(names, list) or not names or not set(names) <= set(SIGNING_ALGORITHMS):
            raise reader.fail(f"algorithms.{realm}", f"must be a list of {', '.join(SIGNING_ALGORITHMS)}")
        algorithms[realm] = frozenset(names)
    reader.done()
    return TrustConfig(max_age, refetch, bundles, algorithms)


def _limits(path: Path, table: Any) -> Limits:
    reader = TableReader(path, table, "limits")
    rlimits = {name: reader.number(name, -1, 0, 2**62) for name in LIMIT_NAMES if name in table}
    output = reader.number("output_bytes", 64 * 1024, 1024, 64 * 1024)
    grace = reader.number("kill_grace", 5, 0, 300)
    max_timeout = reader.number("max_timeout", 86400, 1, 30 * 86400)
    reader.done()
    return Limits(rlimits, output, float(grace), max_timeout)


def config_from_mapping(data: Mapping[str, Any], path: Path, environ: Mapping[str, str] | None = None) -> AgentConfig:
    """Validate a parsed agent TOML document (``path`` names it in errors and anchors relative paths)."""
    environ = os.environ if environ is None else environ
    base = path.parent
    top = TableReader(path, dict(data), "")
    agent = TableReader(path, top.get("agent", dict), "agent")
    node_id = agent.get("node_id", str)
    if REALM_NAME.fullmatch(node_id) is None:
        raise agent.fail("node_id", "expected [A-Za-z0-9][A-Za-z0-9._-]{0,62}")
    realm = agent.get("realm", str)
    if not is_valid_realm_name(realm):
        raise agent.fail("realm", "is not a realm name")
    sts_url = read_env(STS_URL_ENV, environ) or agent.get("sts_url", str)
    agent.used.add("sts_url")
    if not HTTP_URL.fullmatch(sts_url):
        raise agent.fail("sts_url", f"{sts_url[:80]!r} is not an http(s) URL")
    wait_url = agent.get("wait_url", str, "") or None
    if wait_url is not None and not HTTP_URL.fullmatch(wait_url):
        raise agent.fail("wait_url", f"{wait_url[:80]!r} is not an http(s) URL")
    trusted = _realm_list(agent, "trusted_realms") | {realm}
    executor = agent.get("executor", str, "setuid")
    if executor not in EXECUTORS:
        raise agent.fail("executor", f"must be one of {', '.join(EXECUTORS)}")
    authgroups = agent.get("authgroups", list, [])
    for name in authgroups:
        if not isinstance(name, str) or AUTHGROUP_NAME.fullmatch(name) is None:
            raise agent.fail("authgroups", f"{str(name)[:40]!r} is not an authorization group name")
    key_algorithm = agent.get("key_algorithm", str, DEFAULT_ALGORITHM)
    if key_algorithm not in SIGNING_ALGORITHMS:
        raise agent.fail("key_algorithm", f"must be one of {', '.join(SIGNING_ALGORITHMS)}")
    verify_tls = agent.get("verify_tls", (bool, str), True)
    key_file = config_path(base, agent.get("key_file", str, "node.key"))
    state_dir = config_path(base, agent.get("state_dir", str, "state"))
    authz_table = config_path(base, agent.get("authz_table", str, "authz.sqlite"))
    leeway = agent.number("leeway", 30, 0, MAX_LEEWAY_SECONDS)
    poll_wait = agent.number("poll_wait", 20, 0, MAX_POLL_WAIT)
    max_jobs = agent.number("max_jobs", 1, 1, 64)
    agent.done()

    job_types_reader = TableReader(path, top.get("job_types", dict), "job_types")
    job_types: dict[str, Role] = {}
    for job_type, role_name in job_types_reader.table.items():
        job_types_reader.used.add(job_type)
        try:
            job_types[job_type] = parse_role(role_name)
        except AuthzError as exc:
            raise job_types_reader.fail(job_type, exc.message) from None
    if not job_types:
        raise top.fail("job_types", "needs at least one job type: there are no implicit defaults")

    mapping = _mapping(path, top.get("mapping", dict, {}), trusted)
    trust = _trust(path, base, top.get("trust", dict, {}), trusted)
    limits = _limits(path, top.get("limits", dict, {}))
    remote_hosts = remote_hosts_config(path, top.get("remote_hosts", dict, {}))
    credentials = credentials_config(path, base, key_file, top.get("credentials", dict, {}))
    issuers = issuers_config(path, top.get("issuers", dict, {}), frozenset(trusted))
    top.done()
    return AgentConfig(
        path=path,
        node_id=node_id,
        realm=realm,
        sts_url=sts_url.rstrip("/"),
        key_algorithm=key_algorithm,
        executor=executor,
        trusted_realms=trusted - {realm},
        authgroups=frozenset(authgroups),
        job_types=job_types,
        mapping=mapping,
        trust=trust,
        limits=limits,
        verify_tls=verify_tls,
        key_file=key_file,
        state_dir=state_dir,
        authz_table=authz_table,
        leeway=leeway,
        poll_wait=poll_wait,
        max_jobs=max_jobs,
        wait_url=wait_url.rstrip("/") if wait_url is not None else None,
        remote_hosts=remote_hosts,
        credentials=credentials,
        issuers=issuers,
    )


def load_agent_config(path: str | Path, environ: Mapping[str, str] | None = None) -> AgentConfig:
    """Read and validate the agent TOML file at ``path``."""
    path = Path(path).absolute()
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except OSError as exc:
        raise AgentConfigInvalid(f"{path}: cannot read: {exc.strerror}", field="") from None
    except tomllib.TOMLDecodeError as exc:
        raise AgentConfigInvalid(f"{path}: not valid TOML: {exc}", field="") from None
    return config_from_mapping(data, path, environ)
