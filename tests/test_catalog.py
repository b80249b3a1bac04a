"""The operator's catalog file."""

from __future__ import annotations

from decimal import Decimal

import pytest

from alicerce.catalog import Catalog, CatalogError


def test_catalog_file_is_validated(tmp_path) -> None:
    good = tmp_path / "good.toml"
    good.write_text(
        '[providers.openai]\nbase_url = "https://api.openai.com/v1"\napi_key_env = "OPENAI_KEY"\n'
        '[[models]]\nid = "@openai/gpt-5-mini"\nprovider = "openai"\n'
        "price_in = 0.25\nprice_out = 2.0\nprice_cached_in = 0.025\n"
    )
    catalog = Catalog.load(str(good), {"OPENAI_KEY": "sk-x"})
    model = catalog.get("@openai/gpt-5-mini")
    assert model is not None and model.upstream_model == "gpt-5-mini"
    assert model.price_in == Decimal("0.25") / 1_000_000
    assert "@local/smollm2-135m" in catalog
    with pytest.raises(CatalogError, match="OPENAI_KEY"):
        Catalog.load(str(good), {})
    bad = tmp_path / "bad.toml"
    bad.write_text('[[models]]\nid = "@x/y"\nprovider = "p"\nprice_in = -1\n')
    with pytest.raises(CatalogError, match="price_in"):
        Catalog.load(str(bad), {})


def test_the_catalog_names_one_iso_4217_currency(tmp_path) -> None:
    path = tmp_path / "catalog.toml"
    assert Catalog.load(None).currency == "USD"  # no file: the default
    path.write_text("[knowledge]\nsearch_price = 0.001\n")
    assert Catalog.load(str(path)).currency == "USD"
    path.write_text('currency = "eur"\n\n[knowledge]\nsearch_price = 0.001\n')
    assert Catalog.load(str(path)).currency == "EUR"  # ISO codes are upper case; either is read
    path.write_text('# prices in reais\n\ncurrency = "BRR"\n[knowledge]\nsearch_price = 1\n')
    with pytest.raises(CatalogError) as caught:
        Catalog.load(str(path))
    assert str(caught.value) == (
        f"{path}: line 3: currency: 'BRR' is not an ISO 4217 currency code (such as 'USD' or 'EUR')"
    )
    path.write_text('curency = "EUR"\n')
    with pytest.raises(CatalogError, match=r"line 1: curency: no such key$"):
        Catalog.load(str(path))
    path.write_text("currency = 978\n")
    with pytest.raises(CatalogError, match="line 1: currency: Input should be a valid string"):
        Catalog.load(str(path))
