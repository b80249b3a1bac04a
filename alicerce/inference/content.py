"""A chat message's content parts, checked before any upstream sees them.

OpenAI refuses a part type it does not know, and so does this gateway (rather than forward it
to an upstream that may read it otherwise). An `image_url` is fetched by the upstream, from
inside its own network: only `http(s)` and `data:` URLs are passed on, and not to a loopback,
private or link-local address written in the URL (a self-hosted model server would fetch it
for the client), whatever `ALICERCE_ALLOW_PRIVATE_UPSTREAMS` says; a `data:` URL carries an
image of one's own.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from alicerce.errors import InvalidRequest
from alicerce.security import is_private_address, literal_address

PART_TYPES = ("text", "image_url", "input_audio", "file", "refusal")


def check_parts(messages: list[Any]) -> None:
    """Refuses (400, `param` naming the part) unknown part types and unsafe image URLs;
    `messages` are chat `Message`s (or anything with `content`)."""
    for i, message in enumerate(messages):
        content = message.content
        if not isinstance(content, list):
            continue
        for j, part in enumerate(content):
            param = f"messages[{i}].content[{j}]"
            kind = part.get("type")
            if kind not in PART_TYPES:
                shown = repr(kind)[:40] if kind is not None else "none"
                raise InvalidRequest(
                    f"{param}.type: {shown} is not a content part type; use one of "
                    f"{', '.join(PART_TYPES)}.",
                    param=f"{param}.type",
                )
            if kind == "image_url":
                check_image(part.get("image_url"), f"{param}.image_url.url")


def check_image(image: Any, param: str) -> None:
    """An `image_url` object (`{url, detail?}`) whose URL may be passed on."""
    url = image.get("url") if isinstance(image, dict) else None
    if not isinstance(url, str) or not url:
        raise InvalidRequest(f"{param}: an image_url part needs a 'url'.", param=param)
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme == "data":
        return
    if scheme not in ("http", "https"):
        raise InvalidRequest(
            f"{param}: only http(s) and data: image URLs are accepted (got {scheme or 'none'!r}).",
            param=param,
        )
    host = urlsplit(url).hostname or ""
    if not host or _internal(host):
        raise InvalidRequest(
            f"{param}: the image URL names a loopback, private or link-local address; the "
            "upstream would fetch it from inside its network. Send the image as a data: URL.",
            param=param,
        )


def _internal(host: str) -> bool:
    """Whether `host`, as written (not resolved: the upstream resolves it), is internal:
    `localhost`, or an address in any spelling (`127.1`, `2130706433`, `0x7f.1`, `[::1]`)."""
    host = host.rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    address = literal_address(host)
    return address is not None and is_private_address(address)
