"""The console's picture, drawn on the server as SVG geometry for a template (no script, no
library, nothing fetched): jobs per state per hour over the last 24 hours as stacked bars, and
refusals by code as horizontal bars. Colours come from CSS classes (``state-<name>``)."""

from __future__ import annotations

from dataclasses import dataclass

from sts.jobs.listing import Activity
from sts.jobs.states import JobState

WIDTH, HEIGHT = 720, 220
LEFT, BOTTOM, TOP = 40, 24, 10
BAR_ROW = 22


@dataclass(frozen=True, slots=True)
class Rect:
    x: float
    y: float
    width: float
    height: float
    css: str
    title: str


@dataclass(frozen=True, slots=True)
class Label:
    x: float
    y: float
    text: str
    anchor: str = "start"


@dataclass(frozen=True, slots=True)
class Chart:
    width: int
    height: int
    rects: list[Rect]
    labels: list[Label]


def _hour_label(hours: int, bucket: int) -> str:
    return f"-{hours - bucket}h"


def states_chart(data: Activity) -> Chart:
    """Stacked bars: one per hour, one segment per state, scaled to the busiest hour."""
    totals = [sum(n for (b, _), n in data.per_hour.items() if b == bucket) for bucket in range(data.hours)]
    peak = max(totals, default=0) or 1
    plot_height = HEIGHT - BOTTOM - TOP
    slot = (WIDTH - LEFT) / data.hours
    rects: list[Rect] = []
    labels = [Label(LEFT - 6, TOP + 10, str(peak), "end"), Label(LEFT - 6, HEIGHT - BOTTOM, "0", "end")]
    for bucket in range(data.hours):
        y = float(HEIGHT - BOTTOM)
        for state in JobState:
            count = data.per_hour.get((bucket, state.value), 0)
            if not count:
                continue
            height = plot_height * count / peak
            y -= height
            rects.append(
                Rect(
                    LEFT + bucket * slot + 1,
                    y,
                    slot - 2,
                    height,
                    f"state-{state.value}",
                    f"{_hour_label(data.hours, bucket)}: {count} {state.value}",
                )
            )
        if bucket % 6 == 0:
            labels.append(Label(LEFT + bucket * slot, HEIGHT - 6, _hour_label(data.hours, bucket)))
    return Chart(WIDTH, HEIGHT, rects, labels)


def refusals_chart(data: Activity) -> Chart:
    """Horizontal bars: refusals per code, most frequent first."""
    rows = sorted(data.refusals.items(), key=lambda item: (-item[1], item[0]))
    peak = max((n for _, n in rows), default=0) or 1
    label_width = 260
    rects: list[Rect] = []
    labels: list[Label] = []
    for index, (code, count) in enumerate(rows):
        y = TOP + index * BAR_ROW
        width = (WIDTH - label_width - 60) * count / peak
        rects.append(Rect(label_width, y, max(width, 1), BAR_ROW - 6, "refusal", f"{code}: {count}"))
        labels.append(Label(label_width - 8, y + BAR_ROW - 10, code, "end"))
        labels.append(Label(label_width + width + 6, y + BAR_ROW - 10, str(count)))
    return Chart(WIDTH, TOP * 2 + max(len(rows), 1) * BAR_ROW, rects, labels)
