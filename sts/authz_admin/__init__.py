"""Remote administration of the job manager's own authorization table, and ``/api/v1/me``."""
