"""How long a test waits for a process it started to become ready.

A ceiling, never a measurement: a ready process ends the wait at once, only a broken one waits it
out. On a loaded CI machine (two whole suites on two cores) a fresh ``jobsts serve --production``
took more than 60 s to import, migrate its database and answer, so the ceiling is generous.
"""

STARTUP_SECONDS = 300.0
