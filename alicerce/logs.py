"""Structured logs: one JSON object a line (or plain text for people at a terminal).

One handler takes every log of the process: Alicerce's, uvicorn's, and through the root logger
every library's (pypdf warns through `logging`), and Python's own warnings (`warnings.warn`,
routed to the `py.warnings` logger when the handler is made), so a JSON log holds nothing but
JSON lines.

A record's `extra` attributes become keys of its JSON object, numbers staying numbers. An extra
named `fields` (a dict) is spread into the object instead, in its own order: one attribute where
a line has many (the request line of `alicerce.requests`, written by `ledger.py` for every
request, has 19; each `extra` attribute costs the record about as much as formatting it).
"""

from __future__ import annotations

import logging
import time
from typing import IO, Any

import msgspec

FIELDS = "fields"
_RECORD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__)
_STANDARD = _RECORD | {
    "message",
    "asctime",
    "color_message",  # uvicorn's ANSI-coloured copy of the message
}
_encode = msgspec.json.Encoder(enc_hook=str, decimal_format="number").encode


class JsonFormatter(logging.Formatter):
    """A record as one JSON object: time (RFC 3339, UTC, milliseconds), level, logger,
    message, then its `extra` attributes."""

    _second: tuple[int, str] = (-1, "")  # the last second formatted, and its text

    def _time(self, created: float) -> str:
        second = int(created)
        cached, text = self._second
        if second != cached:  # once a second, not once a line
            text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = (second, text)
        return f"{text}.{int((created - second) * 1000):03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self._time(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        attributes = record.__dict__
        beyond = len(attributes) - len(_RECORD)
        if beyond == 1 and FIELDS in attributes:  # the request line: no set arithmetic
            entry.update(attributes[FIELDS])
        elif beyond > 0:
            for name in sorted(attributes.keys() - _STANDARD):
                value = attributes[name]
                if name == FIELDS and type(value) is dict:
                    entry.update(value)
                else:
                    entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return _encode(entry).decode()


def handler(stream: IO[str]) -> logging.Handler:
    """The process's one log handler. Making it also routes `warnings.warn` into logging (the
    `py.warnings` logger), in whichever process applies the configuration: the supervisor and
    each worker of `serve --workers N` apply it on their own."""
    logging.captureWarnings(True)
    return logging.StreamHandler(stream)


def logging_config(level: str, fmt: str) -> dict[str, Any]:
    """A `logging.config.dictConfig` for Alicerce, uvicorn and every library alike.

    Libraries log through the root logger at warning and above (their info chatter stays
    out); Alicerce and uvicorn at the configured level."""
    formatter = (
        {"()": JsonFormatter}
        if fmt == "json"
        else {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}
    )
    ours = {"handlers": ["default"], "level": level.upper(), "propagate": False}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": formatter},
        "handlers": {
            "default": {
                "()": handler,
                "formatter": "default",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"handlers": ["default"], "level": "WARNING"},
        "loggers": {
            "alicerce": ours,
            "uvicorn": ours,
            "uvicorn.access": ours,
            "py.warnings": {"level": "WARNING"},  # to the root's handler, like any library
        },
    }
