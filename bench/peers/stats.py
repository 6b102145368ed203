"""Min / median / max over repeated runs, and markdown rows in the style of bench/results.md."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Spread:
    """The median of a few runs with their minimum and maximum."""

    low: float
    median: float
    high: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        if not values:
            raise ValueError("no values")
        return cls(min(values), statistics.median(values), max(values))

    def format(self, spec: str = ".0f", unit: str = "") -> str:
        """``median (min-max)``, e.g. ``212 (198-230)`` or ``0.74 (0.66-0.77)``."""
        return f"{self.median:{spec}}{unit} ({self.low:{spec}}-{self.high:{spec}}{unit})"


def paired_ratios(ours: Sequence[float], peer: Sequence[float]) -> Spread:
    """Spread of ``ours[i] / peer[i]``: each run's two figures were measured side by side, so
    the ratio is taken within a run, never between a good minute of one and a bad of the other."""
    if len(ours) != len(peer) or not ours:
        raise ValueError(f"need as many runs of each side ({len(ours)} vs {len(peer)})")
    return Spread.of([a / b for a, b in zip(ours, peer, strict=True) if b])


def markdown_row(cells: Sequence[object]) -> str:
    return "| " + " | ".join(str(cell) for cell in cells) + " |"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = [markdown_row(header), markdown_row(["---"] * len(header))]
    lines += [markdown_row(row) for row in rows]
    return "\n".join(lines)
