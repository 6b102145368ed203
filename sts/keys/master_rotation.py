"""Master-key rotation: every blob sealed under a fallback master key is sealed again under
the current one, online, in batches.

What is sealed under the master key: the realms' private signing keys (AAD: ring and kid)
and the stored job tokens (AAD: the job id). Credentials given at submit are sealed to the
node's public key (``realms.sealing``), not to the master key, and need nothing here.

Each batch is one transaction, and each row is replaced only if it still holds the blob that
was read (compare-and-swap), so the STS keeps running, writing and ending jobs meanwhile. A
crash leaves every row sealed under either the old or the new key, both of which the STS
reads during the rotation; running the rotation again finishes it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import InstrumentedAttribute

from sts.db import Database
from sts.jobs.models import Job
from sts.keys.master_key import MasterKey
from sts.keys.models import SigningKey
from sts.keys.ring_keys import signing_key_aad

DEFAULT_BATCH = 200


@dataclass(frozen=True, slots=True)
class SealedColumn:
    """One column of blobs sealed under the master key, and how each row's AAD is formed."""

    name: str
    key: InstrumentedAttribute[Any]
    blob: InstrumentedAttribute[Any]
    aad: Callable[[Any], bytes]


SEALED_COLUMNS = (
    SealedColumn(
        "signing keys", SigningKey.kid, SigningKey.private_key, lambda row: signing_key_aad(row.realm, row.kid)
    ),
    SealedColumn("job tokens", Job.id, Job.token_ciphertext, lambda row: row.id.encode("ascii")),
)


@dataclass(slots=True)
class RotationReport:
    resealed: dict[str, int] = field(default_factory=dict)
    current: dict[str, int] = field(default_factory=dict)


# Called after each committed batch with (column name, rows resealed so far in it).
Progress = Callable[[str, int], None]


def rotate_master_key(
    db: Database, master_key: MasterKey, *, batch_size: int = DEFAULT_BATCH, progress: Progress | None = None
) -> RotationReport:
    """Reseal every blob that a fallback key seals under ``master_key``'s current key. Resumable."""
    report = RotationReport()
    for column in SEALED_COLUMNS:
        report.resealed[column.name] = report.current[column.name] = 0
        after: Any = None
        while True:
            with db.session(immediate=True) as session:
                statement = select(column.blob.class_).where(column.blob.is_not(None)).order_by(column.key)
                if after is not None:
                    statement = statement.where(column.key > after)
                rows = list(session.scalars(statement.limit(batch_size)))
                for row in rows:
                    old = getattr(row, column.blob.key)
                    new = master_key.reseal(old, column.aad(row))
                    if new is None:
                        report.current[column.name] += 1
                        continue
                    pk = getattr(row, column.key.key)
                    # Why: the STS runs meanwhile; replace the blob only if nobody changed it since.
                    changed = session.execute(
                        update(column.blob.class_)
                        .where(column.key == pk, column.blob == old)
                        .values({column.blob.key: new})
                        .execution_options(synchronize_session=False)
                    )
                    report.resealed[column.name] += getattr(changed, "rowcount", 0)
                session.expunge_all()
            if rows:
                after = getattr(rows[-1], column.key.key)
                if progress is not None:
                    progress(column.name, report.resealed[column.name])
            if len(rows) < batch_size:
                break
    return report


def sealing_status(db: Database, master_key: MasterKey) -> dict[str, tuple[int, int]]:
    """Per sealed column: (rows under the current key, rows still under a fallback key)."""
    found: dict[str, tuple[int, int]] = {}
    with db.session() as session:
        for column in SEALED_COLUMNS:
            current = old = 0
            for row in session.scalars(select(column.blob.class_).where(column.blob.is_not(None))):
                if master_key.is_current(getattr(row, column.blob.key), column.aad(row)):
                    current += 1
                else:
                    old += 1
            found[column.name] = (current, old)
    return found
