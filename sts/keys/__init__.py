"""Per-realm signing keys: generation, encrypted storage, rotation, JWKS, and trust for verification."""

from sts.keys.store import KeyStore, StoredKey
from sts.keys.trust import StsTrustResolver

__all__ = ["KeyStore", "StoredKey", "StsTrustResolver"]
