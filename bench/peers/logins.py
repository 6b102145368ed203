"""A password-grant load driver (RFC 6749 §4.3) shared by every login server in the bench.

N client threads, each with one keep-alive ``httpx`` client, POST the same form to a token
endpoint for a duration or a count. Every response must be HTTP 200 with an ``access_token``:
failures are counted and raise :class:`LoginFailures` at the end, never folded into a rate.
While the clients run, :class:`~bench.peers.cpu.CpuMeter` readings give the server's, the
directory's and the database backends' CPU per login, so that jobsts and a peer can be driven
by the very same client code in the same run.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from bench.peers.cpu import CpuMeter

PidSource = Callable[[], Iterable[int]]
TokenCheck = Callable[[dict[str, Any]], None]


class LoginFailures(RuntimeError):
    """Some logins did not return HTTP 200 with an access token."""


@dataclass(frozen=True)
class LoginFigures:
    """One measured run. CPU figures are milliseconds per successful login; ``None`` when that
    process set was not given."""

    clients: int
    logins: int
    seconds: float
    per_second: float
    p50_ms: float
    p99_ms: float
    server_cpu_ms: float
    slapd_cpu_ms: float | None
    database_cpu_ms: float | None

    @property
    def logins_per_server_cpu_second(self) -> float:
        return 1000.0 / self.server_cpu_ms if self.server_cpu_ms else float("inf")


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile (the same rule as bench/token_endpoint.py)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def _token_ok(response: httpx.Response) -> dict[str, Any] | None:
    if response.status_code != 200:
        return None
    try:
        body = response.json()
    except ValueError:
        return None
    token = body.get("access_token") if isinstance(body, dict) else None
    return body if isinstance(token, str) and token.count(".") == 2 else None


def drive_logins(
    token_url: str,
    form: Mapping[str, str],
    *,
    server: PidSource,
    clients: int = 8,
    seconds: float | None = 5.0,
    count: int | None = None,
    slapd: PidSource | None = None,
    database: PidSource | None = None,
    check: TokenCheck | None = None,
) -> LoginFigures:
    """Run ``clients`` threads of password logins for ``seconds`` (or ``count`` logins in all).

    ``server``, ``slapd`` and ``database`` give the pids whose CPU is charged to each figure
    (:func:`bench.peers.cpu.fixed`, :func:`bench.peers.cpu.tree`). ``check`` runs on the first
    token body of each client (e.g. verify the signature); it raises to fail the run.
    """
    if (seconds is None) == (count is None):
        raise ValueError("give exactly one of seconds and count")
    latencies: list[list[float]] = [[] for _ in range(clients)]
    failures: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()
    remaining = [count or 0]

    def take() -> bool:
        if count is None:
            return not stop.is_set()
        with lock:
            remaining[0] -= 1
            return remaining[0] >= 0

    ready = threading.Barrier(clients + 1)

    def run(index: int) -> None:
        try:
            logins(index)
        except Exception as exc:  # counted and raised below, never lost in a thread
            with lock:
                failures.append(f"client {index}: {type(exc).__name__}: {exc}")
            ready.abort()

    def logins(index: int) -> None:
        checked = check is None
        # Each client is built before the clock starts: an httpx.Client loads a CA bundle,
        # which on a loaded machine can take longer than a short run.
        with httpx.Client(timeout=30) as http:
            ready.wait(timeout=120)
            while take():
                started = time.perf_counter()
                try:
                    response = http.post(token_url, data=dict(form))
                except httpx.HTTPError as exc:
                    with lock:
                        failures.append(f"{type(exc).__name__}: {exc}")
                    continue
                elapsed = time.perf_counter() - started
                body = _token_ok(response)
                if body is None:
                    with lock:
                        failures.append(f"HTTP {response.status_code}: {response.text[:200]!r}")
                    continue
                if not checked and check is not None:
                    try:
                        check(body)
                    except Exception as exc:  # any check failure fails the whole run below
                        with lock:
                            failures.append(f"token check: {exc}")
                    checked = True
                latencies[index].append(elapsed)

    pool = [threading.Thread(target=run, args=(i,), name=f"login-client-{i}") for i in range(clients)]
    meters = [CpuMeter(source) if source is not None else None for source in (server, slapd, database)]
    for meter in meters:
        if meter is not None:
            meter.start()
    for thread in pool:
        thread.start()
    try:
        ready.wait(timeout=120)
    except threading.BrokenBarrierError:
        stop.set()
    started = time.perf_counter()
    if seconds is not None:
        time.sleep(seconds)
        stop.set()
    for thread in pool:
        thread.join()
    elapsed = time.perf_counter() - started
    spent = [meter.stop() if meter is not None else None for meter in meters]
    if failures:
        raise LoginFailures(
            f"{len(failures)} of {len(failures) + sum(map(len, latencies))} logins failed; first: {failures[:3]}"
        )
    flat = [x for per in latencies for x in per]
    if not flat:
        raise LoginFailures("no login completed")

    def per_login(cpu: float | None) -> float | None:
        return None if cpu is None else cpu * 1000 / len(flat)

    return LoginFigures(
        clients=clients,
        logins=len(flat),
        seconds=elapsed,
        per_second=len(flat) / elapsed,
        p50_ms=percentile(flat, 0.5) * 1000,
        p99_ms=percentile(flat, 0.99) * 1000,
        server_cpu_ms=per_login(spent[0]) or 0.0,
        slapd_cpu_ms=per_login(spent[1]),
        database_cpu_ms=per_login(spent[2]),
    )
