"""Error codes of the agent's credential store, after the JS7 agent's error catalogue
(docs/errors.md, "Credential store")."""

from __future__ import annotations

from typing import ClassVar

from agent_client.errors import AgentConfigInvalid, ExecError
from realms.errors import InputError


class CredentialMissing(InputError):
    """The credential key is not in the store (JS7's WINDOWS-1168 "element not found")."""

    code: ClassVar[str] = "credential.missing"


class CredentialForeign(InputError):
    """The key was added by another OS account than the one the agent runs as."""

    code: ClassVar[str] = "credential.foreign"


class CredentialNotGranted(InputError):
    """No principal of the job holds the job's role on scope ``credential:<key>``."""

    code: ClassVar[str] = "credential.not_granted"


class CredentialUnsuitable(InputError):
    """The credential has no secret of the kind this use needs (a password for sudo, say)."""

    code: ClassVar[str] = "credential.unsuitable"


class CredentialStoreInvalid(AgentConfigInvalid):
    """The store or its key file is missing, unreadable, or does not decrypt."""

    code: ClassVar[str] = "credential.store_invalid"


class CredentialBadInput(InputError):
    """``credentials add`` was given a bad key name, user, key file or passphrase."""

    code: ClassVar[str] = "credential.bad_input"


class CredentialWrongPassword(ExecError):
    """The password of the credential was refused (SSH login or sudo): JS7's WINDOWS-1326."""

    code: ClassVar[str] = "credential.wrong_password"
