"""The ``ldap`` registry's searches: with the service account, on its pooled connections.

One search (the user's entry, a group read by DN), or every page of one (RFC 2696) for a
group search, read up to a bound of entries (``realms.registries.ldap.wire``). Both the
registry (the user search) and ``group_reader`` (group searches) search through one
``ServiceSearch``. Outages raise ``RegistryUnavailable``; more groups than ``max_groups`` raise
``RegistryTooManyGroups``; a DN or attribute name that is not UTF-8 raises ``RegistryValueInvalid``.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from typing import Literal, TypeVar

from ldap3 import Connection
from ldap3.core.exceptions import LDAPException
from ldap3.core.results import RESULT_CODES

from realms.errors import RegistryTooManyGroups, RegistryUnavailable, RegistryValueInvalid
from realms.registries.ldap import wire
from realms.registries.ldap.config import LdapRegistryConfig
from realms.registries.ldap.pool import ConnectionPool
from realms.registries.ldap.values import DecodedEntry, decode_entry

log = logging.getLogger(__name__)

Scope = Literal["BASE", "LEVEL", "SUBTREE"]
_SIZE_LIMIT_EXCEEDED = 4
_REFERRAL = 10
_NO_SUCH_OBJECT = 32
PAGE_SIZE = 500  # entries per page of a group search (RFC 2696)
T = TypeVar("T")


class ServiceSearch:
    """Searches of one realm's directory on ``pool``'s service connections; thread-safe."""

    def __init__(
        self,
        realm: str,
        config: LdapRegistryConfig,
        pool: ConnectionPool,
        unavailable: Callable[[str], RegistryUnavailable],
    ) -> None:
        self.realm, self.config, self.pool, self.unavailable = realm, config, pool, unavailable
        self.page_size = PAGE_SIZE

    def __call__(
        self,
        base: str,
        filter_: wire.Filter,
        scope: Scope,
        attributes: list[str],
        limit: int,
        *,
        missing_ok: bool = False,
        complete: bool = False,
    ) -> list[DecodedEntry]:
        """Search (RFC 4511 §4.5.1); ``missing_ok`` lets a missing base mean "no entries" (a group
        read by DN); ``complete`` pages through every entry (RFC 2696) and refuses more than
        ``max_groups``."""
        cap = self.config.max_groups

        def run(conn: Connection) -> list[DecodedEntry]:
            entries: list[DecodedEntry] = []
            cookie = b""
            for pages in itertools.count(1):
                # Why: a page may be empty, but a directory that sends empty pages with a cookie
                # for ever would hold the login; max_groups + 1 pages hold max_groups + 1 entries.
                if pages > cap + 1:
                    raise self.unavailable(f"the directory sent more than {cap + 1} pages under {base!r}")
                page = (min(self.page_size, cap + 1), cookie) if complete else None
                # Why these bounds: more than `limit` entries breaks the size limit the server
                # was sent (RFC 4511 §4.5.1.5): out of protocol, an outage like any other; one
                # entry past `max_groups` over all pages is all a refusal needs (a server may
                # ignore the non-critical paged control and send every group in one answer).
                most = cap + 1 - len(entries) if complete else limit
                try:
                    result = wire.search(conn, base, scope, filter_, attributes, 0 if complete else limit, most, page)
                except UnicodeError as exc:
                    raise self.value_invalid(f"an entry under {base!r}", str(exc)) from None
                except wire.TooManyEntries as exc:
                    # Raised out of the borrow: the connection, its answer half read, is dropped.
                    if complete:
                        raise self.too_many(base) from None
                    raise self.unavailable(str(exc)) from None
                code = result.code
                if code == _NO_SUCH_OBJECT and not missing_ok:
                    # A missing user_base or group_base is a configuration problem, not bad credentials.
                    raise self.unavailable(f"search base {base!r} does not exist or is not visible")
                if code not in (0, _SIZE_LIMIT_EXCEEDED, _REFERRAL, _NO_SUCH_OBJECT):
                    raise self.unavailable(f"search failed ({describe(code)})")
                # Why: search references (searchResRef) are skipped, never followed (wire.search).
                entries += [decode_entry(dn, raw) for dn, raw in result.entries]
                if not complete:
                    return entries
                # Why: a truncated group list would drop groups a node's table may deny; fail
                # closed, with a refusal that is not an outage (retrying cannot help).
                if code == _SIZE_LIMIT_EXCEEDED or len(entries) > cap:
                    raise self.too_many(base, server_limit=code == _SIZE_LIMIT_EXCEEDED)
                cookie = result.cookie
                if not cookie:
                    return entries
            raise AssertionError("unreachable")

        return self._with_service(run)

    def _with_service(self, operation: Callable[[Connection], T]) -> T:
        """Run ``operation`` on a pooled service connection. A search that fails on a reused
        connection is retried once on a fresh one (searches are safe to repeat)."""
        for attempt in (1, 2):
            try:
                with self.pool.borrow() as (conn, reused):
                    try:
                        return operation(conn)
                    except LDAPException as exc:
                        if reused and attempt == 1:
                            log.info("realm %s: pooled connection failed (%s); reconnecting", self.realm, exc)
                            raise _Retry from None
                        raise self.unavailable(str(exc) or type(exc).__name__) from None
            except _Retry:
                self.pool.drain()
                continue
            except TimeoutError as exc:
                raise self.unavailable(str(exc)) from None
        raise AssertionError("unreachable")

    def too_many(self, where: str, *, server_limit: bool = False) -> RegistryTooManyGroups:
        if server_limit:
            cause = "more than the directory returns to the service account, even paged"
            fix = "raise the service account's size limit in the directory (OpenLDAP: limits ... size.prtotal)"
        else:
            cause = f"more than the realm's max_groups ({self.config.max_groups})"
            fix = "raise max_groups, or take the user out of groups they do not need"
        return RegistryTooManyGroups(
            f"realm {self.realm}: the user is in {cause} groups under {where!r}; {fix}",
            realm=self.realm,
            max_groups=self.config.max_groups,
        )

    def value_invalid(self, what: str, problem: str) -> RegistryValueInvalid:
        log.warning("realm %s: %s refused: %s", self.realm, what, problem)
        return RegistryValueInvalid(
            f"realm {self.realm}: {what} holds a value that is not UTF-8 text ({problem})", realm=self.realm
        )


def describe(code: int) -> str:
    """The name of an LDAP result code (RFC 4511 Appendix A)."""
    return str(RESULT_CODES.get(code, f"result code {code}"))


class _Retry(Exception):
    """A pooled connection went stale; the caller retries once on a fresh one."""
