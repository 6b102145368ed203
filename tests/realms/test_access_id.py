"""Access IDs: exact round-trips (property tests) and refusal of every malformed spelling."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from realms.errors import AccessIdInvalid
from realms.identity.access_id import (
    ALL_AUTHENTICATED,
    EVERYONE,
    MAX_UNIQUE_ID_LENGTH,
    AccessId,
    AccessIdKind,
    Special,
    check_realm_name,
)
from realms.text import invisible_character

realm_names = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}", fullmatch=True)
# Printable unique ids: no control/format/surrogate/private-use, no line or paragraph separators.
# Every character an access ID may hold: realms/text.py's invisible_character refuses separators
# (Zs included: U+00A0 is no more visible than U+0020), C*, and the blank-rendering letters.
id_chars = st.characters(blacklist_categories=("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp", "Zs")).filter(
    lambda ch: invisible_character(ch) is None
)
unique_ids = st.text(id_chars, min_size=1, max_size=200).filter(lambda s: s == s.strip())
bad_chars = st.characters(whitelist_categories=("Cc", "Cf", "Zl", "Zp"))


@given(kind=st.sampled_from([AccessIdKind.USER, AccessIdKind.GROUP]), realm=realm_names, uid=unique_ids)
def test_user_and_group_round_trip(kind: AccessIdKind, realm: str, uid: str) -> None:
    aid = AccessId(kind, realm, uid)
    text = str(aid)
    assert text == f"{kind.value}:{realm}/{uid}"
    assert AccessId.parse(text) == aid
    assert str(AccessId.parse(text)) == text


@given(node=realm_names)
def test_node_round_trip(node: str) -> None:
    assert str(AccessId.parse(f"node:{node}")) == f"node:{node}"
    assert AccessId.parse(f"node:{node}") == AccessId.node(node)


@pytest.mark.parametrize("special", list(Special))
def test_specials_round_trip(special: Special) -> None:
    aid = AccessId.special(special)
    assert AccessId.parse(str(aid)) == aid
    assert str(aid) == f"special:{special.value}"


def test_constants() -> None:
    assert str(EVERYONE) == "special:EVERYONE"
    assert str(ALL_AUTHENTICATED) == "special:ALL_AUTHENTICATED"


@given(realm=realm_names, uid=unique_ids, bad=bad_chars, where=st.integers(min_value=0, max_value=200))
def test_control_and_format_characters_are_refused(realm: str, uid: str, bad: str, where: int) -> None:
    assume(unicodedata.category(bad) in ("Cc", "Cf", "Zl", "Zp"))
    poisoned = uid[:where] + bad + uid[where:]
    with pytest.raises(AccessIdInvalid):
        AccessId.parse(f"user:{realm}/{poisoned}")


@given(text=st.text(max_size=80))
def test_parse_never_crashes_and_valid_results_round_trip(text: str) -> None:
    try:
        aid = AccessId.parse(text)
    except AccessIdInvalid:
        return
    assert str(aid) == text


@pytest.mark.parametrize(
    "text",
    [
        "",
        "user",
        "user:",
        "user:jobmgr",
        "user:jobmgr/",
        "user:/uid=john",
        "user:bad realm/uid=john",
        "user:-jobmgr/uid=john",
        "user:" + "r" * 64 + "/x",
        "group:jobmgr/ uid=john",
        "group:jobmgr/uid=john ",
        "user:jobmgr/uid=jo\u202ehn",
        "user:jobmgr/uid=john\nuser:admin",
        "USER:jobmgr/uid=john",
        "role:jobmgr/x",
        "special:everyone",
        "special:NOBODY",
        "node:",
        "node:bad node",
        "user:jobmgr/" + "x" * (MAX_UNIQUE_ID_LENGTH + 1),
    ],
)
def test_malformed_access_ids_are_refused(text: str) -> None:
    with pytest.raises(AccessIdInvalid):
        AccessId.parse(text)


@pytest.mark.parametrize("name", ["", "-a", ".a", "a b", "a/b", "a:b", "é", "a" * 64])
def test_bad_realm_names(name: str) -> None:
    with pytest.raises(AccessIdInvalid):
        check_realm_name(name)


def test_ordering_is_total_and_stable() -> None:
    ids = [AccessId.parse(t) for t in ("user:b/x", "group:a/y", "node:n1", "special:EVERYONE", "user:a/x")]
    assert sorted(ids) == sorted(reversed(ids))
    assert [str(i) for i in sorted(ids)] == ["group:a/y", "node:n1", "special:EVERYONE", "user:a/x", "user:b/x"]
    assert AccessId.parse("user:b/x") > AccessId.parse("group:z/z")
