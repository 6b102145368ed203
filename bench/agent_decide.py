"""Benchmark: full agent decisions per second vs raw ES256 verification of the same signature.

A decision is the whole pipeline (a)-(f) of ``agent_client.decision.NodeDecider``: strict JWS
parsing, issuer trust, pinned ES256 signature check, claims, job binding (recomputed
job_digest), jti against the revocation list and the journal (the in-memory mirror of its
durable SQLite record), principals, required role, a 10,000-entry authorization table, and
account mapping (pwd/grp lookups). Nothing is executed. The physical limit measured in the same
run is ``cryptography``'s ECDSA P-256 verify of the same signing input and signature. Also
measured beside it: PyJWT's own ``ECAlgorithm.verify`` of that signature (the signature step
alone, raw r||s to DER), the algorithm registry's ES256 verify of it, the shared ``verify()``,
and the same token through PyJWT's and joserfc's full decode (signature, time window, issuer,
audience, required claims). Each figure is a ratio to the raw verify of the same run, by CPU
and by wall time, min/median/max over ``--runs`` runs. Goals: decisions >= 0.6, verify() >= 0.7.
Writes its own section of ``bench/results.md`` (``results_section.write_section``).

    .venv/bin/python bench/agent_decide.py [--seconds 3] [--runs 3] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple, cast

import jwt
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from joserfc import jwt as joserfc_jwt
from joserfc.jwk import ECKey
from joserfc.jwt import JWTClaimsRegistry
from machine import machine
from results_section import write_section

from agent_client.config import MappingConfig, MappingRule
from agent_client.decision import NodeDecider, NodePolicy
from agent_client.journal import StartedJournal
from agent_client.trust_store import TrustStore
from authz_tables.decision import Snapshot
from authz_tables.entries import parse_entry
from authz_tables.roles import Role
from realms.tokens.algorithms import ALGORITHMS
from realms.tokens.jws import b64url_decode
from realms.tokens.keys import jwk_thumbprint, public_jwk
from realms.tokens.profiles import JOB_TOKEN
from realms.tokens.verify import verify
from realms.wire.digest import job_digest
from realms.wire.documents import parse_job

STS = "https://sts.bench"
NODE = "bench-node"
REALM = "jobmgr"
USER = "user:jobmgr/uid=john,ou=people,dc=jobmgr,dc=example"
GROUP = "group:jobmgr/cn=operators,ou=groups,dc=jobmgr,dc=example"


def interleaved_rates(functions: list[Callable[[], object]], seconds: float) -> list[tuple[float, float]]:
    """(calls per wall second, calls per CPU second) of each function, measured in alternating
    bursts of 100 calls so that all see the same machine load. The CPU-time rate leaves out the
    time this process waited for a core, which keeps the ratios steady on a shared host."""
    for _ in range(50):
        for function in functions:
            function()
    wall = [0.0] * len(functions)
    cpu = [0.0] * len(functions)
    count = 0
    deadline = time.perf_counter() + len(functions) * seconds
    while time.perf_counter() < deadline:
        for index, function in enumerate(functions):
            started, started_cpu = time.perf_counter(), time.process_time()
            for _ in range(100):
                function()
            cpu[index] += time.process_time() - started_cpu
            wall[index] += time.perf_counter() - started
        count += 100
    return [(count / w, count / c) for w, c in zip(wall, cpu, strict=True)]


def build_table(size: int) -> Snapshot:
    rows: list[tuple[str, ...]] = [
        (f"user:jobmgr/uid=u{i},ou=people,dc=jobmgr,dc=example", "operator") for i in range(size - 2)
    ]
    rows += [(GROUP, "operator"), (f"group:jobmgr/cn=g{size},ou=groups,dc=jobmgr,dc=example", "monitor", "deny")]
    return Snapshot(parse_entry(*row) for row in rows)


Rates = tuple[float, float]  # (per wall second, per CPU second)


class DecisionRates(NamedTuple):
    """One run: every figure measured interleaved on the same token, as (wall, CPU) calls per second."""

    entries: int
    raw: Rates  # cryptography's P-256 verify of the same signing input and DER signature
    pyjwt_signature: Rates  # PyJWT's ECAlgorithm.verify: the signature step alone
    registry: Rates  # our algorithm registry's ES256 verify: the signature step alone
    pyjwt_decode: Rates  # PyJWT jwt.decode: signature + exp/nbf/iat/aud/iss + required claims
    joserfc_decode: Rates  # joserfc jwt.decode + JWTClaimsRegistry.validate, the same claims
    verify: Rates  # our verify(): every check of the job token profile
    decide: Rates  # NodeDecider.decide() on the job document as JSON: the whole decision (a)-(f)
    decide_parsed: Rates  # the same on the lease's parsed job (the agent loop parses each lease once)


def make_token() -> tuple[ec.EllipticCurvePrivateKey, dict[str, Any], str, dict[str, Any]]:
    """A signing key, a leased job document, its job token and the token's claims."""
    key = ec.generate_private_key(ec.SECP256R1())
    kid = jwk_thumbprint(key.public_key())
    job_id = str(uuid.uuid4())
    spec: dict[str, Any] = {
        "argv": ["/usr/bin/backup", "--all"],
        "env": {"LANG": "C.UTF-8"},
        "cwd": None,
        "timeout": 600,
        "authgroup": None,
    }
    job: dict[str, Any] = {
        "id": job_id, "node": NODE, "type": "run", "submitter": USER, "realm": REALM,
        "spec": spec,
        "not_before": 0, "deadline": 2_000_000_000, "attempt": 1,
    }  # fmt: skip
    now = int(time.time())
    claims = {
        "iss": f"{STS}/realms/{REALM}", "sub": USER, "aud": NODE, "iat": now, "nbf": now, "exp": now + 3600,
        "jti": uuid.uuid4().hex, "realm": REALM,
        "groups": [GROUP, "group:jobmgr/cn=ops-all,ou=groups,dc=jobmgr,dc=example"],
        "job_id": job["id"], "job_digest": job_digest(job_id, NODE, "run", spec),
    }  # fmt: skip
    token = jwt.encode(claims, key, algorithm="ES256", headers={"kid": kid, "typ": "job+jwt"})
    return key, job, token, claims


def measure_decisions(seconds: float, entries: int) -> DecisionRates:
    """Every figure of ``DecisionRates``, interleaved in one run on the same token."""
    key, job, token, claims = make_token()

    with tempfile.TemporaryDirectory() as directory:
        bundle = Path(directory) / "jobmgr.jwks.json"
        bundle.write_text(json.dumps({"keys": [public_jwk(key.public_key(), "ES256")]}))
        trust = TrustStore(
            realms=frozenset({"cellB", REALM}), issuer_of=lambda r: f"{STS}/realms/{r}", cache_dir=None, fetch=None,
            bundles={REALM: bundle, "cellB": bundle},
        )  # fmt: skip
        policy = NodePolicy(
            node_id=NODE, realm="cellB", trusted_realms=frozenset({REALM}), authgroups=frozenset(),
            job_types={"run": Role.OPERATOR},
            mapping=MappingConfig(rules=(MappingRule("realm", REALM, "nobody"),), fallback="deny"),
            leeway=30,
        )  # fmt: skip
        table = build_table(entries)
        with StartedJournal(Path(directory) / "started.sqlite") as journal:
            decider = NodeDecider(policy, trust, table, revoked={"some-other-jti"}, journal=journal)
            first = decider.decide(job, token)
            assert first.allowed, first.explain()
            parsed_job = parse_job(job)

            signing_input, _, signature_b64 = token.rpartition(".")
            raw = b64url_decode(signature_b64, "signature")
            der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
            public = key.public_key()
            algorithm = ec.ECDSA(hashes.SHA256())
            message = signing_input.encode("ascii")

            pyjwt_es256 = jwt.get_algorithm_by_name("ES256")
            registry_es256 = ALGORITHMS["ES256"]
            required = sorted(JOB_TOKEN.required_claims)
            joserfc_key = ECKey.import_key(cast(Any, public_jwk(public, "ES256")))
            joserfc_claims = JWTClaimsRegistry(
                leeway=30,
                iss={"essential": True, "value": claims["iss"]},
                aud={"essential": True, "value": NODE},
                **cast(Any, {name: {"essential": True} for name in required if name not in ("iss", "aud")}),
            )

            def raw_verify() -> None:
                public.verify(der, message, algorithm)

            def pyjwt_decode() -> None:
                jwt.decode(
                    token, public, algorithms=["ES256"], audience=NODE, issuer=claims["iss"], leeway=30,
                    options={"require": required},
                )  # fmt: skip

            def joserfc_decode() -> None:
                joserfc_claims.validate(joserfc_jwt.decode(token, joserfc_key, algorithms=["ES256"]).claims)

            rates = interleaved_rates(
                [
                    raw_verify,
                    lambda: pyjwt_es256.verify(message, public, raw),
                    lambda: registry_es256.verify(message, public, raw),
                    pyjwt_decode,
                    joserfc_decode,
                    lambda: verify(token, JOB_TOKEN, trust, audience=NODE, leeway=30),
                    lambda: decider.decide(job, token),
                    lambda: decider.decide(parsed_job, token),
                ],
                seconds,
            )
    return DecisionRates(len(table), *rates)


def _spread(values: list[float], digits: int = 2) -> str:
    return f"{min(values):.{digits}f} / {statistics.median(values):.{digits}f} / {max(values):.{digits}f}"


# (label, DecisionRates field, goal): each row is the field's rate divided by the raw verify's.
FIGURES = (
    ("PyJWT `ECAlgorithm.verify` (signature step only)", "pyjwt_signature", ""),
    ("our registry's ES256 verify (signature step only)", "registry", ""),
    ("PyJWT `jwt.decode` (signature + time, iss, aud, required claims)", "pyjwt_decode", ""),
    ("joserfc `jwt.decode` + `JWTClaimsRegistry.validate`", "joserfc_decode", ""),
    ("**`verify()`** (every job-token check)", "verify", ">= 0.70"),
    ("**`NodeDecider.decide()`** (the whole decision, a-f, job parsed from JSON)", "decide", ">= 0.60"),
    ("`NodeDecider.decide()` on the lease's parsed job (the loop parses each lease once)", "decide_parsed", ""),
)


def report(runs: list[DecisionRates], seconds: float, loads: list[float]) -> list[str]:
    """The markdown section: per figure, min / median / max over the runs of the ratio to raw, by CPU and wall."""
    lines = [
        "## Agent decisions against raw ES256 verify (bench/agent_decide.py)",
        "",
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {machine()}, shared with other engineers' "
        f"builds and test suites (1-minute load average at the start of each run and at the end: "
        f"{', '.join(f'{load:.1f}' for load in loads)}); {len(runs)} runs of "
        f"{seconds:g} s per figure, interleaved in bursts of 100 calls on the same job token; "
        f"table of {runs[0].entries:,} entries.",
        "",
        "| figure | us per call (CPU, median) | ratio to raw, CPU time: min / median / max "
        "| ratio to raw, wall time: min / median / max | goal |",
        "|---|---|---|---|---|",
        f"| raw `cryptography` P-256 verify (the limit) | {statistics.median(1e6 / r.raw[1] for r in runs):.1f} "
        "| 1.00 | 1.00 | |",
    ]
    for label, name, goal in FIGURES:
        values = [getattr(r, name) for r in runs]
        per_call = statistics.median(1e6 / v[1] for v in values)
        cpu = _spread([v[1] / r.raw[1] for v, r in zip(values, runs, strict=True)])
        wall = _spread([v[0] / r.raw[0] for v, r in zip(values, runs, strict=True)])
        lines.append(f"| {label} | {per_call:.1f} | {cpu} | {wall} | {goal} |")
    lines += ["", *NOTES]
    return lines


NOTES = [
    "The CPU-time ratio leaves out the time the process waited for a core (the machine is shared);",
    "the wall-time ratio is beside it. Nothing is cached per token: every call parses, verifies and",
    "checks the token again; what is reused is immutable (the verdict on a header's exact bytes,",
    "a parsed access ID, a principal set, a table snapshot's decision for (principals, role, scopes))",
    "or bounded by the NSS cache window (account mappings). The journal's `seen()` reads an in-memory",
    "mirror of the durable record. The shortcuts of this round take the common case inline and fall",
    "back to the full check for anything else (each has a test that the fallback still refuses).",
    "",
    "Second pass (2026-12-02). Before it, on the code as it was, 3 runs at load 7.8-8.5: verify()",
    "0.67 / 0.68 / 0.70, decide() from JSON 0.46 / 0.46 / 0.49, on the parsed job 0.56 / 0.57 / 0.61.",
    "The old and the new code alternated, 3 runs of 2 s each, load 10-13 (CPU ratio, median of 3):",
    "verify() 0.66 -> 0.71, decide() from JSON 0.47 -> 0.50, decide() on the parsed job 0.57 -> 0.61,",
    "the registry's ES256 step 0.96 -> 0.99 of raw.",
    "",
    "What each change saves per call, old code against new, each piece alone, interleaved, CPU time,",
    "best of bursts of 200 (raw verify 68.4 us then). A piece alone runs with warm caches; inside the",
    "decision, between two ECDSA verifications, the same Python costs about twice as much (the job",
    "parse: 8.5 us alone, 17 us as the difference between deciding from JSON and on the parsed job).",
    "",
    "| change | before us | after us | saved us | of raw verify |",
    "|---|---|---|---|---|",
    "| r\\|\\|s to DER by a precomputed prefix when r and s have no leading zero byte (else "
    "`encode_dss_signature`) | 0.92 | 0.30 | 0.62 | 0.9% |",
    "| EC public key checked by its concrete type before the ABC's `isinstance` | 0.32 | 0.05 | 0.27 | 0.4% |",
    "| decision trace kept as (step, verdict, detail) tuples, `TraceStep`s built when first read "
    "(six passed steps) | 1.44 | 0.51 | 0.93 | 1.4% |",
    "| leased job: exact `str`/`int` fields checked inline, positional constructor, spec document "
    "built once, empty env | 8.66 | 7.78 | 0.88 | 1.3% |",
    "| claims: whole-second dates in range and the lifetime under its maximum checked inline | "
    "2.04 | 1.72 | 0.32 | 0.5% |",
    "| payload: strict-mode base64 decoder (no alphabet translate) and the JSON checks in one frame | "
    "8.36 | 8.00 | 0.37 | 0.5% |",
    "| compact split: one `split` for the common shape | 0.54 | 0.49 | 0.06 | 0.1% |",
    "",
    "Also: a table decision's and a mapping's memo keys without generators for empty scopes. The",
    "agent loop now records all the jobs of one lease in one journal commit (one fsync) before their",
    "one claim (`tests/agent_client/test_loop.py` counts the commit and reads the file at the claim);",
    "that is per lease, not per decision, so it does not show here.",
    "",
    "What stands between these figures and the goals: in the alternated runs verify() reached the",
    "0.7 goal (median 0.71) and decide() on the parsed job 0.61, decide() from JSON did not (0.50).",
    "At load 10 and more every ratio here sits lower than on a quiet machine. What is left per call",
    "(alone, warm): the payload's base64url and strict JSON with the duplicate check (~8 us: the C",
    "base64 decoder alone is 1.3 us, the scanner with the pairs hook 2.2 us), parsing the leased job",
    "and its spec (~8 us: the wire contract's checks, the canonical JSON ~0.9 us, three frozen",
    "dataclasses at ~0.9 us each for JobSpec, JobDocument and VerifiedToken), the claims checks",
    "(~1.7 us), the job digest (~1 us). Not done: building the frozen dataclasses through their slot",
    "descriptors (about 2 us, but it bypasses the dataclass constructor), mypyc.",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--entries", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="print only; leave bench/results.md alone")
    args = parser.parse_args()
    runs, loads = [], []
    for _ in range(args.runs):
        loads.append(os.getloadavg()[0])
        runs.append(measure_decisions(args.seconds, args.entries))
    loads.append(os.getloadavg()[0])
    lines = report(runs, args.seconds, loads)
    print("\n".join(lines))
    if not args.no_write:
        write_section("bench/agent_decide.py", lines)


if __name__ == "__main__":
    main()
