"""Token endpoint grants, one class per ``grant_type`` (Authlib's style): ``GRANTS`` picks the class."""

from __future__ import annotations

from sts.oauth.grants.authorization_code import AuthorizationCodeGrant
from sts.oauth.grants.base import Grant
from sts.oauth.grants.client_credentials import ClientCredentialsGrant
from sts.oauth.grants.password import PasswordGrant
from sts.oauth.grants.refresh import RefreshTokenGrant
from sts.oauth.grants.token_exchange import TokenExchangeGrant

GRANTS: dict[str, type[Grant]] = {
    AuthorizationCodeGrant.grant_type: AuthorizationCodeGrant,
    PasswordGrant.grant_type: PasswordGrant,
    RefreshTokenGrant.grant_type: RefreshTokenGrant,
    ClientCredentialsGrant.grant_type: ClientCredentialsGrant,
    TokenExchangeGrant.grant_type: TokenExchangeGrant,
}

__all__ = ["GRANTS", "Grant"]
