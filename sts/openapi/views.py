"""``GET /openapi.json``: the OpenAPI 3.1 document, merged from per-group fragments.

Each endpoint group ships ``sts/openapi/<group>.json`` with ``paths`` (and optionally
``components`` and ``tags``); this module merges them. A test checks that the document and
the app's routes name exactly the same paths and methods.
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any

from flask import Blueprint, Response, jsonify

from sts.services import current_services

bp = Blueprint("openapi", __name__)


def _merge(document: dict[str, Any], fragment: dict[str, Any], name: str) -> None:
    for path, operations in fragment.get("paths", {}).items():
        existing = document["paths"].setdefault(path, {})
        clash = set(existing) & set(operations)
        if clash:
            raise ValueError(f"openapi fragment {name}: {sorted(clash)[0].upper()} {path} defined twice")
        existing.update(operations)
    for section, items in fragment.get("components", {}).items():
        document["components"].setdefault(section, {}).update(items)
    document["tags"].extend(fragment.get("tags", []))


@functools.cache
def _fragments() -> tuple[tuple[str, str], ...]:
    folder = resources.files("sts") / "openapi"
    return tuple(
        sorted(
            (entry.name, entry.read_text(encoding="utf-8"))
            for entry in folder.iterdir()
            if entry.name.endswith(".json")
        )
    )


def build_document(base_url: str) -> dict[str, Any]:
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "jobsts",
            "version": "1",
            "description": "Multi-realm security token service and job manager. Any operation may also "
            "answer 431 (components.responses.HeadersTooLarge) or 400 request.malformed "
            "(components.responses.Malformed) before the request reaches it, and 413 request.too_large "
            "for a body over the server's limit.",
        },
        "servers": [{"url": base_url}],
        "paths": {
            "/openapi.json": {
                "get": {
                    "summary": "This document",
                    "tags": ["meta"],
                    "responses": {"200": {"description": "OpenAPI document"}},
                }
            }
        },
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}},
        "tags": [{"name": "meta", "description": "Service description"}],
    }
    for name, text in _fragments():
        _merge(document, json.loads(text), name)
    return document


@bp.get("/openapi.json")
def openapi() -> Response:
    return jsonify(build_document(current_services().config.base_url))
