"""The chat request decoded and validated at the edge."""

from __future__ import annotations

import pytest

from alicerce.errors import InvalidRequest
from alicerce.inference.request import parse_chat_request


def test_parse_errors_name_the_param() -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_chat_request(b'{"model": "g", "messages": [{"role": "user"}], "top_p": 2}')
    assert caught.value.param == "top_p"
    with pytest.raises(InvalidRequest) as caught:
        parse_chat_request(b"[1, 2]")
    assert caught.value.status == 400
