"""Outages raise RegistryUnavailable (never None), fast; TLS failures stop before any password is sent."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from realms.errors import RegistryTLSError, RegistryUnavailable
from realms.registries.base import Registry
from realms.registries.ldap.registry import LdapRegistry
from tests.ldap_harness import FakeDirectory, SlapdServer
from tests.realms.test_bad_input import _ldap_table

OpenRegistry = Callable[[dict[str, Any]], Registry]


def test_down_directory_is_unavailable_not_bad_credentials(open_registry: OpenRegistry, down_ldap_url: str) -> None:
    registry = open_registry(_ldap_table(down_ldap_url))
    with pytest.raises(RegistryUnavailable) as info:
        registry.authenticate("john", "john-password")
    assert info.value.code == "ldap.unavailable"
    assert "jobmgr" in info.value.message and down_ldap_url in info.value.message
    with pytest.raises(RegistryUnavailable):
        registry.lookup("john")


def test_slow_directory_times_out(open_registry: OpenRegistry, slow_ldap_url: str) -> None:
    registry = open_registry(_ldap_table(slow_ldap_url, receive_timeout=1))
    # The directory accepts and never answers: only the receive timeout ends the call.
    with pytest.raises(RegistryUnavailable) as info:
        registry.authenticate("john", "john-password")
    assert info.value.code == "ldap.unavailable"


def test_starttls_refused_aborts_before_any_bind(
    open_registry: OpenRegistry, starttls_refusing_server: FakeDirectory
) -> None:
    registry = open_registry(_ldap_table(starttls_refusing_server.url, start_tls=True))
    with pytest.raises(RegistryTLSError) as info:
        registry.authenticate("john", "john-password")
    assert info.value.code == "ldap.tls"
    received = b"".join(starttls_refusing_server.received)
    assert b"1.3.6.1.4.1.1466.20037" in received  # the StartTLS request was made
    assert b"sts-password" not in received and b"john-password" not in received
    assert b"\x60" not in received.split(b"1.3.6.1.4.1.1466.20037")[-1]  # no BindRequest after it


def test_busy_directory_is_unavailable(open_registry: OpenRegistry, busy_directory: FakeDirectory) -> None:
    registry = open_registry(_ldap_table(busy_directory.url))
    with pytest.raises(RegistryUnavailable, match="busy"):
        registry.authenticate("john", "john-password")
    # the user bind itself: "busy" is an outage, never "bad credentials"
    assert isinstance(registry, LdapRegistry)
    with pytest.raises(RegistryUnavailable, match="busy"):
        registry._bind("uid=john,ou=people,dc=jobmgr,dc=example", "john-password")


@pytest.mark.slapd
@pytest.mark.parametrize("mode", ["ldaps", "start_tls"])
def test_tls_with_the_directory_ca_works(slapd: SlapdServer, open_registry: OpenRegistry, mode: str) -> None:
    settings: dict[str, Any] = {"ca_file": str(slapd.ca_file)}
    settings.update({"url": slapd.ldaps_url} if mode == "ldaps" else {"start_tls": True})
    principal = open_registry(slapd.realm_table("jobmgr", **settings)).authenticate("john", "john-password")
    assert principal is not None and len(principal.groups) == 2


@pytest.mark.slapd
@pytest.mark.parametrize("mode", ["ldaps", "start_tls"])
def test_untrusted_certificate_is_refused_by_default(
    slapd: SlapdServer, open_registry: OpenRegistry, mode: str
) -> None:
    settings: dict[str, Any] = {"url": slapd.ldaps_url} if mode == "ldaps" else {"start_tls": True}
    registry = open_registry(slapd.realm_table("jobmgr", **settings))
    with pytest.raises(RegistryTLSError) as info:
        registry.authenticate("john", "john-password")
    assert "certificate" in info.value.message.lower()


@pytest.mark.slapd
def test_certificate_for_another_host_name_is_refused(slapd: SlapdServer, open_registry: OpenRegistry) -> None:
    # Same CA, same server, but reached as 127.0.0.2, which the certificate does not name.
    registry = open_registry(slapd.realm_table("jobmgr", url=slapd.ldaps_wrong_host_url, ca_file=str(slapd.ca_file)))
    with pytest.raises(RegistryTLSError):
        registry.authenticate("john", "john-password")


@pytest.mark.slapd
def test_tls_verify_false_is_the_explicit_escape_hatch(slapd: SlapdServer, open_registry: OpenRegistry) -> None:
    registry = open_registry(slapd.realm_table("jobmgr", url=slapd.ldaps_wrong_host_url, tls_verify=False))
    assert registry.authenticate("john", "john-password") is not None


@pytest.mark.slapd
def test_wrong_service_password_is_an_outage(slapd: SlapdServer, open_registry: OpenRegistry) -> None:
    registry = open_registry(slapd.realm_table("jobmgr", bind_password="not-the-service-password"))
    with pytest.raises(RegistryUnavailable, match="service account"):
        registry.authenticate("john", "john-password")


@pytest.mark.slapd
def test_a_connection_that_carried_a_user_bind_never_serves_a_service_search(
    slapd: SlapdServer, open_registry: OpenRegistry
) -> None:
    """User binds run on the bind pool only; every service connection is still the service
    account (RFC 4513 §5.1: a connection's identity is whoever bound last). Without the
    separate pool, a service search would run as the last user who logged in."""
    registry = open_registry(slapd.realm_table("jobmgr", pool_size=2))
    assert isinstance(registry, LdapRegistry)
    user_bound: set[int] = set()
    for _ in range(3):
        assert registry.authenticate("john", "john-password") is not None
        assert registry.authenticate("john", "wrong-password") is None
        assert registry.authenticate("nosuchuser", "some-password") is None
        assert registry.lookup("john") is not None
        user_bound |= {id(conn) for conn in registry.bind_pool.idle()}
    assert user_bound, "user binds should reuse pooled bind connections"
    service = registry.service_pool.idle()
    assert service, "the service connection should be pooled for reuse"
    assert not {id(conn) for conn in service} & user_bound
    for conn in service:
        assert conn.extend.standard.who_am_i() == f"dn:{slapd.service_dn('jobmgr')}"
    assert registry.authenticate("john", "john-password") is not None
    (bound,) = registry.bind_pool.idle()
    assert bound.extend.standard.who_am_i() == "dn:uid=john,ou=people,dc=jobmgr,dc=example"


@pytest.mark.slapd
def test_pool_recovers_from_a_dropped_connection(slapd: SlapdServer, open_registry: OpenRegistry) -> None:
    registry = open_registry(slapd.realm_table("jobmgr", pool_size=1))
    assert isinstance(registry, LdapRegistry)
    assert registry.authenticate("john", "john-password") is not None
    for conn in registry.service_pool.idle() + registry.bind_pool.idle():
        conn.socket.close()  # the server (or a firewall) dropped the idle connection
    assert registry.authenticate("john", "john-password") is not None


@pytest.mark.slapd
def test_missing_user_base_is_reported_not_bad_credentials(slapd: SlapdServer, open_registry: OpenRegistry) -> None:
    registry = open_registry(slapd.realm_table("jobmgr", user_base="ou=nobody-here,dc=jobmgr,dc=example"))
    with pytest.raises(RegistryUnavailable, match="ou=nobody-here"):
        registry.authenticate("john", "john-password")
