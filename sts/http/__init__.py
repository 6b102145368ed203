"""The HTTP layer shared by every domain's views: the one error boundary (``errors``), bearer
authentication (``auth``) and the per-request context (``context``)."""
