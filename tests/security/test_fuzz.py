"""Property-based fuzzing (hypothesis) of the four parsers an outsider can feed:
the access-ID parser, the canonical job digest, the token decoder front end
(``realms/tokens/jws.py`` + ``verify``), and the authorization-table import.

CI runs a short pass (``JOBSTS_FUZZ_EXAMPLES``, default 60 examples per property); a longer
run is ``JOBSTS_FUZZ_EXAMPLES=20000 pytest tests/security/test_fuzz.py`` (docs/security.md).
Each property says what "never" means: only the module's own refusal is ever raised, and
nothing malformed is accepted or reformatted into something else.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from authz_tables.errors import AuthzError
from authz_tables.transfer import export_entries, parse_text
from realms.errors import AccessIdInvalid, JobstsError
from realms.identity.access_id import AccessId, AccessIdKind
from realms.tokens import JOB_TOKEN, IssuerTrust, TokenMalformed, VerificationKey, jwk_thumbprint, verify
from realms.tokens.errors import TokenError
from realms.tokens.jws import parse_compact
from realms.wire.digest import canonical_json, job_digest

EXAMPLES = int(os.environ.get("JOBSTS_FUZZ_EXAMPLES", "60"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

# --- access IDs ------------------------------------------------------------------------------

realm_names = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,20}", fullmatch=True)
id_text = st.text(st.characters(codec="utf-8"), min_size=0, max_size=60)
spelled = st.one_of(
    id_text,
    st.builds(
        lambda k, r, t: f"{k}:{r}/{t}",
        st.sampled_from(["user", "group", "USER", "node", "special", "x"]),
        realm_names,
        id_text,
    ),
)


@FUZZ
@given(text=spelled)
def test_access_id_parse_is_exact_or_refused(text: str) -> None:
    """Either ``AccessIdInvalid``, or an ID whose canonical spelling is exactly the input:
    no two spellings ever name one principal, and nothing invisible gets through."""
    try:
        parsed = AccessId.parse(text)
    except AccessIdInvalid:
        return
    assert str(parsed) == text
    assert AccessId.parse(str(parsed)) == parsed
    if parsed.kind in (AccessIdKind.USER, AccessIdKind.GROUP):
        assert all(ch.isprintable() or ch == " " for ch in parsed.name)


@FUZZ
@given(realm=realm_names, name=id_text)
def test_access_ids_survive_a_token_claim_and_a_table_export(realm: str, name: str) -> None:
    """What the STS writes into ``groups`` and what ``authz export`` writes read back identically."""
    try:
        group = AccessId.group(realm, name)
    except AccessIdInvalid:
        return
    claim = json.loads(json.dumps({"groups": [str(group)]}))["groups"][0]
    assert AccessId.parse(claim) == group
    from authz_tables.entries import parse_entry

    entry = parse_entry(str(group), "operator")
    for fmt in ("csv", "json"):
        back = parse_text(export_entries([entry], fmt), fmt)
        assert [item.entry for item in back] == [entry]


# --- the canonical job digest -----------------------------------------------------------------

json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**53), max_value=2**53), st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=20,
)
specs = st.fixed_dictionaries(
    {
        "argv": st.lists(st.text(min_size=1, max_size=20), min_size=1, max_size=5),
        "env": st.dictionaries(
            st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,10}", fullmatch=True), st.text(max_size=10), max_size=4
        ),
        "cwd": st.one_of(st.none(), st.text(min_size=1, max_size=20).map(lambda s: "/" + s)),
        "timeout": st.integers(min_value=1, max_value=2_592_000),
        "authgroup": st.one_of(st.none(), st.from_regex(r"[a-z][a-z0-9]{0,8}", fullmatch=True)),
    }
)


@FUZZ
@given(spec=specs)
def test_job_digest_survives_the_wire(spec: dict[str, Any]) -> None:
    """STS side: digest of the normalized spec, stored as canonical JSON; agent side: the lease
    document parsed back. Both must agree, or every job would be refused (or worse, a
    lenient comparison would be added)."""
    job_id = str(uuid.uuid4())
    stored = canonical_json(spec).decode("utf-8")
    leased = json.loads(json.dumps({"spec": json.loads(stored)}))["spec"]
    assert job_digest(job_id, "node1", "shell", leased) == job_digest(job_id, "node1", "shell", spec)


@FUZZ
@given(a=json_values, b=json_values)
def test_canonical_json_is_injective(a: Any, b: Any) -> None:
    """Different values never share a canonical form (so never a digest): an edited spec cannot
    keep its token. Key order never matters."""
    ca, cb = canonical_json(a), canonical_json(b)
    assert (ca == cb) == (json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True))
    if isinstance(a, dict):
        assert canonical_json(dict(reversed(list(a.items())))) == ca


@FUZZ
@given(spec=specs, field=st.sampled_from(["argv", "env", "cwd", "timeout", "authgroup", "type", "node", "id"]))
def test_every_field_is_bound_by_the_digest(spec: dict[str, Any], field: str) -> None:
    job_id = str(uuid.uuid4())
    base = job_digest(job_id, "node1", "shell", spec)
    edited = json.loads(json.dumps(spec))
    args = [job_id, "node1", "shell"]
    if field == "argv":
        edited["argv"] = [*spec["argv"], "x"]
    elif field == "env":
        edited["env"] = {**spec["env"], "ZZ_INJECTED": "1"}
    elif field == "cwd":
        edited["cwd"] = (spec["cwd"] or "") + "/x"
    elif field == "timeout":
        edited["timeout"] = spec["timeout"] + 1
    elif field == "authgroup":
        edited["authgroup"] = (spec["authgroup"] or "") + "z"
    else:
        args[{"id": 0, "node": 1, "type": 2}[field]] += "x"
    assert job_digest(args[0], args[1], args[2], edited) != base


# --- the token decoder front end --------------------------------------------------------------

KEY = ec.generate_private_key(ec.SECP256R1())
KID = jwk_thumbprint(KEY.public_key())
ISSUER = "https://sts.test/realms/jobmgr"


class Resolver:
    def issuer_trust(self, issuer: str) -> IssuerTrust | None:
        if issuer != ISSUER:
            return None
        return IssuerTrust(
            "jobmgr", ISSUER, frozenset({"ES256"}), {KID: VerificationKey(KID, "ES256", KEY.public_key())}
        )

    def refreshed_trust(self, issuer: str) -> IssuerTrust | None:
        return None


def genuine() -> str:
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "sub": "user:jobmgr/uid=john,ou=people,dc=jobmgr,dc=example",
        "aud": "node1",
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "jti": str(uuid.uuid4()),
        "realm": "jobmgr",
        "groups": [],
        "job_id": "j",
        "job_digest": "d",
    }
    return jwt.encode(claims, KEY, algorithm="ES256", headers={"kid": KID, "typ": "job+jwt"})


TOKEN = genuine()
B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


@FUZZ
@given(
    data=st.one_of(
        st.text(max_size=400),
        st.binary(max_size=400),
        st.lists(st.text(B64, max_size=60), min_size=1, max_size=5).map(".".join),
    )
)
def test_parse_compact_only_ever_refuses_as_malformed(data: str | bytes) -> None:
    try:
        parsed = parse_compact(data)
    except TokenMalformed:
        return
    assert isinstance(parsed.header, dict) and isinstance(parsed.claims, dict)


@FUZZ
@given(
    position=st.integers(min_value=0, max_value=len(TOKEN) - 1),
    replacement=st.sampled_from(B64 + ".=+/ "),
    operation=st.sampled_from(["replace", "insert", "delete"]),
)
def test_any_mutation_of_a_genuine_token_is_refused(position: int, replacement: str, operation: str) -> None:
    """One character changed, inserted or removed anywhere: a ``TokenError`` (never another
    exception, never acceptance). Non-canonical base64url spellings are refused too."""
    if operation == "replace":
        mutated = TOKEN[:position] + replacement + TOKEN[position + 1 :]
    elif operation == "insert":
        mutated = TOKEN[:position] + replacement + TOKEN[position:]
    else:
        mutated = TOKEN[:position] + TOKEN[position + 1 :]
    assume(mutated != TOKEN)
    with pytest.raises(TokenError):
        verify(mutated, JOB_TOKEN, Resolver(), audience="node1")


@FUZZ
@given(
    header=st.dictionaries(
        st.sampled_from(["alg", "typ", "kid", "crit", "jku", "jwk", "x5u", "zip", "b64"]), json_values, max_size=5
    ),
    claims=st.dictionaries(
        st.sampled_from(["iss", "sub", "aud", "exp", "nbf", "iat", "jti", "realm", "groups"]), json_values, max_size=9
    ),
)
def test_arbitrary_headers_and_claims_never_crash_the_verifier(header: dict[str, Any], claims: dict[str, Any]) -> None:
    """A signed token with hostile members: refused with a ``TokenError``, whatever the types."""
    body = {**claims, "iss": claims.get("iss", ISSUER)}
    signing_input = ".".join(jwt.utils.base64url_encode(json.dumps(v).encode()).decode() for v in (header, body))
    signature = jwt.utils.base64url_encode(jwt.get_algorithm_by_name("ES256").sign(signing_input.encode(), KEY))
    token = f"{signing_input}.{signature.decode()}"
    try:
        verify(token, JOB_TOKEN, Resolver(), audience="node1")
    except TokenError:
        return
    except JobstsError as exc:  # nothing but token refusals may escape
        pytest.fail(f"unexpected {type(exc).__name__}: {exc.code}")
    pytest.fail("a token with arbitrary header and claims was accepted")


# --- the authorization-table import -------------------------------------------------------------

cells = st.one_of(
    st.sampled_from(
        [
            "user:jobmgr/uid=john",
            "group:cellB/cn=ops",
            "special:EVERYONE",
            "operator",
            "administrator",
            "monitor",
            "allow",
            "deny",
            "*",
            "authgroup:payroll",
            "",
        ]
    ),
    st.text(max_size=30),
)


@FUZZ
@given(
    rows=st.lists(st.lists(cells, min_size=1, max_size=5), max_size=6),
    header=st.sampled_from(["access_id,role,effect,scope", "access_id,role", "role,access_id", "", "x,y"]),
)
def test_csv_import_refuses_or_reads_valid_entries(rows: list[list[str]], header: str) -> None:
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer)
    for row in rows:
        writer.writerow(row)
    text = (header + "\n" if header else "") + buffer.getvalue()
    try:
        found = parse_text(text, "csv")
    except AuthzError:
        return
    for item in found:
        AccessId.parse(str(item.entry.principal))  # every accepted principal is a valid access ID
    assert len({item.entry.key for item in found}) == len(found)


@FUZZ
@given(
    document=json_values
    | st.fixed_dictionaries(
        {
            "entries": st.lists(
                st.dictionaries(
                    st.sampled_from(["access_id", "role", "effect", "scope", "extra"]), json_values | cells, max_size=5
                ),
                max_size=4,
            )
        }
    )
)
def test_json_import_refuses_or_reads_valid_entries(document: Any) -> None:
    try:
        found = parse_text(json.dumps(document), "json")
    except AuthzError:
        return
    for item in found:
        AccessId.parse(str(item.entry.principal))
        assert export_entries([item.entry], "json")


@FUZZ
@given(raw=st.text(max_size=300), fmt=st.sampled_from(["csv", "json"]))
def test_arbitrary_text_import_raises_only_authz_errors(raw: str, fmt: str) -> None:
    try:
        parse_text(raw, fmt)  # type: ignore[arg-type]
    except AuthzError:
        pass
