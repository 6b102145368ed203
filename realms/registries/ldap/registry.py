"""The ``ldap`` registry backend (ldap3): search with a service account, then bind as the user.

Login (RFC 4513 §5.1.3 "name/password authentication"), in order:

1. refuse empty, whitespace-only, SASLprep-empty and oversized input (``realms.identity.credentials``);
2. search ``user_base`` with the service account for ``(&(objectClass=C)(A=<escaped name>))``
   (RFC 4515 escaping); exactly one entry must match;
3. bind as the DN the *server* returned, on a fresh connection that is never pooled;
4. resolve groups (member search, ``memberOf`` or posixGroup ``memberUid``), nested ones with
   cycle detection and a depth limit (``realms.registries.groups``).

Outages (refused, timeout, TLS failure, busy/unavailable) raise ``RegistryUnavailable``;
bad credentials of any kind return ``None``. Settings: ``realms.registries.ldap.config``.
"""

from __future__ import annotations

import logging
import queue
import secrets
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Literal, TypeVar

from ldap3 import BASE, NONE, SUBTREE, SYNC, Connection, Server
from ldap3.core.exceptions import LDAPException, LDAPSASLPrepError, LDAPStartTLSError
from ldap3.utils.conv import escape_filter_chars
from ldap3.utils.log import set_library_log_hide_sensitive_data

from realms.errors import RegistryTLSError, RegistryUnavailable
from realms.identity.credentials import usable_password, usable_username
from realms.identity.principal import Principal
from realms.registries.directory import dn_key, is_locked, is_under
from realms.registries.groups import resolve_nested
from realms.registries.ldap.config import LdapRegistryConfig
from realms.registries.ldap.tls import VerifiedTls

log = logging.getLogger(__name__)

# Why: ldap3's own debug logging would otherwise write bind passwords into log files.
set_library_log_hide_sensitive_data(True)

# RFC 4511 result codes that are a verdict on the credentials, not an outage.
_BAD_CREDENTIALS = {49, 53}  # invalidCredentials, unwillingToPerform (e.g. locked, unauthenticated bind)
_SIZE_LIMIT_EXCEEDED = 4
_REFERRAL = 10
_NO_SUCH_OBJECT = 32
_GROUP_SIZE_LIMIT = 1000
T = TypeVar("T")
Scope = Literal["BASE", "LEVEL", "SUBTREE"]

Entry = tuple[str, dict[str, list[str]]]  # (dn as the server returned it, attrs by lower-case name)


def _decode(raw: dict[str, list[bytes]]) -> dict[str, list[str]]:
    return {name.lower(): [v.decode("utf-8", "replace") for v in values] for name, values in raw.items()}


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
        self._idle: queue.LifoQueue[Connection] = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(config.pool_size)
        self._closed = False
        # Why: unknown, ambiguous and locked users get a bind too (to this DN, which does not
        # exist), so a failed login costs the same round trips whatever the reason (no user
        # enumeration by timing; found by tests/security/test_ldap.py).
        self._decoy_dn = f"cn=jobsts-decoy-{secrets.token_hex(8)},{config.schema.user_base}"

    # -- connections -----------------------------------------------------------------

    def _unavailable(self, reason: str) -> RegistryUnavailable:
        return RegistryUnavailable(
            f"realm {self.realm}: directory {self.config.url} did not answer: {reason}",
            realm=self.realm,
            url=self.config.url,
        )

    def _connect(self, user: str | None, password: str | None) -> Connection:
        """Open a connection, StartTLS when configured, and return it unbound."""
        conn = Connection(
            self._server,
            user=user,
            password=password,
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

    @contextmanager
    def _borrow(self) -> Iterator[tuple[Connection, bool]]:
        if not self._slots.acquire(timeout=self.config.connect_timeout + self.config.receive_timeout):
            raise self._unavailable("all pooled connections are busy")
        try:
            try:
                conn, reused = self._idle.get_nowait(), True
            except queue.Empty:
                conn, reused = self._service_connection(), False
            healthy = False
            try:
                yield conn, reused
                healthy = True
            finally:
                if healthy and not self._closed:
                    self._idle.put(conn)
                else:
                    _close(conn)
        finally:
            self._slots.release()

    def _with_service(self, operation: Callable[[Connection], T]) -> T:
        """Run ``operation`` on a pooled service connection; a stale pooled one is replaced once."""
        for attempt in (1, 2):
            try:
                with self._borrow() as (conn, reused):
                    try:
                        return operation(conn)
                    except LDAPException as exc:
                        if reused and attempt == 1:
                            log.info("realm %s: pooled connection failed (%s); reconnecting", self.realm, exc)
                            raise _Retry from None
                        raise self._unavailable(str(exc) or type(exc).__name__) from None
            except _Retry:
                continue
        raise AssertionError("unreachable")

    def _search(
        self,
        base: str,
        filter_: str,
        scope: Scope,
        attributes: list[str],
        limit: int,
        *,
        missing_ok: bool = False,
        complete: bool = False,
    ) -> list[Entry]:
        """Search; ``missing_ok`` lets a missing base mean "no entries" (a group read by DN);
        ``complete`` refuses a result the server cut short at its size limit."""

        def run(conn: Connection) -> list[Entry]:
            conn.search(base, filter_, search_scope=scope, attributes=attributes, size_limit=limit)
            code = conn.result.get("result")
            if code == _NO_SUCH_OBJECT and not missing_ok:
                # A missing user_base or group_base is a configuration problem, not bad credentials.
                raise self._unavailable(f"search base {base!r} does not exist or is not visible")
            if code not in (0, _SIZE_LIMIT_EXCEEDED, _REFERRAL, _NO_SUCH_OBJECT):
                raise self._unavailable(f"search failed ({conn.result.get('description')})")
            if code == _SIZE_LIMIT_EXCEEDED and complete:
                # Why: a truncated group list would drop groups a node's table may deny; fail
                # closed rather than vouch for some of the user's groups.
                raise self._unavailable(f"more entries under {base!r} than the directory returns at once")
            # Why: search references (searchResRef) are skipped, never followed.
            return [
                (item["dn"], _decode(item["raw_attributes"]))
                for item in conn.response or []
                if item.get("type") == "searchResEntry"
            ]

        return self._with_service(run)

    # -- users and groups --------------------------------------------------------------

    def _find_user(self, username: str) -> Entry | None:
        if not usable_username(username):
            return None
        schema = self.config.schema
        attributes = [schema.user_attribute, schema.display_name_attribute, "pwdAccountLockedTime"]
        if not schema.uses_dn:
            attributes.append(schema.unique_id)
        if schema.group_mode == "memberOf":
            attributes.append("memberOf")
        # Why: the name is escaped (RFC 4515 §3) so "*", "(" or ")" cannot change the filter.
        escaped = escape_filter_chars(username)
        filter_ = f"(&(objectClass={schema.user_object_class})({schema.user_attribute}={escaped}))"
        found = self._search(schema.user_base, filter_, SUBTREE, attributes, limit=2)
        # Why: exactly one entry; with two, either password could log in as "the" user.
        if len(found) != 1:
            return None
        dn, attrs = found[0]
        # Why: server-side ppolicy refuses the bind too; checking here also covers lookup().
        return None if is_locked(attrs, any_value=False) else (dn, attrs)

    def _class_filter(self) -> str:
        classes = "".join(f"(objectClass={c})" for c in self.config.schema.group_object_classes)
        return f"(|{classes})"

    def _groups(self, user_dn: str, attrs: dict[str, list[str]], username: str) -> list[Entry]:
        schema = self.config.schema
        wanted = [] if schema.uses_dn else [schema.unique_id]
        found: dict[str, Entry] = {}

        def record(entries: list[Entry]) -> set[str]:
            keys = set()
            for dn, group_attrs in entries:
                # is_under() is False for a DN that does not parse, so dn_key() below is safe.
                if is_under(dn, schema.group_base):
                    found.setdefault(dn_key(dn), (dn, group_attrs))
                    keys.add(dn_key(dn))
            return keys

        if schema.group_mode == "posix":
            filter_ = f"(&{self._class_filter()}(memberUid={escape_filter_chars(username)}))"
            direct = record(self._search(schema.group_base, filter_, SUBTREE, wanted, _GROUP_SIZE_LIMIT, complete=True))
        elif schema.group_mode == "member":

            def members_of(dns: list[str]) -> list[Entry]:
                terms = "".join(
                    f"(member={escape_filter_chars(d)})(uniqueMember={escape_filter_chars(d)})" for d in dns
                )
                filter_ = f"(&{self._class_filter()}(|{terms}))"
                return self._search(schema.group_base, filter_, SUBTREE, wanted, _GROUP_SIZE_LIMIT, complete=True)

            direct = record(members_of([user_dn]))

            def parents_member(level: frozenset[str]) -> set[str]:
                return record(members_of([found[k][0] for k in sorted(level)]))

            parents_of: Callable[[frozenset[str]], set[str]] = parents_member
        else:
            member_of: dict[str, list[str]] = {}

            def read_groups(dns: list[str]) -> set[str]:
                keys = set()
                for dn in dns:
                    if not is_under(dn, schema.group_base):
                        continue
                    entries = self._search(dn, self._class_filter(), BASE, [*wanted, "memberOf"], 1, missing_ok=True)
                    for key in record(entries):
                        member_of[key] = found[key][1].get("memberof", [])
                        keys.add(key)
                return keys

            direct = read_groups(attrs.get("memberof", []))

            def parents_memberof(level: frozenset[str]) -> set[str]:
                return read_groups([p for k in sorted(level) for p in member_of.get(k, [])])

            parents_of = parents_memberof
        if schema.group_mode == "posix":
            keys = frozenset(direct)
        else:
            keys = resolve_nested(
                direct, parents_of, nested=schema.nested, max_depth=schema.max_depth, realm=self.realm
            )
        return [found[k] for k in sorted(keys)]

    def _principal(self, dn: str, attrs: dict[str, list[str]], username: str) -> Principal | None:
        schema = self.config.schema
        access_id = schema.user_id(self.realm, dn, attrs)
        if access_id is None:
            log.warning("realm %s: user %s has no usable %s", self.realm, dn, schema.unique_id)
            return None
        names = attrs.get(schema.user_attribute.lower(), [])
        name = next((n for n in names if n.casefold() == username.casefold()), names[0] if names else username)
        groups = frozenset(
            aid
            for gdn, gattrs in self._groups(dn, attrs, name)
            if (aid := schema.group_id(self.realm, gdn, gattrs)) is not None
        )
        display = (attrs.get(schema.display_name_attribute.lower()) or [name])[0]
        return Principal(self.realm, name, access_id, display, groups)

    def _bind(self, dn: str, password: str) -> bool:
        """Bind as ``dn`` on a fresh connection that is closed right after (never pooled)."""
        conn = self._connect(dn, password)
        try:
            try:
                if conn.bind():
                    return True
            except LDAPSASLPrepError:
                # Why: ldap3 refuses to send a password SASLprep prohibits (RFC 4013 §2.3); that
                # is a wrong password, not an outage (it must get the same answer as one).
                return False
            except LDAPException as exc:
                raise self._unavailable(str(exc) or type(exc).__name__) from None
            code = conn.result.get("result")
            if code in _BAD_CREDENTIALS:
                return False
            raise self._unavailable(f"bind failed ({conn.result.get('description')})")
        finally:
            _close(conn)

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
        dn, attrs = user
        if not self._bind(dn, password):
            return None
        return self._principal(dn, attrs, username)

    def lookup(self, username: str) -> Principal | None:
        """The principal for ``username`` without a password (None when unknown, ambiguous or locked)."""
        user = self._find_user(username)
        return None if user is None else self._principal(user[0], user[1], username)

    def close(self) -> None:
        """Unbind every pooled service connection."""
        self._closed = True
        while True:
            try:
                _close(self._idle.get_nowait())
            except queue.Empty:
                return


def _close(conn: Connection) -> None:
    """Unbind and close the socket; a connection that already broke is just dropped."""
    try:
        conn.unbind()
    except (LDAPException, OSError):
        pass
    # ldap3 keeps the socket of a failed open() on the connection; close it here.
    if conn.socket is not None:
        conn.socket.close()


class _Retry(Exception):
    """A pooled connection went stale; the caller retries once on a fresh one."""
