"""``POST /realms/<realm>/token`` (RFC 6749 §3.2): picks the grant class by ``grant_type``."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request
from werkzeug.exceptions import RequestEntityTooLarge

from realms.errors import JobstsError
from sts.errors import GrantInvalid, RealmUnknown
from sts.grants import GRANTS
from sts.oauth_errors import error_response, oauth_error
from sts.services import current_services
from sts.throttle import client_address

bp = Blueprint("token", __name__)


def read_form() -> dict[str, str]:
    """The form body, refusing what RFC 6749 forbids: other media types, repeated parameters
    (§3.2), and parameters in the query string, where they would end up in logs."""
    if request.mimetype != "application/x-www-form-urlencoded":
        raise GrantInvalid("the body must be application/x-www-form-urlencoded", error="invalid_request")
    if request.args:
        raise GrantInvalid("parameters must be sent in the body, not the query string", error="invalid_request")
    form = request.form
    repeated = [name for name in form if len(form.getlist(name)) > 1]
    if repeated:
        raise GrantInvalid(f"parameter {repeated[0][:40]!r} is repeated", error="invalid_request")
    return {name: form[name] for name in form}


def caller_address() -> str:
    services = current_services()
    return client_address(request.remote_addr, request.headers.get("X-Forwarded-For"),
                          services.config.trusted_proxies)


@bp.post("/realms/<realm>/token")
def token(realm: str) -> Response:
    services = current_services()
    try:
        if realm not in services.config.realms:
            raise RealmUnknown(f"realm {realm[:80]!r} is not hosted by this STS", realm=realm[:80])
        form = read_form()
        grant_type = form.get("grant_type")
        grant_class = GRANTS.get(grant_type or "")
        if grant_class is None:
            raise GrantInvalid(f"grant_type {str(grant_type)[:60]!r} is not supported", error="unsupported_grant_type")
        body = grant_class(services, realm, form, caller_address()).issue()
    except JobstsError as exc:
        return error_response(exc)
    response = jsonify(body)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    services.housekeeper.maybe_run()
    return response


@bp.errorhandler(RequestEntityTooLarge)
def too_large(_error: RequestEntityTooLarge) -> Response:
    return oauth_error("invalid_request", 413, "request.too_large", "the request body is too large")
