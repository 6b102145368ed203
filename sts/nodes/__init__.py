"""Registered nodes: their table (``models``), registration rules (``service``), the
``/api/v1/nodes`` views (``views``) and the access-ID export an admin imports into a node's
table (``access_ids``)."""
