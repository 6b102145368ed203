"""The client side: the target-node agent (trust store, token validation, authorization against
the node's own table, account mapping, executors), the one HTTP client of the STS API
(``agent_client.api``) and the commands of each client role (``agent_client.commands``).

Imports only ``realms`` and ``authz_tables``, never ``sts``: an agent host needs no server code.
"""
