"""The app factory, in the shape of Flask's tutorial: ``create_app(config=None)``.

``config`` is a path to the STS TOML file, an already-validated ``StsConfig``, or ``None``
to read the path from ``JOBSTS_CONFIG``. Extensions attach with ``init_app``; each endpoint
group is one Blueprint module under ``sts/blueprints``.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

from flask import Flask
from flask.json.provider import DefaultJSONProvider

from realms.errors import ConfigError
from sts import problems
from sts.config import StsConfig, load_sts_config

# One Blueprint module per endpoint group; each module exposes ``bp``.
BLUEPRINTS: tuple[str, ...] = (
    "sts.blueprints.health",
    "sts.blueprints.discovery",
    "sts.blueprints.token",
    "sts.blueprints.introspection",
    "sts.blueprints.nodes",
    "sts.blueprints.access_ids",
    "sts.blueprints.jobs",
    "sts.blueprints.agent",
    "sts.blueprints.openapi",
)


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
    problems.init_app(app)

    from sts import services

    services.init_app(app, settings)
    from sts import auth

    auth.init_app(app)
    for module_name in BLUEPRINTS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                continue  # endpoint group not built yet
            raise
        app.register_blueprint(module.bp)
    return app
