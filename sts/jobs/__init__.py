"""The job manager (issue 5): jobs with persisted, encrypted job tokens, exactly-once dispatch.

* ``states``: the state machine, the one place where transitions are allowed;
* ``models``: ``sts_jobs`` and ``sts_job_idempotency`` (Alembic revision ``0002_jobs``);
* ``spec``: the submission body (the spec itself and agent results: ``realms.wire``);
* ``submit``: identity, fail-fast trust check, ``job+jwt`` minting, the one-transaction insert;
* ``dispatch``: lease (SKIP LOCKED / BEGIN IMMEDIATE), start, heartbeat, result, the reaper;
* ``history``: list, show and cancel with per-caller visibility;
* ``env``/``manager``: what the job manager needs from the STS, built once per app.

HTTP: ``sts.blueprints.jobs`` and ``sts.blueprints.agent``; CLI: ``agent_client.commands.submitter``.
"""
