"""The agent's credential store: secrets held by the agent under a credential key.

A job names only the key (``spec.credential``), never the secret. ``store`` (the encrypted
file and its key file), ``access`` (who may use a key: a grant on scope ``credential:<key>``
of the node's authorization table), ``cli`` (``jobsts agent credentials ...``) and ``errors``.
This package file imports nothing, so ``agent_client.config`` can import from it.
"""
