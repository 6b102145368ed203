"""The web console under ``/console/``: jobs, decisions, nodes and realms, for people.

It logs in through a realm's authorization code flow with PKCE as the first-party client
``jobsts-console`` and keeps a server-side session (``sessions``); pages are server-rendered
Jinja templates with no script (``pages``, ``login``); docs/security.md, "Web console", says why.
"""
