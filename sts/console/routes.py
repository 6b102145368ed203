"""The console's blueprint with every route attached (sign-in, pages): what ``create_app`` registers."""

from __future__ import annotations

from sts.console import login, pages
from sts.console.blueprint import bp

__all__ = ["bp", "login", "pages"]
