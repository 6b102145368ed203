"""The jobsts token service and job manager (Flask). ``create_app`` is the factory."""

from sts.app import create_app

__all__ = ["create_app"]
