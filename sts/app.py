"""The app factory, in the shape of Flask's tutorial: ``create_app(config=None)``.

``config`` is a path to the STS TOML file, an already-validated ``StsConfig``, or ``None``
to read the path from ``JOBSTS_CONFIG``. The services attach first, then the HTTP layer
(request context and error boundary), then each domain's blueprints. The domain modules are
imported here, not at the top, so that importing ``sts`` stays cheap (``jobsts serve
--production`` sets up Prometheus' multiprocess directory before anything imports it).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from flask import Flask
from flask.json.provider import DefaultJSONProvider

from realms.errors import ConfigError
from sts.config import StsConfig, load_sts_config


class _BoundedJSONProvider(DefaultJSONProvider):
    """Flask's JSON, except that a body nested too deeply is malformed JSON, not a server error."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        try:
            return super().loads(s, **kwargs)
        except RecursionError:
            # Why: a few KiB of "[[[[..." would otherwise raise RecursionError past every
            # view's "not JSON" handling and answer 500 (found by tests/security/test_api.py).
            raise ValueError("JSON nested too deeply") from None


def _resolve_config(config: StsConfig | str | Path | None) -> StsConfig:
    if isinstance(config, StsConfig):
        return config
    if config is None:
        path = os.environ.get("JOBSTS_CONFIG")
        if not path:
            raise ConfigError("no configuration: pass a file or set JOBSTS_CONFIG", field="file")
        config = path
    return load_sts_config(config)


def create_app(config: StsConfig | str | Path | None = None) -> Flask:
    """Build the STS app. Raises ``ConfigError`` (one line) on a bad configuration."""
    settings = _resolve_config(config)
    app = Flask("sts", static_folder=None)
    app.config.update(
        DEBUG=False,
        PROPAGATE_EXCEPTIONS=False,
        TRAP_HTTP_EXCEPTIONS=False,
        MAX_CONTENT_LENGTH=settings.max_body_bytes,
        MAX_FORM_MEMORY_SIZE=settings.max_body_bytes,
        JSON_SORT_KEYS=False,
    )
    app.json = _BoundedJSONProvider(app)
    app.json.sort_keys = False

    from sts import services
    from sts.authz_admin import views as authz_admin_views
    from sts.console import routes as console_routes
    from sts.http import context, errors, text_inputs

    services.init_app(app, settings)
    context.init_app(app)
    errors.init_app(app)
    text_inputs.init_app(app)

    from sts.jobs import agent_views
    from sts.jobs import views as job_views
    from sts.jobs import wait as agent_wait
    from sts.keys import views as key_views
    from sts.nodes import access_ids, enrollment_views
    from sts.nodes import views as node_views
    from sts.oauth import authorize, introspection, userinfo
    from sts.oauth import views as oauth_views
    from sts.observability import views as health_views
    from sts.openapi import views as openapi_views

    app.register_blueprint(health_views.bp)
    app.register_blueprint(oauth_views.bp)
    app.register_blueprint(authorize.bp)
    app.register_blueprint(userinfo.bp)
    app.register_blueprint(key_views.bp)
    app.register_blueprint(introspection.bp)
    app.register_blueprint(node_views.bp)
    app.register_blueprint(enrollment_views.bp)
    app.register_blueprint(access_ids.bp)
    app.register_blueprint(job_views.bp)
    app.register_blueprint(agent_views.bp)
    app.register_blueprint(agent_wait.bp)
    app.register_blueprint(openapi_views.bp)
    app.register_blueprint(authz_admin_views.bp)
    app.register_blueprint(console_routes.bp)
    return app
