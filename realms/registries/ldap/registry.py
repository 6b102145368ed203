"""The ``ldap`` registry backend (ldap3): search with a service account, then bind as the user.

Login (RFC 4513 §5.1.3 "name/password authentication"), in order:

1. refuse empty, whitespace-only, SASLprep-empty and oversized input (``realms.identity.credentials``);
2. search ``user_base`` with the service account (``realms.registries.ldap.search``) for
   ``(&(objectClass=C)(A=<name>))``, the name one AssertionValue of its own
   (``realms.registries.ldap.wire``, which encodes the login's requests without pyasn1);
   exactly one entry must match;
3. bind as the DN the *server* returned, on a pooled connection used for nothing but user
   binds (``realms.registries.ldap.pool``): never on a service connection;
4. resolve groups (member search, ``memberOf`` or posixGroup ``memberUid``), nested ones with
   cycle detection and a depth limit (``realms.registries.groups``). The direct groups are
   read live; their closure may come from a short cache (``group_cache_seconds``). Group
   searches are paged (RFC 2696) up to ``max_groups``.

Outages (refused, timeout, TLS failure, busy/unavailable) raise ``RegistryUnavailable``;
bad credentials of any kind return ``None``; a right password whose directory answer cannot go
into a token (too many groups, values that are not UTF-8 text) raises ``RegistryRefused``.
Settings: ``realms.registries.ldap.config``.
"""

from __future__ import annotations

import logging
import secrets
from typing import Literal

from ldap3 import NONE, SIMPLE, SYNC, Connection, Server
from ldap3.core.exceptions import LDAPException, LDAPSASLPrepError, LDAPStartTLSError
from ldap3.utils.config import set_config_parameter
from ldap3.utils.log import set_library_log_hide_sensitive_data

from realms.errors import RegistryTLSError, RegistryUnavailable
from realms.identity.credentials import usable_password, usable_username
from realms.identity.principal import Principal
from realms.registries.directory import is_locked
from realms.registries.ldap import wire
from realms.registries.ldap.config import LdapRegistryConfig
from realms.registries.ldap.group_reader import GroupReader
from realms.registries.ldap.pool import ConnectionPool, close_connection
from realms.registries.ldap.search import ServiceSearch, describe
from realms.registries.ldap.tls import VerifiedTls
from realms.registries.ldap.values import DecodedEntry

log = logging.getLogger(__name__)

# Why: ldap3's own debug logging would otherwise write bind passwords into log files.
set_library_log_hide_sensitive_data(True)
# Why: ldap3 would decode a DN that is not UTF-8 as Latin-1 or KOI8-R, so two different byte
# strings could give one name; without fallbacks such a DN fails to decode and is refused.
set_config_parameter("ADDITIONAL_SERVER_ENCODINGS", [])

# RFC 4511 result codes that are a verdict on the credentials, not an outage.
_BAD_CREDENTIALS = {49, 53}  # invalidCredentials, unwillingToPerform (e.g. locked, unauthenticated bind)


class LdapRegistry:
    """A realm's LDAP directory; safe to share between threads (see the module docstring)."""

    def __init__(self, realm: str, config: LdapRegistryConfig) -> None:
        self.realm = realm
        self.config = config
        tls = VerifiedTls(config.ca_file, config.tls_verify) if config.use_ssl or config.start_tls else None
        self._server = Server(
            config.host,
            port=config.port,
            use_ssl=config.use_ssl,
            tls=tls,
            get_info=NONE,
            connect_timeout=config.connect_timeout,
        )
        wait = config.connect_timeout + config.receive_timeout
        self.service_pool = ConnectionPool("service", config.pool_size, self._service_connection, wait)
        # Why a pool of its own: a connection's identity is whoever bound last, so a connection
        # that carried a user's bind never goes back to the service pool (RFC 4513 §5.1).
        self.bind_pool = ConnectionPool("bind", config.pool_size, self._bind_connection, wait)
        self.search = ServiceSearch(realm, config, self.service_pool, self._unavailable)
        self.groups = GroupReader(realm, config, self.search)
        # Why: unknown, ambiguous and locked users get a bind too (to this DN, which does not
        # exist), so a failed login costs the same directory work whatever the reason (no user
        # enumeration by timing; tests/security/test_ldap.py counts the operations).
        self._decoy_dn = f"cn=jobsts-decoy-{secrets.token_hex(8)},{config.schema.user_base}"

    # -- connections -----------------------------------------------------------------

    def _unavailable(self, reason: str) -> RegistryUnavailable:
        return RegistryUnavailable(
            f"realm {self.realm}: directory {self.config.url} did not answer: {reason}",
            realm=self.realm,
            url=self.config.url,
        )

    def _connect(
        self, user: str | None, password: str | None, authentication: Literal["SIMPLE"] | None = None
    ) -> Connection:
        """Open a connection, StartTLS when configured, and return it unbound."""
        conn = Connection(
            self._server,
            user=user,
            password=password,
            authentication=authentication,
            client_strategy=SYNC,
            auto_bind=False,
            # Why: a referral could send the search, or the user's password, to another server.
            auto_referrals=False,
            receive_timeout=self.config.receive_timeout,
            raise_exceptions=False,
            read_only=True,
            check_names=False,
        )
        try:
            conn.open()
            if self.config.start_tls:
                # Why: if StartTLS fails we stop here, before any bind puts a password on the wire.
                conn.start_tls()
        except LDAPStartTLSError as exc:
            _close(conn)
            raise RegistryTLSError(
                f"realm {self.realm}: TLS to {self.config.url} failed: {exc}", realm=self.realm, url=self.config.url
            ) from None
        except (LDAPException, OSError) as exc:
            _close(conn)
            if self.config.use_ssl and "ssl" in str(exc).lower():
                raise RegistryTLSError(
                    f"realm {self.realm}: TLS to {self.config.url} failed: {exc}",
                    realm=self.realm,
                    url=self.config.url,
                ) from None
            raise self._unavailable(str(exc) or type(exc).__name__) from None
        return conn

    def _service_connection(self) -> Connection:
        conn = self._connect(self.config.bind_dn or None, self.config.bind_password or None)
        try:
            ok = conn.bind()
        except LDAPException as exc:
            _close(conn)
            raise self._unavailable(str(exc) or type(exc).__name__) from None
        if not ok:
            result = conn.result
            _close(conn)
            raise self._unavailable(f"service account bind refused ({result.get('description')})")
        return conn

    def _bind_connection(self) -> Connection:
        """An open, unbound connection for user binds (simple binds, RFC 4513 §5.1.3)."""
        return self._connect(None, None, SIMPLE)

    # -- users and groups --------------------------------------------------------------

    def _find_user(self, username: str) -> DecodedEntry | None:
        if not usable_username(username):
            return None
        schema = self.config.schema
        attributes = [schema.user_attribute, schema.display_name_attribute, "pwdAccountLockedTime"]
        if not schema.uses_dn:
            attributes.append(schema.unique_id)
        if schema.group_mode == "memberOf":
            attributes.append("memberOf")
        # Why: the name is an AssertionValue of its own (its UTF-8 bytes, RFC 4511 §4.5.1.7),
        # never text of a filter string, so "*", "(" or ")" in it cannot change the filter.
        filter_ = wire.all_of(
            wire.equality("objectClass", schema.user_object_class), wire.equality(schema.user_attribute, username)
        )
        found = self.search(schema.user_base, filter_, "SUBTREE", attributes, limit=2)
        # Why: exactly one entry; with two, either password could log in as "the" user.
        if len(found) != 1:
            return None
        # Why: server-side ppolicy refuses the bind too; checking here also covers lookup().
        return None if is_locked(found[0].attrs, any_value=False) else found[0]

    def _principal(self, user: DecodedEntry, username: str) -> Principal | None:
        schema = self.config.schema
        display_attribute = schema.display_name_attribute.lower()
        if problem := user.problem(ignore=(display_attribute,)):
            raise self.search.value_invalid(f"user entry {user.dn!r}", problem)
        if user.problem():
            log.warning("realm %s: %s of %s is not UTF-8 text; not shown", self.realm, display_attribute, user.dn)
        dn, attrs = user.dn, user.attrs
        access_id = schema.user_id(self.realm, dn, attrs)
        if access_id is None:
            log.warning("realm %s: user %s has no usable %s", self.realm, dn, schema.unique_id)
            return None
        names = attrs.get(schema.user_attribute.lower(), [])
        name = next((n for n in names if n.casefold() == username.casefold()), names[0] if names else username)
        groups = frozenset(
            aid
            for gdn, gattrs in self.groups.groups(user, name)
            if (aid := schema.group_id(self.realm, gdn, gattrs)) is not None
        )
        display = (attrs.get(display_attribute) or [name])[0]
        return Principal(self.realm, name, access_id, display, groups)

    def _bind(self, dn: str, password: str) -> bool:
        """Bind as ``dn`` on a pooled bind-only connection (never a service connection).

        Never retried: a bind that may have reached the server counts against the account's
        lockout there. A dead pooled connection is found before anything is sent (``pool``).
        """
        try:
            with self.bind_pool.borrow() as (conn, _reused):
                try:
                    result = wire.bind(conn, dn, wire.simple_password(password))
                except LDAPSASLPrepError:
                    # Why: a password SASLprep prohibits (RFC 4013 §2.3) is never sent; that is
                    # a wrong password, not an outage (it must get the same answer).
                    return False
                except LDAPException as exc:
                    raise self._unavailable(str(exc) or type(exc).__name__) from None
                if result.code == 0:
                    return True
                if result.code in _BAD_CREDENTIALS:
                    return False
                raise self._unavailable(f"bind failed ({describe(result.code)})")
        except TimeoutError as exc:
            raise self._unavailable(str(exc)) from None

    # -- Registry -----------------------------------------------------------------------

    def authenticate(self, username: str, password: str) -> Principal | None:
        """Search, bind as the returned DN, resolve groups (module docstring); None for bad credentials."""
        # Why: RFC 4513 §5.1.2: an empty password would be an unauthenticated bind that succeeds.
        if not usable_password(password) or not usable_username(username):
            return None
        user = self._find_user(username)
        if user is None:
            self._bind(self._decoy_dn, password)
            return None
        if not self._bind(user.dn, password):
            return None
        return self._principal(user, username)

    def lookup(self, username: str) -> Principal | None:
        """The principal for ``username`` without a password (None when unknown, ambiguous or locked)."""
        user = self._find_user(username)
        return None if user is None else self._principal(user, username)

    def close(self) -> None:
        """Unbind every pooled connection."""
        self.service_pool.close()
        self.bind_pool.close()


def _close(conn: Connection) -> None:
    close_connection(conn)
