"""The ``ldif`` backend: a realm's users and groups in an LDIF file (RFC 2849), the embedded default."""
