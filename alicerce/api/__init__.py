"""The HTTP layer: thin routes over the domain modules. `create_app` builds the ASGI app."""

from alicerce.api.app import create_app

__all__ = ["create_app"]
