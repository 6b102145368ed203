"""OAuth 2.0 at each realm: the token endpoint and its grants (``grants/``, one class per grant),
the one login service (``login``) behind the brute-force throttle (``throttle``), refresh tokens,
revocation, introspection, discovery, and their tables (``models``)."""
