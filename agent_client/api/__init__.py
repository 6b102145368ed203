"""The one HTTP client of the STS API, shared by the submitter's and admin's CLI and the agent.

``client.StsApi`` sends every request and turns refusals into errors; ``auth`` holds the two
ways to a bearer token (the stored login, the node's client credentials); ``agent``, ``jobs``,
``admin`` and ``oauth`` are the endpoints by role. Imports no server module.
"""

from agent_client.api.agent import AgentApi
from agent_client.api.auth import AgentAuth, UserAuth, load_node_key
from agent_client.api.client import StsApi
from agent_client.api.user import user_api

__all__ = ["AgentApi", "AgentAuth", "StsApi", "UserAuth", "load_node_key", "user_api"]
