"""Who may use a credential key: the node's authorization table, on scope ``credential:<key>``.

Without this rule any submitter authorized to run jobs on the node could use every secret
the agent holds. The job's principals must hold the job's required role on exactly the
key's scope; a grant on the node-wide scope ``*`` lets a principal run jobs, but never opens
every stored secret. A deny on either scope wins, as everywhere in the table.
"""

from __future__ import annotations

from collections.abc import Mapping

from agent_client.authorization import Decider, Principals
from agent_client.credentials.errors import CredentialNotGranted
from agent_client.credentials.store import CredentialInfo, check_key_name, check_owner, missing
from authz_tables.entries import Scope
from authz_tables.roles import Role


def credential_scope(key: str) -> Scope:
    """The scope ``credential:<key>`` a table entry names to grant the use of ``key``."""
    return Scope(check_key_name(key), "credential")


def check_credential_use(
    table: Decider, principals: Principals, role: Role, key: str, infos: Mapping[str, CredentialInfo]
) -> CredentialInfo:
    """Refuse unless ``key`` exists, was added by the agent's account, and is granted to the job's
    principals with ``role`` on ``credential:<key>``; returns the key's (secret-free) description."""
    scope = credential_scope(key)
    info = infos.get(key)
    if info is None:
        raise missing(key)
    check_owner(info)
    decision = table.decide(principals.keys, role, (scope,))
    if not decision.allowed and decision.denying:
        raise CredentialNotGranted(
            f"credential key {key!r}: {decision.reason}", key=key, principal=decision.subject, role=role.value
        )
    # Why: only a grant that names this key counts; "*" covers running jobs, not using secrets.
    named = [entry for entry in decision.granting if entry.scope == scope]
    if not named:
        raise CredentialNotGranted(
            f"credential key {key!r} is not granted to {decision.subject}: no entry gives a role implying {role} "
            f"on {scope}; grant it with `jobsts authz grant ACCESS_ID {role} --scope {scope}`",
            key=key,
            principal=decision.subject,
            role=role.value,
        )
    return info


def describe_grant(info: CredentialInfo, principals: Principals, role: Role) -> str:
    scope = credential_scope(info.key)
    return f"credential {info.key} (user {info.user}) granted to {principals.subject} with {role} on {scope}"
