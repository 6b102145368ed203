"""Request logs that cannot hold a secret: the path is logged, never the query string or referrer.

An ``?access_token=`` (RFC 6750 §2.3: refused here, but sent by some clients), ``?code=``,
``?refresh_token=``, ``?password=`` or ``?client_assertion=`` in a request line would otherwise
be written to the serve log, where anyone who reads logs could use it (RFC 6750 §5.3, RFC 6749
§10.3). Both servers the STS runs under log through here: gunicorn's access log format and
werkzeug's request handler of ``jobsts serve``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from werkzeug.serving import WSGIRequestHandler

# Gunicorn's default access log format with the request line "%(r)s" replaced by method, path
# (%(U)s: no query string) and protocol, and without the referrer "%(f)s", which carries the
# previous page's full URL, query string included.
GUNICORN_ACCESS_LOG_FORMAT = '%(h)s %(l)s %(u)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s "%(a)s"'


def path_only(target: str) -> str:
    """The path of a request target, without query string or fragment."""
    return urlsplit(target).path or "/"


class PathOnlyRequestHandler(WSGIRequestHandler):
    """Werkzeug's request handler, logging ``METHOD /path HTTP/x`` instead of the request line."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        line = f"{self.command} {path_only(self.path)} {self.request_version}"
        self.log("info", '"%s" %s %s', line, code, size)

    def log_error(self, format: str, *args: Any) -> None:
        # Why: http.server logs a malformed request line verbatim ("Bad request syntax (...)"),
        # which may hold a query string; log only the error's kind.
        self.log("error", "%s", format.split("(")[0].split("%")[0].strip() or "request error")
