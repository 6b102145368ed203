"""The public clients of the token endpoint's password and refresh grants (RFC 6749 §2.1).

The code flow's registered clients are in ``clients``; nodes are the client-credentials clients.

A ``client_id`` is copied into the access token (RFC 9068 §2.2), so a value taken as typed would
let anyone stamp tokens with a client name of their choosing. Nodes authenticate with
``private_key_jwt`` (their ``client_id`` is their node id, checked by the client-credentials
grant); people use one of the public clients below, or send no ``client_id`` at all.
"""

from __future__ import annotations

from collections.abc import Container, Mapping

from flask import request

from sts.oauth.errors import ClientAuthenticationUnsupported, ClientUnknown

# The public clients (RFC 6749 §2.1) of this service: the default for requests that name none,
# and the ``jobsts`` command line. A new first-party client is added here, with its reason.
DEFAULT_CLIENT_ID = "jobsts"
PUBLIC_CLIENTS = frozenset({DEFAULT_CLIENT_ID, "jobsts-cli"})


def refuse_basic_authentication() -> None:
    """RFC 6749 §2.3.1 ``client_secret_basic`` is not supported: a Basic ``Authorization`` header
    is refused (401 ``invalid_client`` with a Basic challenge, §5.2), never silently ignored."""
    scheme = request.headers.get("Authorization", "").split(" ", 1)[0].lower()
    if scheme == "basic":
        raise ClientAuthenticationUnsupported(
            "client_secret_basic is not supported: public clients send client_id in the body, "
            "nodes authenticate with private_key_jwt"
        )


def public_client_id(form: Mapping[str, str], realm: str, registered: Container[tuple[str, str]]) -> str:
    """The client named by ``client_id`` (or the default): one of the public clients above, or a
    client registered for ``realm`` (the code flow's, e.g. the console); ``client.unknown`` otherwise."""
    value = form.get("client_id") or DEFAULT_CLIENT_ID
    if value not in PUBLIC_CLIENTS and (realm, value) not in registered:
        raise ClientUnknown(f"client_id {value[:64]!r} is not a registered client of this service")
    return value
