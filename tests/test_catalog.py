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
