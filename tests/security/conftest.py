"""The adversarial suite's kit: forged-token corpus, loopback listeners that must stay silent,
and a real STS world (tests/jobs/conftest.py) whose tokens the attacks start from.

``token_attacks(valid, ...)`` turns one genuine token into every forgery of this suite. Where a
forgery needs a valid signature to reach the defence it targets (crit, duplicate members,
kid injection, numeric dates...), it is re-signed with the realm's *real* private key, so
the test fails if that one defence is removed, not merely because the signature breaks.
The same corpus attacks the STS API (test_tokens_api.py) and the agent (test_tokens_agent.py).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from flask import Flask

from realms.config import load_realms
from realms.tokens.keys import jwk_thumbprint, public_jwk
from sts import create_app
from sts.config import JobSettings, ThrottlePolicy
from tests.jobs.conftest import World, build_world, migrate_database
from tests.loopback import Listener, listening_socket, port_of
from tests.security.served import Served, make_world, register_node, serve
from tests.sts.conftest import make_config

IS_ROOT = os.geteuid() == 0
root_only = pytest.mark.skipif(not IS_ROOT, reason="needs root to create OS accounts and switch users")


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def split(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    header, payload, _ = token.split(".")
    return json.loads(unb64(header)), json.loads(unb64(payload))


def sign_raw(header: bytes | dict[str, Any], payload: bytes | dict[str, Any], private_key: Any, alg: str) -> str:
    """A compact JWS over exactly these header/payload bytes, signed with ``private_key``."""
    h = header if isinstance(header, bytes) else json.dumps(header).encode()
    p = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    signing_input = f"{b64(h)}.{b64(p)}".encode()
    signature = jwt.get_algorithm_by_name(alg).sign(signing_input, private_key)
    return f"{signing_input.decode()}.{b64(signature)}"


@pytest.fixture
def listener() -> Iterator[Listener]:
    found = Listener()
    try:
        yield found
    finally:
        found.close()


@dataclass(frozen=True)
class Signer:
    """A realm's real signing key (kid, algorithm, private key) taken from the STS key store."""

    realm: str
    kid: str
    alg: str
    private_key: Any

    @property
    def public_key(self) -> Any:
        return self.private_key.public_key()


@dataclass(frozen=True)
class Attack:
    name: str
    token: str
    codes: frozenset[str]
    motivation: str = ""


@dataclass
class Corpus:
    attacks: list[Attack] = field(default_factory=list)

    def add(self, name: str, token: str, *codes: str, why: str = "") -> None:
        self.attacks.append(Attack(name, token, frozenset(codes), why))


def hmac_jws(header: dict[str, Any], payload: dict[str, Any], secret: bytes, alg: str) -> str:
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    return f"{signing_input}.{b64(hmac.new(secret, signing_input.encode(), digest).digest())}"


def public_key_encodings(public_key: Any, alg: str) -> dict[str, bytes]:
    """The realm's public key in every encoding an HMAC-confusion attacker might try as the secret."""
    pem = public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return {
        "pem": pem,
        "pem-no-final-newline": pem.rstrip(b"\n"),
        "der": public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo),
        "jwk": json.dumps(public_jwk(public_key, alg)).encode(),
        "openssh": public_key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH),
    }


def _nested(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = {"n": value}
    return value


def token_attacks(valid: str, signer: Signer, other: Signer, listener_url: str) -> list[Attack]:
    """Every forgery of this suite, derived from the genuine ``valid`` token of ``signer``'s realm.

    ``other`` is a second realm's real key (cross-realm confusion, a realm vouching for
    another's principals). ``listener_url`` is where jku/x5u point: nothing may connect.
    """
    header, payload = split(valid)
    c = Corpus()

    def resign(h: dict[str, Any] | bytes, p: dict[str, Any] | bytes) -> str:
        return sign_raw(h, p, signer.private_key, signer.alg)

    head_b64, payload_b64, _ = valid.split(".")
    # alg none in every spelling, with an empty, a null and a kept signature (RFC 8725 §3.1;
    # CVE-2015-9235 and the 2015 Auth0 "critical vulnerabilities in JWT libraries" advisory).
    for spelling in ("none", "None", "NONE", "nOnE", "none ", "", None):
        h = {**header, "alg": spelling}
        unsigned = f"{b64(json.dumps(h).encode())}.{payload_b64}"
        c.add(f"alg={spelling!r}/empty-signature", unsigned + ".", "token.malformed", "token.algorithm")
        c.add(f"alg={spelling!r}/null-signature", unsigned + "." + b64(b"\x00" * 64), "token.algorithm")
        c.add(f"alg={spelling!r}/kept-signature", unsigned + "." + valid.split(".")[2], "token.algorithm")
    c.add("stripped-signature", f"{head_b64}.{payload_b64}.", "token.malformed")
    c.add("two-segments", f"{head_b64}.{payload_b64}", "token.malformed")
    c.add("zero-signature", f"{head_b64}.{payload_b64}.{b64(bytes(64))}", "token.signature")
    # HMAC keyed with the public key (RFC 8725 §2.1, CVE-2016-10555) in every encoding.
    for encoding, secret in public_key_encodings(signer.public_key, signer.alg).items():
        for alg in ("HS256", "HS384", "HS512"):
            c.add(f"hmac-{alg}-{encoding}", hmac_jws({**header, "alg": alg}, payload, secret, alg), "token.algorithm")
    # Keys chosen by the token (RFC 8725 §3.10, CVE-2018-0114): an embedded jwk signed by the
    # attacker, and jku/x5u URLs to a loopback listener that must receive nothing.
    attacker = ec.generate_private_key(ec.SECP256R1())
    attacker_jwk = public_jwk(attacker.public_key(), "ES256")
    for kid in (jwk_thumbprint(attacker.public_key()), signer.kid):
        c.add(
            f"embedded-jwk/kid={kid[:8]}",
            sign_raw({**header, "alg": "ES256", "kid": kid, "jwk": attacker_jwk}, payload, attacker, "ES256"),
            "token.header",
        )
    for member in ("jku", "x5u"):
        c.add(
            f"{member}-listener/attacker-signed",
            sign_raw({**header, "alg": "ES256", member: listener_url}, payload, attacker, "ES256"),
            "token.header",
        )
        c.add(f"{member}-listener/realm-signed", resign({**header, member: listener_url}, payload), "token.header")
    c.add("x5c", resign({**header, "x5c": [b64(b"not a certificate")]}, payload), "token.header")
    c.add("crit", resign({**header, "crit": ["exp"], "exp": 1}, payload), "token.header")
    c.add("crit-empty", resign({**header, "crit": []}, payload), "token.header")
    # kid injection: paths, SQL, shell, huge, and the wrong JSON types.
    for kid in (
        "../../../../../../dev/null",
        "/etc/passwd",
        "' OR '1'='1",
        "x'; DROP TABLE signing_keys; --",
        "$(touch /tmp/jobsts-pwned)",
        "`id`",
        "| id",
        "k" * 129,
        "k" * 8000,
        "\u0000",
        "%00",
    ):
        c.add(f"kid-injection/{kid[:24]!r}", resign({**header, "kid": kid}, payload), "token.unknown_key")
    for kid_value in (123, None, ["a"], {"k": "v"}, True, ""):
        c.add(f"kid-type/{kid_value!r}", resign({**header, "kid": kid_value}, payload), "token.unknown_key")
    # Cross-realm key confusion: the other realm's real key, under its own kid and under ours.
    foreign = {**header, "alg": other.alg}
    c.add(
        "other-realm-key/own-kid",
        sign_raw({**foreign, "kid": other.kid}, payload, other.private_key, other.alg),
        "token.unknown_key",
        "token.algorithm",
    )
    c.add(
        "other-realm-key/victim-kid",
        sign_raw({**foreign, "kid": signer.kid}, payload, other.private_key, other.alg),
        "token.signature",
        "token.algorithm",
    )
    # A realm vouching for another realm's principal: the other realm signs, as itself, our subject.
    vouched = {
        **payload,
        "iss": payload["iss"].replace(f"/realms/{signer.realm}", f"/realms/{other.realm}"),
        "realm": other.realm,
    }
    c.add(
        "other-realm-vouches-for-our-subject",
        sign_raw({**foreign, "kid": other.kid}, vouched, other.private_key, other.alg),
        "token.claims",
    )
    c.add("realm-claim-lies", resign(header, {**payload, "realm": other.realm}), "token.claims")
    # typ / profile confusion (RFC 8725 §3.11).
    for typ in (
        "JWT",
        "jwt",
        "job+jwt" if header["typ"] != "job+jwt" else "at+jwt",
        "agent+jwt" if header["typ"] != "agent+jwt" else "at+jwt",
        header["typ"] + " ",
        None,
        7,
    ):
        c.add(f"typ={typ!r}", resign({**header, "typ": typ}, payload), "token.type")
    c.add("typ-missing", resign({k: v for k, v in header.items() if k != "typ"}, payload), "token.type")
    # Duplicate JSON members: the last one wins in most parsers, the first in some.
    h_json = json.dumps(header)[:-1]
    c.add("duplicate-header-alg", resign(f'{h_json}, "alg": "none"}}'.encode(), payload), "token.malformed")
    c.add("duplicate-header-kid", resign(f'{h_json}, "kid": "other"}}'.encode(), payload), "token.malformed")
    p_json = json.dumps(payload)[:-1]
    c.add(
        "duplicate-claim-sub",
        resign(header, f'{p_json}, "sub": "user:{signer.realm}/uid=admin"}}'.encode()),
        "token.malformed",
    )
    c.add("duplicate-claim-exp", resign(header, f'{p_json}, "exp": 99999999999}}'.encode()), "token.malformed")
    # Non-canonical base64url: padding, the standard alphabet, whitespace, non-zero trailing bits.
    good = resign(header, payload)
    g_head, g_payload, g_sig = good.split(".")
    c.add("padded-base64", f"{g_head}{'=' * (-len(g_head) % 4) or '=='}.{g_payload}.{g_sig}", "token.malformed")
    c.add(
        "standard-alphabet",
        f"{g_head}.{g_payload}.{g_sig.replace('-', '+').replace('_', '/')}"
        if ("-" in g_sig or "_" in g_sig)
        else f"{g_head}.{g_payload}+.{g_sig}",
        "token.malformed",
    )
    c.add("whitespace-in-segment", f"{g_head}.{g_payload[:5]} {g_payload[5:]}.{g_sig}", "token.malformed")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    if len(g_sig) % 4 in (2, 3):
        last = alphabet[alphabet.index(g_sig[-1]) | 1]
        c.add("non-zero-trailing-bits", f"{g_head}.{g_payload}.{g_sig[:-1]}{last}", "token.malformed")
    # Invalid UTF-8 (an overlong "/" and a lone continuation byte) in signed segments.
    c.add("invalid-utf8-claims", resign(header, p_json.encode() + b', "x": "\xc0\xaf\x80"}'), "token.malformed")
    c.add("invalid-utf8-header", resign(h_json.encode() + b', "x": "\xff"}', payload), "token.malformed")
    # Unpaired surrogates: valid JSON escapes that no log, database or socket can encode. Every
    # string claim, a group, an unknown claim and a header member: refused with the token's own
    # code, never a 500 at the API or agent.internal at the agent (realms/text.py).
    for name in ("jti", "sub", "preferred_username", "extra"):
        body = json.dumps({k: v for k, v in payload.items() if k != name})[:-1] + f', "{name}": "a\\ud800b"}}'
        c.add(f"surrogate-claim-{name}", resign(header, body.encode()), "token.claims")
    body = json.dumps({k: v for k, v in payload.items() if k != "groups"})[:-1] + ', "groups": ["\\udfff"]}'
    c.add("surrogate-group", resign(header, body.encode()), "token.claims")
    c.add("surrogate-header", resign(h_json.encode() + b', "x": "\\ud834"}', payload), "token.malformed")
    # Lifetimes beyond the realm's policy for the profile (realms/tokens/lifetimes.py).
    now = int(time.time())
    ten_years = 10 * 365 * 86400
    c.add("lifetime-exp-years-ahead", resign(header, {**payload, "exp": now + ten_years}), "token.lifetime")
    c.add(
        "lifetime-exp-minus-iat-10y",
        resign(header, {**payload, "iat": now - ten_years + 120, "nbf": now - 60, "exp": now + 120}),
        "token.lifetime",
    )
    # Numeric edge cases for exp, nbf, iat: huge, negative, float, string, infinity, NaN, bool.
    now = int(time.time())
    for name in ("exp", "nbf", "iat"):
        for label, raw in (
            ("huge", "1e30"),
            ("2**64", str(2**64)),
            ("negative", "-1"),
            ("string", f'"{now}"'),
            ("inf-literal", "Infinity"),
            ("nan", "NaN"),
            ("overflow-inf", "1e999"),
            ("bool", "true"),
            ("null", "null"),
            ("list", f"[{now}]"),
        ):
            claims = {k: v for k, v in payload.items() if k != name}
            body = json.dumps(claims)[:-1] + f', "{name}": {raw}}}'
            c.add(
                f"{name}={label}",
                resign(header, body.encode()),
                "token.claims",
                "token.malformed",
                "token.expired",
                "token.not_yet_valid",
            )
    c.add("exp-float-in-past", resign(header, {**payload, "exp": now - 3600.5}), "token.expired")
    c.add("nbf-far-future", resign(header, {**payload, "nbf": now + 86400}), "token.not_yet_valid")
    c.add("iat-far-future", resign(header, {**payload, "iat": now + 86400}), "token.not_yet_valid")
    # Size and depth: 1 MiB and more, and deeply nested JSON (RFC 8725 §3.x, resource exhaustion).
    c.add("1MiB-claim", resign(header, {**payload, "pad": "A" * (1 << 20)}), "token.malformed")
    c.add("2MiB-junk", "a" * (2 << 20), "token.malformed")
    c.add("nested-claim-50", resign(header, {**payload, "deep": _nested(50)}), "token.malformed")
    c.add(
        "nested-array-3000",
        resign(header, p_json.encode() + b', "deep": ' + b"[" * 3000 + b"]" * 3000 + b"}"),
        "token.malformed",
    )
    c.add("nested-header", resign({**header, "deep": _nested(20)}, payload), "token.malformed")
    return c.attacks


def attack_ids(attacks: list[Attack]) -> list[str]:
    return [a.name for a in attacks]


def signer_of(world: World, realm: str) -> Signer:
    keys = world.services.keys.realm_keys(realm)
    assert keys.active is not None and keys.private is not None
    return Signer(realm, keys.active.kid, keys.active.algorithm, keys.private)


@pytest.fixture
def world(tmp_path: Path, database_url: str) -> Iterator[World]:
    """The job manager's world (tests/jobs/conftest.py): users, roles, nodes node1/cellnode/trusting."""
    built = build_world(tmp_path, database_url, JobSettings(poll_interval=0.05))
    yield built
    built.services.close()


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def ldap_app(
    tmp_path: Path, database_url: str, tables: list[dict[str, Any]], *, lenient_throttle: bool = True, **overrides: Any
) -> Flask:
    """A real STS app whose realms are the given ``[[realms]]`` tables (slapd-backed ones included)."""
    migrate_database(database_url)
    config = make_config(tmp_path, database_url)
    realms = load_realms(tables, tmp_path)
    config = replace(config, realms={**config.realms, **realms}, **overrides)
    if lenient_throttle:
        # Why here: tests that compare answers or timings must not trip the login throttle.
        config = replace(config, throttle=ThrottlePolicy(failure_factor=100000, per_address_failure_factor=100000))
    app = create_app(config)
    app.config["TESTING"] = True
    return app


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory a job's account can reach and write (pytest's tmp_path is private to its user)."""
    path = Path(tempfile.mkdtemp(prefix="jobsts-sec-", dir="/tmp"))
    path.chmod(0o777)  # the job's account (nobody) appends to the marker here
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def served(tmp_path: Path, database_url: str, shared_dir: Path) -> Iterator[Served]:
    """A World's STS over HTTP on loopback (60 s leases: tests end a lease with ``expire_lease``), with node
    ``fnode`` and its key file."""
    with listening_socket() as sock:
        url = f"http://127.0.0.1:{port_of(sock)}"
        world = make_world(tmp_path, database_url, url, lease_seconds=60)
        server, thread = serve(world.app, sock)
        try:
            yield Served(world, url, register_node(world, tmp_path), shared_dir / "runs", tmp_path)
        finally:
            server.shutdown()
            thread.join(10)
            server.server_close()
            world.services.close()
