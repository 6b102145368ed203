"""``sts.collector_pauses.FrozenSurvivors``: what the process holds is frozen every freeze
period (full collections no longer traverse it), objects freed by reference counting are freed
while frozen, and a garbage cycle among frozen objects is freed once the unfreeze period is up,
so freezing shortens the pauses without leaking for good."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from sts.collector_pauses import FrozenSurvivors
from tests.clocks import ManualClock


class Cycle:
    """An object that refers to itself: only the cycle collector frees it."""

    def __init__(self) -> None:
        self.me = self


@pytest.fixture(autouse=True)
def thawed() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()  # the rest of the suite runs with the collector as it was


def test_start_freezes_what_the_process_holds() -> None:
    FrozenSurvivors().start()
    assert gc.get_freeze_count() > 0


def test_what_lives_is_frozen_each_freeze_period_and_not_between() -> None:
    clock = ManualClock(0.0)
    collector = FrozenSurvivors(freeze_seconds=5, unfreeze_seconds=60, clock=clock)
    clock.now = 4.9
    assert collector.step() == ""
    assert gc.get_freeze_count() == 0
    clock.now = 5.0
    assert collector.step() == "froze"
    frozen = gc.get_freeze_count()
    assert frozen > 0
    clock.now = 9.9
    assert collector.step() == ""  # once per period, not once per check
    clock.now = 10.0
    assert collector.step() == "froze"


def test_a_frozen_garbage_cycle_is_freed_after_the_unfreeze_period() -> None:
    clock = ManualClock(0.0)
    collector = FrozenSurvivors(freeze_seconds=5, unfreeze_seconds=60, clock=clock)
    cycle = Cycle()
    alive = weakref.ref(cycle)
    clock.now = 5.0
    assert collector.step() == "froze"
    del cycle
    gc.collect()
    assert alive() is not None  # frozen: the collector no longer looks at it

    clock.now = 59.0
    assert collector.step() == "froze"
    gc.collect()
    assert alive() is not None

    clock.now = 60.0
    gc.disable()  # no automatic collection in between: the thaw itself must free it
    try:
        assert collector.step() == "thawed"
        assert alive() is None
        assert gc.get_freeze_count() == 0
    finally:
        gc.enable()


def test_an_object_freed_by_reference_counting_is_freed_while_frozen() -> None:
    clock = ManualClock(0.0)
    collector = FrozenSurvivors(freeze_seconds=5, unfreeze_seconds=60, clock=clock)

    class Plain:
        pass

    plain = Plain()
    alive = weakref.ref(plain)
    clock.now = 5.0
    assert collector.step() == "froze"
    del plain
    assert alive() is None


def test_a_young_garbage_cycle_is_collected_at_the_freeze_not_frozen() -> None:
    clock = ManualClock(0.0)
    collector = FrozenSurvivors(freeze_seconds=1, unfreeze_seconds=60, clock=clock)
    gc.disable()  # no automatic collection in between: only the step may free it
    try:
        cycle = Cycle()
        alive = weakref.ref(cycle)
        del cycle
        assert alive() is not None
        clock.now = 1.0
        assert collector.step() == "froze"
        assert alive() is None
    finally:
        gc.enable()
