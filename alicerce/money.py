"""Amounts and their currency: one way to write an amount, wherever it is shown.

Amounts are exact decimals from the catalog's prices to the API's answers. Python's `Decimal`
and `float` both switch to exponent notation for small numbers (`5E-7`, `1.35e-05`), and a
per-token price is always small, so amounts are shown as `Money`: a `Decimal` that writes
itself in plain positional notation without trailing zeros (`0.0000005`, `0.0000135`, `12.5`,
`0`). The JSON encoders (`api/json.py`) write a `Money` as a JSON number with exactly those
digits, so a client that parses numbers as decimals gets the exact amount, and one that
parses them as floats gets the nearest float, as before.
"""

from __future__ import annotations

from decimal import Context, Decimal
from typing import Any

import msgspec

DEFAULT_CURRENCY = "USD"


def plain(amount: Decimal) -> str:
    """`amount` in positional notation, exact (no rounding), without trailing zeros."""
    if isinstance(amount, Money):
        return str(amount)  # worked out once
    return _plain(amount)


def _plain(amount: Decimal) -> str:
    text = Decimal.__str__(amount)  # positional unless tiny (< 1E-6): 3x faster than format
    if "E" in text:
        text = format(amount, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


class Money(Decimal):
    """An amount to show: a `Decimal` whose text is `plain(self)`, worked out once (the
    catalog's prices are `Money`, so each is formatted once per process, not per request).
    Arithmetic on it gives plain `Decimal`s, so only values made to be shown are `Money`."""

    __slots__ = ("_json", "_text")
    _json: msgspec.Raw | None
    _text: str | None

    def __new__(cls, value: Decimal | int | str = 0) -> Money:
        money = super().__new__(cls, value)
        money._text = money._json = None
        return money

    @classmethod
    def of(cls, amount: Decimal) -> Money:
        """`amount` as `Money`, itself when it already is (a catalog price)."""
        return amount if isinstance(amount, Money) else cls(amount)

    def json(self) -> msgspec.Raw:
        """The JSON number, for `encode_hook`."""
        if self._json is None:
            self._json = msgspec.Raw(str(self).encode())
        return self._json

    def __str__(self) -> str:
        if self._text is None:
            self._text = _plain(self)
        return self._text

    def __format__(self, spec: str, context: Context | None = None, /) -> str:
        """`f"{amount}"` as `str`; with a spec (`{:.2f}`) as a `Decimal`."""
        return str(self) if not spec else super().__format__(spec)

    def __repr__(self) -> str:
        return f"Money('{self}')"


FREE = Money(0)  # the price of what the catalog does not price


def encode_hook(value: Any) -> Any:
    """msgspec's `enc_hook`: a `Money` as a JSON number of its plain digits. msgspec calls it
    only for types it does not know (a `Decimal` subclass is one), so it costs other values
    nothing."""
    if isinstance(value, Money):
        return value.json()
    raise NotImplementedError(f"cannot encode {type(value).__name__} as JSON")


encode_json = msgspec.json.Encoder(decimal_format="number", enc_hook=encode_hook).encode
"""The one JSON encoder of answers and of the CLI's `--json`: amounts as plain numbers."""


def currency_code(value: str) -> str:
    """An ISO 4217 code in upper case; ValueError naming the value otherwise."""
    import pycountry  # its tables load on first use; only a catalog that names a currency pays

    found = pycountry.currencies.get(alpha_3=value) if len(value) == 3 else None
    if found is None:
        raise ValueError(f"{value!r} is not an ISO 4217 currency code (such as 'USD' or 'EUR')")
    return str(found.alpha_3)
