"""The console's page cursor (sts/jobs/listing.py): what it encodes comes back, anything else is
refused as ``job.invalid_spec`` on the ``cursor`` field, never a 500 and never a page of nothing."""

from __future__ import annotations

import base64

import pytest

from sts.jobs.errors import JobInvalidSpec
from sts.jobs.listing import Cursor


def _raw(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def test_a_cursor_decodes_to_what_it_encoded() -> None:
    cursor = Cursor(1_796_300_000.25, "5b0f6c1e-3f0a-4a5e-9d7e-1f2a3b4c5d6e")
    assert Cursor.decode(cursor.encode()) == cursor


@pytest.mark.parametrize("stamp", ["nan", "inf", "-inf", "1e999", "soon", ""])
def test_a_cursor_whose_time_is_not_a_finite_number_is_refused(stamp: str) -> None:
    with pytest.raises(JobInvalidSpec) as refused:
        Cursor.decode(_raw(f"{stamp}|5b0f6c1e-3f0a-4a5e-9d7e-1f2a3b4c5d6e"))
    assert refused.value.data["field"] == "cursor"
