"""A credential key on a local job: the password sudo asks for, answered on a pipe.

An agent that runs as a service account starts jobs with ``sudo -u ACCOUNT``. Where sudoers
asks that account for a password, a job may name a credential key holding it: by default
sudo asks for the invoking account's own password (the agent's), and with ``Defaults
targetpw`` (or ``runaspw``) for the target's. So the key's user must be the agent's own
account or the mapped account; anything else is refused before the job starts.
"""

from __future__ import annotations

import os
import pwd

from agent_client.credentials.errors import CredentialUnsuitable
from agent_client.credentials.store import CredentialInfo, CredentialStore, Secret
from agent_client.mapping import Account
from realms.errors import JobstsError


def agent_account() -> str:
    """The name of the account the agent runs as (sudo's invoking user)."""
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return str(os.getuid())


def check_local_credential(info: CredentialInfo, account: Account) -> CredentialInfo:
    """Step (f) for a local job that names a credential: a password, of the agent or of ``account``."""
    if info.kind != "password" or not info.has_password:
        raise CredentialUnsuitable(
            f"credential {info.key!r} holds an SSH key; a local job can use only a password (for sudo)", key=info.key
        )
    me = agent_account()
    # Why: the password is typed into sudo's prompt, which asks either for the agent's own
    # password or (targetpw) for the target's; a key for any third account is a mistake at
    # best and a way to try someone's password at worst.
    if info.user not in (me, account.name):
        raise CredentialUnsuitable(
            f"credential {info.key!r} is for user {info.user}; sudo asks for the password of the agent's "
            f"account ({me}) or of the mapped account ({account.name})",
            key=info.key,
        )
    return info


def describe_local(info: CredentialInfo) -> str:
    return f"sudo password from credential {info.key} (user {info.user})"


def open_sudo_password(store: CredentialStore | None, info: CredentialInfo) -> bytes:
    """The password line to write to ``sudo -S`` (opened only to run the job)."""
    if store is None:
        raise JobstsError("the agent has no credential store configured")
    secret: Secret = store.secret(info.key)
    password = secret.password or ""
    # Why: sudo reads one line; a newline inside would end the password early and leave the
    # rest on the job's standard input.
    if not password or "\n" in password or "\r" in password or "\0" in password:
        raise CredentialUnsuitable(f"credential {info.key!r}: its password cannot be typed on one line", key=info.key)
    return password.encode("utf-8") + b"\n"
