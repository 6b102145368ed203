"""Agent error codes (docs/errors.md, "Agent").

Token refusals reuse ``realms.tokens.errors`` (``token.replayed``, ``token.revoked``,
``token.job_mismatch``, ...); authorization refusals reuse ``authz.denied`` from
``authz_tables``. The codes here are the agent's own: configuration, trust store, job
shape, mapping, execution and the STS client.
"""

from __future__ import annotations

from typing import ClassVar

from realms.errors import ConfigError, InputError, JobstsError, UnavailableError


class AgentConfigInvalid(ConfigError):
    """The agent TOML is wrong: one line naming the file and the field."""

    code: ClassVar[str] = "agent.config"


class UnsafeFileMode(ConfigError):
    """A configuration, key, table or trust file (or a parent directory) could be changed by others."""

    code: ClassVar[str] = "agent.file_mode"


class NodeKeyMissing(ConfigError):
    """The node's private key file does not exist: the node was never initialised here."""

    code: ClassVar[str] = "agent.key_missing"


class TrustUnavailable(UnavailableError):
    """A trusted realm's keys could not be fetched and the cached copy is older than the staleness bound."""

    code: ClassVar[str] = "trust.unavailable"


class JobInvalid(InputError):
    """The leased job is not of the contract's shape (argv, env, cwd, timeout, authgroup)."""

    code: ClassVar[str] = "agent.job_invalid"


class JobUnknownType(InputError):
    """The job type is not in the node's ``[job_types]`` table: no implicit defaults."""

    code: ClassVar[str] = "job.unknown_type"


class JobUnknownAuthgroup(InputError):
    """The job names an authorization group this node does not have."""

    code: ClassVar[str] = "job.unknown_authgroup"


class MapNoAccount(InputError):
    """No mapping rule, no user equivalency, and the fallback policy is deny (or names a missing account)."""

    code: ClassVar[str] = "map.no_account"


class MapRootRefused(InputError):
    """The mapped account has uid 0 or gid 0 (or is in group 0) and ``allow_root`` is not set."""

    code: ClassVar[str] = "map.root_refused"


class MapBadAccount(InputError):
    """An account or group name does not match the strict name pattern."""

    code: ClassVar[str] = "map.bad_account"


class ExecError(JobstsError):
    """Root of execution failures."""

    code: ClassVar[str] = "exec.failed"


class ExecDropFailed(ExecError):
    """The child could not drop to the mapped account, or could still regain root: the job did not run."""

    code: ClassVar[str] = "exec.drop_failed"


class ExecCwdRefused(ExecError):
    """The working directory could not be entered as the mapped account."""

    code: ClassVar[str] = "exec.cwd"


class ExecTimeout(ExecError):
    """The job ran past its timeout and its process group was killed."""

    code: ClassVar[str] = "exec.timeout"


class ExecCancelled(ExecError):
    """The job was cancelled and its process group was killed."""

    code: ClassVar[str] = "exec.cancelled"


class ExecUnavailable(ExecError):
    """The configured executor cannot work here (setuid without root, sudo missing, self for another account)."""

    code: ClassVar[str] = "exec.unavailable"


class StsUnavailable(UnavailableError):
    """The STS could not be reached (``http_status`` None) or answered with a server error."""

    code: ClassVar[str] = "agent.sts_unavailable"


class StsRefused(InputError):
    """The STS refused a request (bad client assertion, unknown node, bad request); ``problem_code`` is its code."""

    code: ClassVar[str] = "agent.sts_refused"


class SessionMissing(InputError):
    """No stored login for this STS, or one that can no longer be refreshed."""

    code: ClassVar[str] = "session.missing"


class LeaseLost(InputError):
    """The STS says this node no longer holds the job's lease (409 ``job.lease_lost``)."""

    code: ClassVar[str] = "agent.lease_lost"


class AgentInternalError(JobstsError):
    """An unexpected error inside the decision; the job is refused (fail closed) and the log has details."""

    code: ClassVar[str] = "agent.internal"


class AgentStateBusy(UnavailableError):
    """Another agent process holds the node's durable record of started jobs (one agent per state dir)."""

    code: ClassVar[str] = "agent.state_busy"
