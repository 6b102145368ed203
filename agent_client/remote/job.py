"""What the decision settles for a job on a remote host: which host, which credential, which user.

The remote host is part of the authorization scope: ``remote:<name>`` covers the job next to
the node-wide ``*`` (and its authorization group), so a table entry can allow a role on one
remote host only. A job on a remote host must name a credential key (or carry a login given
at submit), and may ask to sudo to a substitute user only if the host's ``sudo_users`` lists
that user.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from agent_client.credentials.store import CredentialInfo, Secret
from agent_client.errors import JobInvalid
from agent_client.remote.errors import RemoteSudoNotAllowed, RemoteUnknownHost
from agent_client.remote.hosts import RemoteHost
from authz_tables.entries import Scope
from realms.errors import JobstsError


@dataclass(frozen=True, slots=True)
class RemoteJob:
    """Where a decided remote job runs and as whom; holds no secret."""

    host: RemoteHost
    credential: CredentialInfo
    sudo_user: str | None = None

    @property
    def account(self) -> str:
        """The account the job runs as, as the result reports it: ``user@host``."""
        return f"{self.sudo_user or self.credential.user}@{self.host.name}"

    def describe(self) -> str:
        login = (
            f"{self.credential.user}@{self.host.name} with credential {self.credential.key} ({self.credential.kind})"
        )
        sudo = f", then sudo to {self.sudo_user}" if self.sudo_user else ""
        return f"remote login {login}{sudo}; host key pinned {self.host.host_key.fingerprint}"


def remote_host_for(name: str, hosts: Mapping[str, RemoteHost], node_id: str) -> RemoteHost:
    """The configured remote host ``name``; an unknown name is refused, never looked up in DNS."""
    host = hosts.get(name)
    if host is None:
        raise RemoteUnknownHost(
            f"node {node_id} has no remote host {name[:64]!r} in [remote_hosts]; "
            "add it with its address, port and pinned host_key",
            host=name[:64],
        )
    return host


def remote_scope(host: RemoteHost) -> Scope:
    return Scope(host.name, "remote")


def remote_job(host: RemoteHost, credential: CredentialInfo | None, sudo_user: str | None) -> RemoteJob:
    """Step (f) for a remote job: the credential gives the login; sudo only to listed users."""
    if credential is None:
        raise JobInvalid(
            f"a job on remote host {host.name} needs spec.credential (a key of the agent's credential store)",
            field="credential",
        )
    # Why: the host's administrator decides whom a login may become; the job only picks among them.
    if sudo_user is not None and sudo_user not in host.sudo_users:
        raise RemoteSudoNotAllowed(
            f"remote host {host.name} does not allow sudo to {sudo_user!r} (sudo_users: "
            f"{', '.join(sorted(host.sudo_users)) or 'none'})",
            host=host.name,
            user=sudo_user,
        )
    return RemoteJob(host, credential, sudo_user)


def submitted_credential(
    submitted: Secret | JobstsError, host: RemoteHost | None, key: CredentialInfo | None
) -> CredentialInfo:
    """What the decision may know of a login given at submit (its user), or why it is refused."""
    if isinstance(submitted, JobstsError):
        raise submitted
    if host is None or key is not None:
        raise JobInvalid(
            "a login given at submit needs spec.remote_host and no spec.credential", field="remote_credentials"
        )
    return CredentialInfo(submitted.key, submitted.user, "password", -1, 0, True, False)
