"""Benchmark: full agent decisions per second vs raw ES256 verification of the same signature.

A decision is the whole pipeline (a)-(f) of ``agent_client.decision.NodeDecider``: strict JWS
parsing, issuer trust, pinned ES256 signature check, claims, job binding (recomputed
job_digest), jti against the revocation list and the durable SQLite record, principals,
required role, a 10,000-entry authorization table, and account mapping (pwd/grp lookups).
Nothing is executed. The physical limit measured in the same run is ``cryptography``'s
ECDSA P-256 verify of the same signing input and signature. Also measured beside it: PyJWT's
own ``ECAlgorithm.verify`` of that signature (the signature step alone, raw r||s to DER), the
algorithm registry's ES256 verify of it, and the shared ``verify()``. Each figure is a ratio
to the raw verify of the same run, by wall and by CPU time; the script prints min/median/max
over ``--runs`` runs. Goals: decisions >= 0.6, verify() >= 0.7.

    python bench/agent_decide.py [--seconds 3] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

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


def measure_decisions(seconds: float, entries: int) -> tuple[int, Rates, Rates, Rates, Rates, Rates]:
    """(entries, raw verify, PyJWT and registry signature steps, shared verify(), decisions), interleaved."""
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

            signing_input, _, signature_b64 = token.rpartition(".")
            raw = b64url_decode(signature_b64, "signature")
            der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
            public = key.public_key()
            algorithm = ec.ECDSA(hashes.SHA256())
            message = signing_input.encode("ascii")

            pyjwt_es256 = jwt.get_algorithm_by_name("ES256")
            registry_es256 = ALGORITHMS["ES256"]

            def raw_verify() -> None:
                public.verify(der, message, algorithm)

            raw_rate, pyjwt_rate, registry_rate, verify_rate, decide_rate = interleaved_rates(
                [
                    raw_verify,
                    lambda: pyjwt_es256.verify(message, public, raw),
                    lambda: registry_es256.verify(message, public, raw),
                    lambda: verify(token, JOB_TOKEN, trust, audience=NODE, leeway=30),
                    lambda: decider.decide(job, token),
                ],
                seconds,
            )
    return len(table), raw_rate, pyjwt_rate, registry_rate, verify_rate, decide_rate


def _spread(values: list[float], digits: int = 2) -> str:
    return f"{min(values):.{digits}f} / {statistics.median(values):.{digits}f} / {max(values):.{digits}f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--entries", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    runs = [measure_decisions(args.seconds, args.entries) for _ in range(args.runs)]
    print(f"table entries: {runs[0][0]}; {args.runs} runs; min / median / max")
    for clock, name in ((0, "wall"), (1, "CPU")):
        print(f"-- by {name} time")
        print(f"raw ES256 verify (limit) us:     {_spread([1e6 / r[1][clock] for r in runs], 1)}")
        print(f"verify() us:                     {_spread([1e6 / r[4][clock] for r in runs], 1)}")
        print(f"decide() us:                     {_spread([1e6 / r[5][clock] for r in runs], 1)}")
        print(f"PyJWT ES256 signature step/raw:  {_spread([r[2][clock] / r[1][clock] for r in runs])}")
        print(f"registry ES256 verify/raw:       {_spread([r[3][clock] / r[1][clock] for r in runs])}")
        print(f"shared verify()/raw:             {_spread([r[4][clock] / r[1][clock] for r in runs])}   (goal >= 0.70)")
        print(f"full agent decisions/raw:        {_spread([r[5][clock] / r[1][clock] for r in runs])}   (goal >= 0.60)")


if __name__ == "__main__":
    main()
