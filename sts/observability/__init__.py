"""What the STS tells its operators: the audit log (``audit``, a leaf), Prometheus metrics
(``metrics``) and the health views (``views``: /healthz, /readyz, /metrics)."""
