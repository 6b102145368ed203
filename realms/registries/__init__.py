"""User registries (Dex-style connectors): the ``Registry`` capability, the table of backend
types, and one folder per backend (``ldap/``, ``ldif/``), each with its self-validating config."""
