"""userPassword schemes: round trips, interop with slapd's own slappasswd, and refusals."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess

import pytest

from realms.registries.ldif.password_hashes import SCHEMES, hash_password, split_scheme, verify_password

SLAPPASSWD = shutil.which("slappasswd") or "/usr/sbin/slappasswd"


@pytest.mark.parametrize("scheme", SCHEMES)
def test_round_trip(scheme: str) -> None:
    stored = hash_password("s3cret-é", scheme)
    assert split_scheme(stored)[0] == scheme
    assert verify_password(stored, "s3cret-é")
    assert not verify_password(stored, "s3cret-e")
    assert not verify_password(stored, "")
    assert not verify_password(stored, "s3cret-é ")


@pytest.mark.parametrize("scheme", SCHEMES)
def test_scheme_name_is_case_insensitive(scheme: str) -> None:
    stored = hash_password("pw", scheme)
    lowered = "{" + scheme.lower() + "}" + split_scheme(stored)[1]
    assert verify_password(lowered, "pw")


@pytest.mark.parametrize(
    ("scheme", "module"),
    [("{SSHA}", None), ("{SSHA256}", "pw-sha2"), ("{SSHA512}", "pw-sha2"), ("{ARGON2}", "argon2")],
)
def test_hashes_written_by_slappasswd_verify(scheme: str, module: str | None) -> None:
    if not os.path.exists(SLAPPASSWD):
        pytest.skip("slappasswd is not installed (tests/run.sh installs slapd)")
    args = [SLAPPASSWD, "-h", scheme, "-s", "from-slapd"]
    if module:
        args[1:1] = ["-o", "module-path=/usr/lib/ldap", "-o", f"module-load={module}"]
    stored = subprocess.run(args, check=True, capture_output=True, text=True).stdout.strip()
    assert verify_password(stored, "from-slapd")
    assert not verify_password(stored, "from-slapd!")


def test_pbkdf2_format_is_slapd_pw_pbkdf2() -> None:
    stored = hash_password("pw", "PBKDF2-SHA256", salt=b"0123456789abcdef")
    iterations, salt, key = split_scheme(stored)[1].split("$")
    assert iterations == "10000" and "=" not in salt + key and "+" not in salt + key
    assert verify_password(stored, "pw")


@pytest.mark.parametrize(
    "stored",
    [
        "{SSHA}",
        "{SSHA}not base64!",
        "{SSHA}" + base64.b64encode(b"x" * 20).decode(),  # digest only, no salt
        "{PBKDF2-SHA256}0$AAAA$AAAA",
        "{PBKDF2-SHA256}99999999999$AAAA$AAAA",  # an iteration count that would stall logins
        "{PBKDF2-SHA256}1000$$",
        "{ARGON2}not-a-phc-string",
        "{MD5}X03MO1qnZdYdgyfeuILPmQ==",
        "{CRYPT}$6$x$y",
        "{CLEARTEXT}pw",
    ],
)
def test_broken_and_unsupported_values_never_match(stored: str) -> None:
    assert not verify_password(stored, "pw", allow_plaintext=True)


def test_plaintext_only_when_allowed() -> None:
    assert not verify_password("pw", "pw")
    assert verify_password("pw", "pw", allow_plaintext=True)
    assert not verify_password("pw", "pW", allow_plaintext=True)


def test_unknown_scheme_for_hash_password() -> None:
    with pytest.raises(ValueError, match="unsupported"):
        hash_password("pw", "MD5")
