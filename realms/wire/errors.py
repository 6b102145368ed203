"""Refusals of the wire contract: a document that breaks the job spec schema or its limits.

The STS answers them as they are (``job.invalid_spec``, ``job.identity_field``); the agent
reports a leased job that breaks the contract as ``agent.job_invalid``.
"""

from __future__ import annotations

from typing import ClassVar

from realms.errors import InputError


class JobInvalidSpec(InputError):
    """A job spec, submission, job document or result failed validation: a type, a size, an unknown field."""

    code: ClassVar[str] = "job.invalid_spec"


class JobIdentityField(JobInvalidSpec):
    """The document tried to set who the job runs as; identity comes only from the caller's token."""

    code: ClassVar[str] = "job.identity_field"
