"""The ``ldap`` backend's TLS policy: certificate and host name checks on by default (RFC 4513 §3.1.3)."""

from __future__ import annotations

import ssl
from typing import Any

from ldap3 import Tls


class VerifiedTls(Tls):
    """ldap3 ``Tls`` with the standard library's certificate *and* hostname checks (RFC 4513 §3.1.3)."""

    def __init__(self, ca_file: str | None, verify: bool) -> None:
        super().__init__(validate=ssl.CERT_REQUIRED if verify else ssl.CERT_NONE, ca_certs_file=ca_file)
        # Why: ldap3's own Tls switches the context's hostname check off and does its own
        # matching afterwards; the standard library checks chain and name during the handshake,
        # before any LDAP byte (or password) is sent.
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca_file)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if not verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        self._context = context

    def wrap_socket(self, connection: Any, do_handshake: bool = False) -> None:
        connection.socket = self._context.wrap_socket(
            connection.socket, server_hostname=connection.server.host, do_handshake_on_connect=do_handshake
        )
