"""Per-realm signing keys: the master key that encrypts them at rest (``master_key``), their
tables (``models``), generation and storage (``material``), signing (``signer``), rotation and
publication (``store``), trust for verification (``trust``) and the JWKS endpoint (``views``)."""

from sts.keys.store import KeyStore, StoredKey
from sts.keys.trust import StsTrustResolver

__all__ = ["KeyStore", "StoredKey", "StsTrustResolver"]
