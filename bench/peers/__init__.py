"""Peers measured beside jobsts in the same run, on the same slapd and PostgreSQL.

- :mod:`bench.peers.glewlwyd`: Glewlwyd, a C OAuth2/OIDC server, for password logins
  (:mod:`bench.peers.glewlwyd_setup`: its configuration, schema, process and admin-API set-up);
- :mod:`bench.peers.queues`: pgqueuer and procrastinate, PostgreSQL job queues, for submit
  (enqueue) and dispatch (dequeue + complete);
- :mod:`bench.peers.logins`: the password-grant load driver both login servers share;
- :mod:`bench.peers.cpu`, :mod:`bench.peers.postgres`, :mod:`bench.peers.stats`: CPU from
  /proc, private databases, min/median/max and markdown rows.

Run from the repository root: ``python -m bench.peers.glewlwyd`` and ``python -m bench.peers.queues``.
"""
