"""What a failed login writes to the log instead of the username as typed.

People type passwords into the username field. A log line with the typed name would then hold a
password that every log reader sees. A failed login logs ``h:<16 hex>``, an HMAC-SHA256 of the
typed name under a per-install key derived from the master key (RFC 2104): the same
name gives the same digest, so guessing against one account still shows up, and an administrator
who has the key can check a suspected name, but the log alone reveals nothing.
"""

from __future__ import annotations

from sts.keys.master_key import MasterKey


def username_digest(username: str, master_key: MasterKey) -> str:
    """``h:`` and the first 64 bits of HMAC-SHA256 of the username, under the master key's
    ``login-username`` MAC key, hex."""
    mac = master_key.mac("login-username", username.encode("utf-8", "surrogatepass")).hex()
    return f"h:{mac[:16]}"
