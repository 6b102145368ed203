"""Identity for jobsts: realms, access IDs, principals, user registries and token claim profiles.

This package is the vocabulary every other jobsts package shares. It imports nothing from
``sts``, ``authz_tables`` or ``agent_client``.
"""

from realms.identity.access_id import AccessId, AccessIdKind
from realms.errors import ConfigError, InputError, JobstsError, UnavailableError
from realms.identity.principal import Principal

__all__ = [
    "AccessId",
    "AccessIdKind",
    "ConfigError",
    "InputError",
    "JobstsError",
    "Principal",
    "UnavailableError",
]
