"""The target-node agent (design.md, Flow 3 and 4): STS client, trust store, token validation,
authorization against the node's own table, account mapping, and executors.

Imports only ``realms`` and ``authz_tables``, never ``sts``: an agent host needs no server code.
"""
