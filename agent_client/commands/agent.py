"""The agent's commands, ``jobsts agent``: init, run, check and explain."""

from __future__ import annotations

import json
import os
import signal
import threading
from pathlib import Path
from types import FrameType

import click
from cryptography.hazmat.primitives import serialization

from agent_client.api.agent import AgentApi
from agent_client.api.auth import load_node_key
from agent_client.commands.online_check import check_online
from agent_client.commands.privileged_mappings import privileged_mappings
from agent_client.config import AgentConfig, load_agent_config
from agent_client.config_issuers import with_discovered_issuers
from agent_client.credentials.cli import credentials
from agent_client.credentials.store import CredentialStore
from agent_client.decision import NodeDecider, NodePolicy
from agent_client.executors import EXECUTORS
from agent_client.file_modes import check_paths
from agent_client.journal import StartedJournal
from agent_client.loop import RevocationSet, open_agent
from agent_client.trust_store import TrustStore
from authz_tables.store import AuthzTable
from realms.errors import JobstsError
from realms.identity.access_id import REALM_NAME, is_valid_realm_name
from realms.logs import LOG_FORMAT_OPTION, LOG_LEVEL_OPTION, setup_logging
from realms.tokens.algorithms import DEFAULT_ALGORITHM, algorithm_named
from realms.tokens.keys import public_jwk

TEMPLATE = """\
# jobsts agent configuration (validated at start; `jobsts agent check --config THIS` tests it).
# This file, the key, the authorization table and trust bundles must be owned by root or the
# agent's account and not writable by group or others (all parent directories too).

[agent]
node_id = "{node}"
realm = "{realm}"                 # the node's own realm: always trusted
sts_url = "{sts}"                 # JOBSTS_AGENT_STS_URL overrides it
# wait_url = "http://sts:8081"    # the STS's agent-wait listener (serve --wait-port), if reached directly
key_file = "node.key"             # PEM private key, mode 0600 (made by `jobsts agent init`)
key_algorithm = "{algorithm}"
state_dir = "state"               # durable record of started jobs + JWKS cache
authz_table = "authz.sqlite"      # `jobsts authz ... --table sqlite:///<this file>`
executor = "setuid"               # setuid (agent is root) | sudo (service account) | self
trusted_realms = []               # e.g. ["jobmgr"]: realms whose job tokens this node accepts
authgroups = []                   # authorization groups of this node, e.g. ["payroll"]
leeway = 30                       # clock skew allowed on nbf/exp, seconds (max 60)
poll_wait = 20                    # seconds one wait for work lasts (max 55)

[job_types]                       # job type -> role required; unknown types are refused
run = "operator"
# inventory = "monitor"

[mapping]
fallback = "deny"                 # deny | nobody | <account name>
allow_root = false                # uid 0 / gid 0 accounts are refused unless true
# allow_privileged_groups = []     # e.g. ["docker"]: root-equivalent groups a mapped account may be in
equivalency = []                  # realms where uid=<name>,... maps to local account <name>
equivalency_min_uid = 1000        # ... but never to system accounts below this uid

# Rules are tried by kind: access_id, then group, then role, then realm.
# [[mapping.rules]]
# group = "group:jobmgr/cn=operators,ou=groups,dc=jobmgr,dc=example"
# account = "batch"
# primary_group = "batch"         # optional
# load_profile = false            # run through the account's login shell

[trust]
max_age = 3600                    # cached JWKS older than this are not used
refetch_interval = 30             # at most one refetch per realm per interval on unknown kid
# bundles = {{ jobmgr = "trust/jobmgr.jwks.json" }}   # static key sets instead of fetching

[limits]
# cpu_seconds = 3600
# address_space = 4294967296
# nofile = 1024
# nproc = 256
output_bytes = 65536
kill_grace = 5
"""


@click.group()
def agent() -> None:
    """The target-node agent: lease jobs, decide, map to a local account, run."""


@agent.command()
@click.option("--node", "node_id", required=True, help="The node id registered at the STS.")
@click.option("--realm", required=True, help="The node's own realm.")
@click.option("--sts", "sts_url", required=True, help="The STS base URL.")
@click.option("--dir", "directory", type=click.Path(path_type=Path), default=Path("."), show_default=True)
@click.option("--algorithm", type=click.Choice(["ES256", "EdDSA"]), default=DEFAULT_ALGORITHM, show_default=True)
@click.option(
    "--join-token", default=None, help="Enroll at once with this one-time join token (jobsts node join-token)."
)
@click.option(
    "--ca-file", default=None, type=click.Path(dir_okay=False), help="CA bundle that the STS's TLS must chain to."
)
def init(
    node_id: str, realm: str, sts_url: str, directory: Path, algorithm: str, join_token: str | None, ca_file: str | None
) -> None:
    """Write a node key pair (private key mode 0600) and a configuration template; print the public
    key, or with --join-token register it at the STS directly."""
    if REALM_NAME.fullmatch(node_id) is None:
        raise click.BadParameter("expected [A-Za-z0-9][A-Za-z0-9._-]{0,62}", param_hint="--node")
    if not is_valid_realm_name(realm):
        raise click.BadParameter("not a realm name", param_hint="--realm")
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    key_path, config_path = directory / "node.key", directory / "agent.toml"
    for path in (key_path, config_path):
        if path.exists():
            raise click.ClickException(f"{path} exists; refusing to overwrite it")
    key = algorithm_named(algorithm).generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    # Why: created with O_EXCL and mode 0600 in one step, so the key is never readable by others.
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    (directory / "node.pub.pem").write_bytes(public_pem)
    fd = os.open(config_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o640)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(TEMPLATE.format(node=node_id, realm=realm, sts=sts_url.rstrip("/"), algorithm=algorithm))
    (directory / "state").mkdir(mode=0o700, exist_ok=True)
    click.echo(f"wrote {key_path} (mode 0600), {directory / 'node.pub.pem'} and {config_path}")
    if join_token is not None:
        jwk = public_jwk(key.public_key(), algorithm)
        _enroll(sts_url, node_id, join_token, jwk, [], ca_file if ca_file else True)
        return
    click.echo("Register this public key at the STS (a job-manager administrator runs `jobsts node register`):")
    click.echo(public_pem.decode("ascii").rstrip())
    click.echo(json.dumps(public_jwk(key.public_key(), algorithm)))


@agent.command()
@click.option("--config", "config_path", required=True, type=click.Path(path_type=Path))
@click.option("--once", is_flag=True, help="Lease and handle at most one job, then exit.")
@click.option("--verbose", is_flag=True, help="Same as --log-level debug.")
@LOG_LEVEL_OPTION
@LOG_FORMAT_OPTION
def run(config_path: Path, once: bool, verbose: bool, log_level: str, log_format: str) -> None:
    """The poll loop: lease, decide, start, run, report."""
    setup_logging("debug" if verbose else log_level, log_format)
    config = load_agent_config(config_path)
    config.require_key()  # a node never initialised says so before any network call
    config = with_discovered_issuers(config)
    cancel = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        cancel.set()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        worker = open_agent(config, cancel=cancel)
        try:
            worker.run(once=once)
        finally:
            worker.close()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _enroll(
    sts_url: str, node_id: str, token: str, jwk: dict[str, str], trusted: list[str], verify: bool | str
) -> None:
    from agent_client.api.enrollment import enroll as enroll_node

    try:
        node = enroll_node(sts_url, node_id, token, jwk, trusted, verify=verify)
    except JobstsError as exc:
        raise click.ClickException(f"{exc.code}: {exc.message}") from None
    click.echo(f"node {node.get('id')} enrolled: realm {node.get('realm')}, key {jwk.get('kid')}")


@agent.command()
@click.option("--config", "config_path", required=True, type=click.Path(path_type=Path))
@click.option("--join-token", required=True, help="The one-time join token (jobsts node join-token).")
def enroll(config_path: Path, join_token: str) -> None:
    """Register this node's public key at the STS with a one-time join token."""
    config = load_agent_config(config_path)
    key = load_node_key(config.key_file, config.key_algorithm)
    jwk = public_jwk(key.public_key(), config.key_algorithm)
    _enroll(config.sts_url, config.node_id, join_token, jwk, sorted(config.trusted_realms), config.verify_tls)


def config_problems(config: AgentConfig) -> list[str]:
    """Every problem ``check`` can find, one line each (empty when the agent can start)."""
    try:
        config.require_key()
    except JobstsError as exc:
        return [f"{exc.code}: {exc.message}"]
    problems = check_paths(config.protected_files(), private=[config.key_file, *config.credential_files()])
    client: AgentApi | None = None
    try:
        key = load_node_key(config.key_file, config.key_algorithm)
        client = AgentApi.connect(config.sts_url, config.node_id, config.realm, key, config.key_algorithm)
    except JobstsError as exc:
        problems.append(exc.message)
    try:
        trust = TrustStore(
            realms=config.realms, issuer_of=config.issuer, cache_dir=None,
            fetch=client.jwks if client else None, bundles=config.trust.bundles,
            algorithms=config.trust.algorithms, max_age=config.trust.max_age,
        )  # fmt: skip
        problems.extend(trust.problems())
    except JobstsError as exc:
        problems.append(exc.message)
    if config.authz_table.exists():
        with AuthzTable(f"sqlite:///{config.authz_table}") as table:
            try:
                table.version()
            except JobstsError as exc:
                problems.append(exc.message)
    problems.extend(EXECUTORS[config.executor]().problems())
    if client is not None:
        client.close()
    return problems


@agent.command()
@click.option("--config", "config_path", required=True, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print JSON (for scripts).")
@click.option(
    "--online", is_flag=True, help="Also reach the STS: discovery and issuers, JWKS, an agent token, clock skew."
)
@click.pass_context
def check(ctx: click.Context, config_path: Path, as_json: bool, online: bool) -> None:
    """Validate the configuration, file modes, trust store and executor; one line per problem."""
    try:
        config = load_agent_config(config_path)
    except JobstsError as exc:
        if as_json:
            click.echo(json.dumps({"ok": False, "problems": [f"{exc.code}: {exc.message}"]}))
        else:
            click.echo(f"{exc.code}: {exc.message}")
        ctx.exit(1)
    problems = config_problems(config)
    report = check_online(config) if online else None
    if report is not None:
        problems.extend(report.problems)
    # Why: a mapping into sudo, disk, docker and the like is refused per job unless allowed by
    # name; listing them here shows the administrator which allows are in force before any job.
    privileged = privileged_mappings(config.mapping)
    if as_json:
        click.echo(json.dumps({"ok": not problems, "node": config.node_id, "realm": config.realm,
                               "executor": config.executor, "problems": problems,
                               "allow_privileged_groups": sorted(config.mapping.allow_privileged_groups),
                               "privilege_map_allow_groups": sorted(config.mapping.privilege_map.allow_groups),
                               "privileged_mappings": [entry.as_json() for entry in privileged],
                               "online": report.as_json() if report is not None else None}))  # fmt: skip
        ctx.exit(1 if problems else 0)
    for line in problems:
        click.echo(line)
    if not problems:
        click.echo(f"ok: node {config.node_id}, realm {config.realm}, executor {config.executor}")
    for verdict, name, detail in report.lines if report is not None else []:
        if verdict != "fail":  # failures are among the problems above
            click.echo(f"online {name}: {verdict}: {detail}")
    allowed = ", ".join(sorted(config.mapping.allow_privileged_groups)) or "none"
    for entry in privileged:
        click.echo(entry.describe())
    if privileged:
        click.echo(f"privileged groups: allow_privileged_groups = {allowed}")
    if problems:
        ctx.exit(1)


def _read_token(value: str) -> str:
    try:
        if Path(value).is_file():
            return Path(value).read_text(encoding="utf-8").strip()
    except OSError:
        pass  # not a file name: the token itself
    return value.strip()


@agent.command()
@click.option("--config", "config_path", required=True, type=click.Path(path_type=Path))
@click.option("--job", "job_path", required=True, type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--token", default=None, help="The job token, or a file holding it (default: job_token in JOB.json).")
@click.pass_context
def explain(ctx: click.Context, config_path: Path, job_path: Path, token: str | None) -> None:
    """Run the whole decision (a)-(f) for a job without executing it; print each step's verdict."""
    config = with_discovered_issuers(load_agent_config(config_path))  # as agent run matches issuers
    document = json.loads(job_path.read_text(encoding="utf-8"))
    job = document.get("job", document) if isinstance(document, dict) else document
    if token is None:
        token = document.get("job_token") if isinstance(document, dict) else None
        if not isinstance(token, str):
            raise click.UsageError("no --token given and JOB.json has no job_token")
    token = _read_token(token)
    key_client: AgentApi | None = None
    try:
        key_client = AgentApi.connect(
            config.sts_url, config.node_id, config.realm, load_node_key(config.key_file, config.key_algorithm),
            config.key_algorithm, verify=config.verify_tls, audience=config.assertion_audience,
        )  # fmt: skip
    except JobstsError:
        key_client = None
    trust = TrustStore(
        realms=config.realms, issuer_of=config.issuer, cache_dir=config.jwks_cache_dir,
        fetch=key_client.jwks if key_client else None, bundles=config.trust.bundles,
        algorithms=config.trust.algorithms, max_age=config.trust.max_age,
    )  # fmt: skip
    revoked = RevocationSet(key_client.revocations if key_client else None)
    revoked.refresh(force=True)
    journal = StartedJournal(config.journal_file, read_only=True) if config.journal_file.exists() else None
    with AuthzTable(f"sqlite:///{config.authz_table}") as table:
        # Why: the same credential grants as the running agent, so explain never disagrees with it.
        store = CredentialStore(config.credentials) if config.credentials is not None else None
        decider = NodeDecider(
            NodePolicy.from_config(config), trust, table, revoked=revoked, journal=journal,
            credentials=store.infos if store is not None else None,
        )  # fmt: skip
        decision = decider.decide(job, token)
    if journal is not None:
        journal.close()
    if key_client is not None:
        key_client.close()
    click.echo(decision.explain())
    ctx.exit(0 if decision.allowed else 1)


agent.add_command(credentials)

__all__ = ["agent", "config_problems"]
