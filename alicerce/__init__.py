"""Alicerce: an AI gateway served through an OpenAI-compatible API."""

__version__ = "0.1.0"
