"""Input checks before any registry call (RFC 4513 §5.1.2, RFC 4013 SASLprep), as properties."""

from __future__ import annotations

import stringprep

from hypothesis import given
from hypothesis import strategies as st

from realms.identity.credentials import MAX_PASSWORD_BYTES, usable_password, usable_username

VANISHING = [
    chr(c)
    for c in range(0x110000)
    if not 0xD800 <= c <= 0xDFFF
    and (chr(c).isspace() or stringprep.in_table_b1(chr(c)) or stringprep.in_table_c12(chr(c)))
]


@given(st.lists(st.sampled_from(VANISHING), min_size=0, max_size=30).map("".join))
def test_passwords_that_saslprep_maps_to_nothing_or_spaces_are_refused(password: str) -> None:
    assert not usable_password(password)


@given(
    st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=100).filter(
        lambda p: "\x00" not in p and any(ch not in VANISHING for ch in p)
    )
)
def test_other_passwords_are_usable(password: str) -> None:
    assert usable_password(password) == (len(password.encode()) <= MAX_PASSWORD_BYTES)


@given(st.text(max_size=40))
def test_usernames_with_control_characters_or_outer_spaces_are_refused(name: str) -> None:
    if usable_username(name):
        assert name == name.strip() and name
        assert all(ord(ch) >= 0x20 and ch not in "\x7f\u200b\u202e" for ch in name)
