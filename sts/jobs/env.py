"""What the job manager needs from the rest of the STS, as narrow protocols, and its settings.

``JobEnv`` is built once per app by ``sts.jobs.manager.job_env`` from the service container;
tests build it directly. Nothing here reaches into Flask.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session

from realms.registries.base import Registry
from sts.config import StsConfig
from sts.db import Database
from sts.jobs.errors import JobStoreUnavailable


class Signer(Protocol):
    def sign(self, realm: str, claims: dict[str, Any], typ: str, *, session: Session | None = None) -> str:
        """A compact JWS over ``claims`` with the realm's active key and header ``typ``; with
        ``session``, the key's publication bump commits with the caller's transaction."""


class Cipher(Protocol):
    def encrypt(self, plaintext: bytes, aad: bytes) -> bytes: ...

    def decrypt(self, blob: bytes, aad: bytes) -> bytes: ...


class NodeView(Protocol):
    """The fields of a registered node the job manager reads."""

    @property
    def id(self) -> str: ...

    @property
    def realm(self) -> str: ...

    @property
    def authgroups(self) -> Sequence[str]: ...

    @property
    def trusted_realms(self) -> Sequence[str]: ...


class CredentialThrottle(Protocol):
    """The STS's brute-force protection (``sts.throttle.LoginThrottle``), shared with logins."""

    def counters(self, realm: str, username: str, address: str) -> Sequence[Any]: ...

    def state(self, counters: Sequence[Any]) -> tuple[bool, bool]: ...

    def failed(self, counters: Sequence[Any]) -> None: ...

    def succeeded(self, realm: str, username: str) -> None: ...


NodeLookup = Callable[[Session, str], NodeView | None]
Revoker = Callable[[Session, str, int, str], Any]
RevocationLister = Callable[[Session, int], Iterable[tuple[str, int]]]


@dataclass(frozen=True, slots=True)
class Submitter:
    """The verified caller of ``POST /api/v1/jobs`` (from its ``at+jwt``, never from the body)."""

    access_id: str
    realm: str
    groups: tuple[str, ...]
    username: str | None = None


@dataclass
class JobEnv:
    db: Database
    config: StsConfig
    signer: Signer
    cipher: Cipher
    get_node: NodeLookup
    revoke: Revoker
    list_revocations: RevocationLister
    registries: Mapping[str, Registry]
    throttle: CredentialThrottle | None = None
    clock: Callable[[], float] = time.time
    lease_seconds: int = 60
    default_job_ttl: int = 86400
    poll_interval: float = 0.5
    reap_interval: float = 5.0
    last_reap: float = 0.0
    # Wakes long-polling lease calls of this process when a job is submitted here.
    wakeup: threading.Condition = field(default_factory=threading.Condition)

    def now(self) -> int:
        return int(self.clock())

    @contextmanager
    def session(self, *, immediate: bool = False) -> Iterator[Session]:
        """A transaction; a lost or unreachable database becomes ``db.unavailable`` (503)."""
        try:
            with self.db.session(immediate=immediate) as session:
                yield session
        except (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError) as exc:
            raise JobStoreUnavailable(
                f"the job database is unavailable ({type(exc.orig if hasattr(exc, 'orig') else exc).__name__}); "
                "retry shortly"
            ) from None
        except sa_exc.DBAPIError as exc:
            if exc.connection_invalidated:
                raise JobStoreUnavailable("the job database connection was lost; retry shortly") from None
            raise

    def notify_submitted(self) -> None:
        with self.wakeup:
            self.wakeup.notify_all()

    def wait_for_work(self, seconds: float) -> None:
        with self.wakeup:
            self.wakeup.wait(timeout=seconds)
