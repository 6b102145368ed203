"""Every bad input is refused, on every backend; each test fails if its check is removed.

Two proofs per input: against the real data the login fails (``None``), and against a
directory that is *down* the answer is still ``None``, not ``RegistryUnavailable``: the
input was refused before any network call.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from realms.errors import RegistryUnavailable
from realms.identity.credentials import MAX_PASSWORD_BYTES, MAX_USERNAME_LENGTH
from realms.registries.base import Registry
from realms.text import is_ascii_number
from tests.ldap_harness import SlapdServer
from tests.realms.conftest import MakeRegistry

INJECTIONS = [
    "joh*",  # unescaped, this matches exactly john and logs in
    "*",
    "*)(uid=*",
    "john)(|(uid=*",
    "john)(uid=*))(|(uid=*",
    "j\\2a",
    "uid=john,ou=people,dc=jobmgr,dc=example",  # DN injection: a bind DN is never built from input
    "john,ou=people,dc=jobmgr,dc=example",
]
BAD_USERNAMES = [
    "",
    " ",
    "\t\n",
    "john\x00",
    "john\x00admin",
    "\x00",
    " john",
    "john ",
    "jo\u200bhn",  # format character
    "j" * (MAX_USERNAME_LENGTH + 1),
]
BAD_PASSWORDS = [
    "",
    " ",
    "   \t\n",
    "\u00ad",  # soft hyphen: SASLprep maps it to nothing
    "\u200b\u200b",  # zero-width space
    "\u00ad \u200b\u2060",
    "\u3000",  # ideographic space: SASLprep maps it to a space
    "john-password\x00",
    "\ud800",  # a lone surrogate cannot be encoded at all
    "p" * (MAX_PASSWORD_BYTES + 1),
]


@pytest.mark.parametrize("username", INJECTIONS)
def test_filter_and_dn_injection_never_logs_in(make_registry: MakeRegistry, username: str) -> None:
    registry = make_registry("jobmgr")
    assert registry.authenticate(username, "john-password") is None
    assert registry.lookup(username) is None


@pytest.mark.parametrize("username", BAD_USERNAMES)
def test_bad_usernames_are_refused(make_registry: MakeRegistry, username: str) -> None:
    registry = make_registry("jobmgr")
    assert registry.authenticate(username, "john-password") is None
    assert registry.lookup(username) is None


@pytest.mark.parametrize("password", BAD_PASSWORDS)
def test_bad_passwords_are_refused(make_registry: MakeRegistry, password: str) -> None:
    assert make_registry("jobmgr").authenticate("john", password) is None


@pytest.mark.parametrize("password", BAD_PASSWORDS)
def test_plaintext_realm_still_refuses_empty_passwords(
    tmp_path: Path, open_registry: Callable[[dict[str, Any]], Registry], password: str
) -> None:
    # A plaintext userPassword equal to the bad input: only the input check stands in the way.
    path = tmp_path / "plain.ldif"
    encoded = base64.b64encode(password.encode("utf-8", "surrogatepass")).decode()
    path.write_text(
        f"dn: uid=p,ou=people,dc=x\nobjectClass: inetOrgPerson\nuid: p\ncn: p\nsn: p\nuserPassword:: {encoded}\n"
    )
    table = {"name": "plain", "registry": {"type": "ldif", "path": str(path), "allow_plaintext": True}}
    registry = open_registry(table)
    assert registry.authenticate("p", password) is None


@pytest.mark.parametrize(
    ("username", "password"), [("john", p) for p in BAD_PASSWORDS] + [(u, "x") for u in BAD_USERNAMES]
)
def test_bad_input_is_refused_before_any_network_call(
    open_registry: Callable[[dict[str, Any]], Registry], down_ldap_url: str, username: str, password: str
) -> None:
    registry = open_registry(_ldap_table(down_ldap_url))
    assert registry.authenticate(username, password) is None
    # the same registry with good-looking input does reach the (down) network
    with pytest.raises(RegistryUnavailable):
        registry.authenticate("john", "john-password")


@pytest.mark.slapd
def test_empty_password_is_not_an_unauthenticated_bind(
    slapd: SlapdServer, open_registry: Callable[[dict[str, Any]], Registry]
) -> None:
    # The harness slapd allows unauthenticated binds (RFC 4513 §5.1.2), as many servers do.
    registry = open_registry(slapd.realm_table("jobmgr"))
    assert registry.authenticate("john", "") is None


@pytest.mark.slapd
def test_referral_is_not_followed(slapd: SlapdServer, open_registry: Callable[[dict[str, Any]], Registry]) -> None:
    # ou=partners is a referral to a port where nothing listens: following it would be an outage.
    base = f"ou=partners,ou=people,{slapd.base_dn('cellC')}"
    registry = open_registry(slapd.realm_table("cellC", user_base=base))
    assert registry.authenticate("john", "john-password") is None
    # search continuation references under the normal base are skipped too
    registry = open_registry(slapd.realm_table("cellC"))
    assert registry.authenticate("john", "john-password") is None


def _ldap_table(url: str, realm: str = "jobmgr", **settings: Any) -> dict[str, Any]:
    registry = {
        "type": "ldap",
        "url": url,
        "bind_dn": "cn=sts,ou=services,dc=jobmgr,dc=example",
        "bind_password": "sts-password",
        "user_base": "ou=people,dc=jobmgr,dc=example",
        "group_base": "ou=groups,dc=jobmgr,dc=example",
        "connect_timeout": 2,
        "receive_timeout": 1,
    }
    registry.update(settings)
    return {"name": realm, "registry": registry}


@pytest.mark.parametrize(
    ("text", "number"),
    [("0", True), ("0042", True), ("", False), ("\u00b2", False), ("\u2460", False), ("\u0661", False), ("-1", False),
     ("1_000", False), (" 1", False), ("+1", False)],
)  # fmt: skip
def test_is_ascii_number_takes_only_what_int_reads_as_a_whole_number(text: str, number: bool) -> None:
    assert is_ascii_number(text) is number
    if number:
        assert int(text) >= 0
