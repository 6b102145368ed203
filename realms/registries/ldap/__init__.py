"""The ``ldap`` backend: a realm's users and groups in an LDAP directory (RFC 4511, RFC 4513)."""
