"""Settings of the ``ldif`` registry backend: ``[realms.registry] type = "ldif"``, validated at load.

The registry these settings open is ``realms.registries.ldif.registry.LdifRegistry``; the
backend table in ``realms.registries.base`` pairs the two, so this module imports neither.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from realms.registries.directory import DirectorySchema, TableReader


@dataclass(frozen=True, slots=True)
class LdifRegistryConfig:
    """``[realms.registry] type = "ldif"``: ``path`` plus the directory schema settings."""

    path: Path
    schema: DirectorySchema
    allow_plaintext: bool = False

    @classmethod
    def from_table(cls, realm: str, table: dict[str, Any], base_dir: Path) -> Self:
        reader = TableReader(realm, table)
        path = reader.path("path", base_dir)
        assert path is not None
        if not path.is_file():
            raise reader.fail("path", f"{path} is not a readable file")
        config = cls(
            path=path,
            schema=DirectorySchema.read(reader, require_bases=False),
            allow_plaintext=reader.boolean("allow_plaintext", False),
        )
        reader.finish()
        return config
