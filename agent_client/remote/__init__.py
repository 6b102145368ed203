"""Jobs on remote hosts over SSH: the agent as the gateway for hosts that run no agent.

``hosts`` (the ``[remote_hosts.<name>]`` configuration and pinned host keys), ``pinning``
(the host-key check: trust on first use is never allowed), ``command`` (the remote wrapper
that reports the job's process group and kills it on request), ``ssh`` (the executor) and
``errors``. This package file imports nothing, so ``agent_client.config`` can import
``hosts`` without a cycle.
"""
