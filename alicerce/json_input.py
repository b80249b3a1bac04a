"""Untrusted JSON: the one parser of every JSON body, and the rules a hostile body meets.

Every route that takes JSON (inference and admin alike) reads its body through `load_json`,
so that they all refuse the same things with the same 400 (`code: invalid_json`), whatever
the body's `Content-Type` says (`docs/decisions.md`):

- the body is UTF-8 (RFC 8259 says it must be); a lone UTF-16 surrogate escape (`"\\ud800"`)
  is no Unicode text either;
- arrays and objects nest at most `MAX_DEPTH` levels: the C parsers recurse, and 20,000 levels
  overflow Python's stack (a `RecursionError`, which was a 500);
- an object names each key once: `{"model": "a", "model": "b"}` means one thing to one parser
  and another to the next, and a gateway must not guess which the client meant;
- numbers are finite: `NaN` and `Infinity` are not JSON, and `1e400` would become infinity.

A message says what is wrong and where (line and column, or the field), and never echoes more
than a few characters of the body.

Bodies up to `FAST_MAX_BYTES` (nearly every chat request) are read by msgspec first, about 3x
faster than the stdlib parser with its hooks (4 µs against 12 for a one-message request; the
hot path's whole overhead is a few hundred). msgspec already refuses what these rules refuse
but duplicate keys, which it keeps the last of; those are caught by counting: every pair in the
body has one `:` outside its strings, so the body and msgspec's own encoding of what it read
hold as many colons unless a pair was dropped (a `\u003a` escape could hide one, so a body with
one takes the slow path). Whatever msgspec refuses, or the count finds, goes through the stdlib
parser, which says precisely what is wrong: the fast path decides nothing on its own.
"""

from __future__ import annotations

import json
import math
import re
from itertools import accumulate
from typing import Any

import msgspec

from alicerce.errors import InvalidRequest

# No request a person or an SDK writes nests this deep: a chat body is 6 levels to a content
# part, and a JSON Schema of 20 nested objects is about 60. serde_json's default is the same.
MAX_DEPTH = 128

_STRINGS = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_BRACKETS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")
_NOT_BRACKETS = bytes(set(range(256)) - set(b"[]{}"))
_TOKENS = re.compile(rb'"(?P<key>[^"\\]*(?:\\.[^"\\]*)*)"\s*:|"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{},]')
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_COLON_ESCAPE = b"\\u003"  # `\u003a` is a colon in a string that the count would not see
_EXCERPT = 40

# Past this size the fast path's extra scans (the colons, twice) cost more than they save.
FAST_MAX_BYTES = 4096
_decoder = msgspec.json.Decoder()
_encoder = msgspec.json.Encoder()


def invalid(message: str, *, param: str | None = None) -> InvalidRequest:
    return InvalidRequest(message, param=param, code="invalid_json")


def load_json(raw: bytes, *, content_type: str | None = None) -> Any:
    """The body's JSON value, or a 400 that says what is wrong with it and where."""
    if len(raw) <= FAST_MAX_BYTES:
        value = _read_fast(raw)
        if value is not _UNSURE:
            return value
    return _read_exact(raw, content_type)


def _read_exact(raw: bytes, content_type: str | None = None) -> Any:
    """The stdlib parser with every rule as a hook: the authority, and the precise messages."""
    if not raw.strip():
        raise invalid("The request body is empty; send a JSON object.")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise invalid(
            f"The request body is not valid UTF-8: byte 0x{raw[exc.start]:02x} at "
            f"{_where(raw, exc.start)}. JSON must be sent as UTF-8."
        ) from None
    _check_depth(raw)
    try:
        value = json.loads(
            text,
            object_pairs_hook=_unique_keys,
            parse_constant=_no_constant,
            parse_float=_finite_float,
        )
    except json.JSONDecodeError as exc:
        raise invalid(_syntax_message(exc, content_type)) from None
    except _Refused as exc:
        raise invalid(str(exc)) from None
    except ValueError as exc:  # an integer of more digits than Python converts (4,300)
        raise invalid(f"The request body holds a number that cannot be read: {exc}.") from None
    if _SURROGATE_ESCAPE.search(raw):
        _check_unicode(value, "")
    return value


_UNSURE = object()


def _read_fast(raw: bytes) -> Any:
    """The body's value if msgspec reads it and it keeps every rule, else `_UNSURE`."""
    if not _shallow(raw) or _COLON_ESCAPE in raw:
        return _UNSURE
    try:
        value = _decoder.decode(raw)
    except Exception:  # whatever it is, the stdlib parser says it precisely
        return _UNSURE
    if raw.count(b":") != _encoder.encode(value).count(b":"):
        return _UNSURE  # a key given twice: its first pair is not in `value`
    return value


class _Refused(ValueError):
    """Raised inside the parser's hooks, for a message of our own."""


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    value = dict(pairs)
    if len(value) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _Refused(
                    f"The request body has the key {_excerpt(key)!r} twice in one object; "
                    "send each key once (which one was meant would be a guess)."
                )
            seen.add(key)
    return value


def _no_constant(name: str) -> Any:
    raise _Refused(f"The request body holds {name}, which is not a JSON number; send a number.")


def _finite_float(literal: str) -> float:
    number = float(literal)
    if math.isinf(number):
        raise _Refused(
            f"The number {_excerpt(literal)} in the request body is too large to be read "
            "(beyond about 1.8e308)."
        )
    return number


def _syntax_message(exc: json.JSONDecodeError, content_type: str | None) -> str:
    where = f"line {exc.lineno}, column {exc.colno}"
    if exc.pos >= len(exc.doc.rstrip()):
        message = f"The request body ends before its JSON does ({where}): it is cut short."
    else:
        message = f"The request body is not valid JSON: {exc.msg.lower()} at {where}."
    media = (content_type or "").split(";")[0].strip().lower()
    if media and media != "application/json" and not media.endswith("+json"):
        message += f" (It was sent as {_excerpt(media)}; this route reads JSON whatever that says.)"
    return message


def _where(raw: bytes, offset: int) -> str:
    line = raw.count(b"\n", 0, offset) + 1
    column = offset - (raw.rfind(b"\n", 0, offset) + 1) + 1
    return f"line {line}, column {column}"


def _excerpt(text: str) -> str:
    return text if len(text) <= _EXCERPT else text[:_EXCERPT] + "…"


def _shallow(raw: bytes) -> bool:
    """Too few brackets to nest past `MAX_DEPTH`, wherever they are: no need to look closer."""
    return raw.count(b"[") + raw.count(b"{") <= MAX_DEPTH


def _check_depth(raw: bytes) -> None:
    """Refuses nesting beyond `MAX_DEPTH`. Cheap where it cannot happen (fewer brackets than
    the bound); else brackets in strings are dropped and the depth summed in C."""
    if _shallow(raw):
        return
    brackets = _STRINGS.sub(b"", raw).translate(_BRACKETS, _NOT_BRACKETS)
    if max(accumulate(memoryview(brackets).cast("b")), default=0) <= MAX_DEPTH:
        return
    path = _deep_path(raw)
    raise invalid(
        f"The request body nests arrays and objects more than {MAX_DEPTH} levels deep"
        + (f", in '{path}'" if path else "")
        + "; no request needs that many.",
        param=path or None,
    )


def _deep_path(raw: bytes) -> str:
    """The field (its first few levels) where nesting passes the bound: the error path only."""
    stack: list[list[Any]] = []  # [is_object, key or index]
    for match in _TOKENS.finditer(raw):
        token = match.group()
        if match["key"] is not None and stack and stack[-1][0]:
            stack[-1][1] = match["key"].decode("utf-8", "replace")
        elif token in (b"[", b"{"):
            if len(stack) >= MAX_DEPTH:
                break
            stack.append([token == b"{", None if token == b"{" else 0])
        elif token in (b"]", b"}"):
            if stack:
                stack.pop()
        elif token == b"," and stack and not stack[-1][0]:
            stack[-1][1] += 1
    # The field at fault: down to the last named key of the first few levels (the arrays
    # under `input` are `input`'s), not the hundred levels below it.
    head = stack[:6]
    named = [i for i, (is_object, key) in enumerate(head) if is_object and key is not None]
    path = ""
    for is_object, key in head[: named[-1] + 1] if named else []:
        if key is None:
            break
        path += f".{_excerpt(key)}" if is_object else f"[{key}]"
    return path.lstrip(".")


def _check_unicode(value: Any, path: str) -> None:
    """Refuses a string (or key) with a lone surrogate: it cannot be encoded again as UTF-8."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise invalid(
                "A string in the request body holds a lone UTF-16 surrogate escape (such as "
                "\\ud800 without its pair), which is not Unicode text"
                + (f": '{path}'." if path else "."),
                param=path or None,
            ) from None
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_unicode(key, path)
            _check_unicode(item, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_unicode(item, f"{path}[{index}]")
