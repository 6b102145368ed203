"""The job manager: jobs with persisted, encrypted job tokens, dispatched exactly once.

* ``states``: the state machine, the one place where transitions are allowed;
* ``models``: ``sts_jobs`` and ``sts_job_idempotency`` (Alembic revision ``0002_jobs``);
* ``spec``: the submission body (the spec itself and agent results: ``realms.wire``);
* ``submit``: identity, fail-fast trust check, ``job+jwt`` minting, the one-transaction insert;
* ``dispatch``: lease (SKIP LOCKED / BEGIN IMMEDIATE), start, heartbeat, result, the reaper;
* ``history``: list, show and cancel with per-caller visibility;
* ``views``: ``/api/v1/jobs`` and the history serializer; ``agent_views``: ``/api/v1/agent/*``
  and the job document an agent leases.

What the job manager needs from the rest of the STS (database, keys, login, settings, clock)
is the app's ``sts.services.Services``. The submitter's commands over this API are ``agent_client.commands.submitter``.
"""
