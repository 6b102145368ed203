"""Error codes of jobs on remote hosts (docs/errors.md, "Remote hosts")."""

from __future__ import annotations

from typing import ClassVar

from agent_client.errors import ExecError, JobInvalid


class RemoteUnknownHost(JobInvalid):
    """The job names a remote host that is not in the agent's ``[remote_hosts]``."""

    code: ClassVar[str] = "remote.unknown_host"


class RemoteSudoNotAllowed(JobInvalid):
    """The job asks for sudo to a user the remote host's ``sudo_users`` does not list."""

    code: ClassVar[str] = "remote.sudo_not_allowed"


class RemoteError(ExecError):
    """Root of failures while running a job on a remote host."""

    code: ClassVar[str] = "remote.failed"


class RemoteUnreachable(RemoteError):
    """The remote host could not be reached, or the SSH handshake failed."""

    code: ClassVar[str] = "remote.unreachable"


class RemoteHostKeyMismatch(RemoteError):
    """The host key the server presented is not the pinned one: the job is not sent."""

    code: ClassVar[str] = "remote.host_key_mismatch"


class RemoteAuthFailed(RemoteError):
    """The remote host refused the login with the credential's private key (or the method)."""

    code: ClassVar[str] = "remote.auth_failed"


class RemoteSudoFailed(RemoteError):
    """sudo on the remote host refused to switch to the substitute user."""

    code: ClassVar[str] = "remote.sudo_failed"
