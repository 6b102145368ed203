"""Benchmark: password-grant logins/s of the STS under gunicorn, against the raw ldap3 loop.

Starts the test harness's slapd (tests/ldap_harness.py) and the STS (``sts.wsgi:app`` under
gunicorn on loopback, SQLite, realm ``jobmgr`` on the slapd), then in the same run:

* logins: N client threads (one keep-alive httpx client each) POST ``grant_type=password``
  for jobmgr ``john`` (nested groups); reports logins/s, p50 and p99 latency;
* raw: the Foundation benchmark's raw ldap3 loop (search the user, search the groups level by
  level, bind as the user on a fresh connection) on N threads: the directory's physical limit;
  the ratio logins/raw is the figure of merit (goal >= 0.5);
* signing: ``KeyStore.sign`` (claims -> compact JWS with kid/typ) against raw
  ``cryptography`` signing of the same signing input, per algorithm, one thread.

Usage: ``python bench/token_endpoint.py [--seconds 5] [--threads 8] [--workers N]`` (default: one per CPU).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import httpx  # noqa: E402
from cryptography.hazmat.primitives import hashes  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding  # noqa: E402
from realm_auth import measure, raw_worker  # noqa: E402

from sts.keys.master_key import create_key_file  # noqa: E402
from tests.ldap_harness import SlapdServer, ldif_realm_table  # noqa: E402
from tests.loopback import listening_socket, port_of, socket_activation  # noqa: E402

ALGORITHMS = ("ES256", "EdDSA", "RS256", "PS256")
SUBJECT = "user:jobmgr/uid=john,ou=people,dc=jobmgr,dc=example"


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return json.dumps(value) if isinstance(value, str) else str(value)


def write_config(workdir: Path, base_url: str, realms: list[dict[str, Any]]) -> Path:
    create_key_file(workdir / "master.key")
    database = _toml("sqlite:///" + str(workdir / "b.db"))
    lines = ["[sts]", f"base_url = {_toml(base_url)}", f"database_url = {database}", 'master_key_file = "master.key"']
    for table in realms:
        lines += ["[[realms]]", f"name = {_toml(table['name'])}", "[realms.registry]"]
        lines += [f"{k} = {_toml(v)}" for k, v in table["registry"].items()]
        if "algorithm" in table:
            lines += ["[realms.token]", f"algorithm = {_toml(table['algorithm'])}"]
    path = workdir / "sts.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def logins(url: str, threads: int, seconds: float) -> tuple[float, list[float]]:
    latencies: list[list[float]] = [[] for _ in range(threads)]
    stop = threading.Event()
    form = {"grant_type": "password", "username": "john", "password": "john-password"}

    def run(i: int) -> None:
        with httpx.Client(timeout=30) as http:
            while not stop.is_set():
                started = time.perf_counter()
                response = http.post(f"{url}/realms/jobmgr/token", data=form)
                if response.status_code != 200:
                    raise RuntimeError(f"login failed: {response.status_code} {response.text[:200]}")
                latencies[i].append(time.perf_counter() - started)

    pool = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    started = time.perf_counter()
    for thread in pool:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in pool:
        thread.join()
    elapsed = time.perf_counter() - started
    flat = [x for per in latencies for x in per]
    return len(flat) / elapsed, flat


def start_gunicorn(config: Path, sock: socket.socket, workers: int, threads: int) -> subprocess.Popen[bytes]:
    """gunicorn serving on ``sock`` (a listening socket we hold: no port race)."""
    port = port_of(sock)
    env = {**os.environ, "JOBSTS_CONFIG": str(config)}
    gunicorn = str(Path(sys.executable).with_name("gunicorn"))
    argv, fds = socket_activation(
        [gunicorn, "-w", str(workers), "--threads", str(threads), "--log-level", "warning", "sts.wsgi:app"], sock
    )
    process = subprocess.Popen(argv, cwd=ROOT, env=env, pass_fds=fds)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        if process.poll() is not None:
            raise RuntimeError("gunicorn exited")
        time.sleep(0.2)
    process.terminate()
    raise RuntimeError("STS did not become ready")


def raw_signer(private: Any, algorithm: str) -> Callable[[bytes], bytes]:
    if algorithm == "ES256":
        ecdsa = ec.ECDSA(hashes.SHA256())
        return lambda data: bytes(private.sign(data, ecdsa))
    if algorithm == "EdDSA":
        assert isinstance(private, ed25519.Ed25519PrivateKey)
        return lambda data: private.sign(data)
    pad = padding.PKCS1v15() if algorithm == "RS256" else padding.PSS(padding.MGF1(hashes.SHA256()), 32)
    return lambda data: bytes(private.sign(data, pad, hashes.SHA256()))


def rate(fn: Callable[[], object], seconds: float) -> float:
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        for _ in range(20):
            fn()
        count += 20
    return count / (time.perf_counter() - started)


def signing(workdir: Path, seconds: float) -> None:
    from sts.services import build_services

    tables = [{**ldif_realm_table("jobmgr"), "name": f"r{alg}", "algorithm": alg} for alg in ALGORITHMS]
    sign_dir = workdir / "signing"
    sign_dir.mkdir()
    from sts.config import load_sts_config

    services = build_services(load_sts_config(write_config(sign_dir, "https://sts.bench", tables), environ={}))
    try:
        now = int(time.time())
        for alg in ALGORITHMS:
            realm = f"r{alg}"
            claims = {
                "iss": services.config.issuer(realm),
                "sub": SUBJECT,
                "aud": "https://sts.bench",
                "iat": now,
                "nbf": now,
                "exp": now + 300,
                "jti": str(uuid.uuid4()),
                "realm": realm,
                "groups": ["group:jobmgr/cn=operators,ou=groups,dc=jobmgr,dc=example"],
                "preferred_username": "john",
                "client_id": "jobsts",
            }
            signing_input = services.keys.sign(realm, claims, "at+jwt").rsplit(".", 1)[0].encode()
            raw = raw_signer(services.keys.realm_keys(realm).private, alg)
            ours = rate(functools.partial(services.keys.sign, realm, claims, "at+jwt"), seconds)
            physical = rate(functools.partial(raw, signing_input), seconds)
            print(
                f"signing {alg:6}: KeyStore.sign {ours:9.0f}/s   raw cryptography {physical:9.0f}/s   "
                f"ratio {ours / physical:.2f}"
            )
    finally:
        services.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="jobsts-bench-sts-"))
    (workdir / "slapd").mkdir()
    slapd = SlapdServer(workdir / "slapd").start()
    gunicorn = None
    try:
        sock = listening_socket()
        url = f"http://127.0.0.1:{port_of(sock)}"
        config = write_config(workdir, url, [slapd.realm_table("jobmgr", pool_size=8)])
        gunicorn = start_gunicorn(config, sock, args.workers, 4)
        print(f"STS {url} (gunicorn {args.workers} workers x 4 threads), slapd {slapd.url}, {os.cpu_count()} CPUs")
        logins(url, args.threads, 1.0)  # warm up: pools, keys, caches
        ours, latencies = logins(url, args.threads, args.seconds)
        measure(lambda: raw_worker(slapd, "jobmgr", "john"), args.threads, 0.5)
        raw = measure(lambda: raw_worker(slapd, "jobmgr", "john"), args.threads, args.seconds)
        print(
            f"password grant: {ours:8.1f} logins/s  p50 {percentile(latencies, 0.5) * 1000:6.1f} ms  "
            f"p99 {percentile(latencies, 0.99) * 1000:6.1f} ms  ({len(latencies)} logins, {args.threads} clients)"
        )
        print(f"raw ldap3 loop: {raw:8.1f} calls/s on {args.threads} threads")
        print(f"ratio logins/raw: {ours / raw:.2f} (goal >= 0.5)")
        signing(workdir, max(1.0, args.seconds / 2))
    finally:
        if gunicorn is not None:
            gunicorn.terminate()
            gunicorn.wait(timeout=30)
        slapd.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
