"""Secrets: API keys (hashed), upstream credentials (encrypted), and the private-address guard.

API keys are 256-bit random strings, so a single SHA-256 is the right hash: slow password hashes
(bcrypt, argon2) defend low-entropy secrets against guessing, which a random key does not need,
and a fast hash lets every request be authenticated by one indexed lookup.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import os
import secrets
import socket
from pathlib import Path
from urllib.parse import urlsplit

from cryptography.fernet import Fernet, InvalidToken

from alicerce.errors import InvalidRequest

KEY_PREFIX = "alc_"


def generate_api_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def keys_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def display_prefix(key: str) -> str:
    """Enough of a key to recognise it in a list, too little to use it."""
    return key[:10] + "…"


class CredentialCipher:
    """Encrypts upstream API keys at rest (Fernet: AES-128-CBC + HMAC-SHA256)."""

    def __init__(self, secret: str) -> None:
        digest = hashlib.sha256(secret.encode()).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(digest))

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken as exc:
            raise RuntimeError(
                "an upstream credential cannot be decrypted: ALICERCE_SECRET_KEY changed"
            ) from exc

    @classmethod
    def load_or_create(cls, configured: str | None, path: Path) -> CredentialCipher:
        """Uses the configured secret, else the one kept at `path`, else makes one there."""
        if configured:
            return cls(configured)
        if path.exists():
            return cls(path.read_text().strip())
        secret = secrets.token_urlsafe(32)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secret + "\n")
        return cls(secret)


_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # the well-known prefix: an IPv4 address inside


def is_private_address(address: str) -> bool:
    """Loopback, private, link-local, reserved, multicast or unspecified: not the internet. An
    IPv6 address that carries an IPv4 one (mapped, 6to4, NAT64) is judged by that one too."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None and is_private_address(str(embedded)):
            return True
    return not ip.is_global or ip.is_multicast


def literal_address(host: str) -> str | None:
    """The IP address `host` spells, in any spelling a resolver takes without DNS (`2130706433`,
    `0x7f.1`, `0177.0.0.1`, `127.1`, `::ffff:127.0.0.1`, a trailing dot), or None for a name."""
    host = host.rstrip(".")
    try:
        return str(ipaddress.ip_address(host.split("%", 1)[0]))
    except ValueError:
        pass
    try:
        return socket.inet_ntoa(socket.inet_aton(host))  # the legacy IPv4 spellings
    except OSError:
        return None


def check_upstream_url(url: str, *, allow_private: bool, param: str, resolve: bool = True) -> str:
    """Validates a user-supplied upstream URL; refuses internal targets unless allowed.

    The same rule is enforced again on every connection, on the address connected to (see
    `upstreams.http.guarded_socket`), so a name that later resolves to an internal address (DNS
    rebinding) is refused too. `resolve=False` checks only what the URL spells (no DNS lookup).
    """
    try:
        parts = urlsplit(url)
        port = parts.port  # a port out of range or not a number raises here
    except ValueError:
        raise InvalidRequest(f"{param} is not a valid URL", param=param) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidRequest(f"{param} must be an absolute http(s) URL", param=param)
    if parts.username or parts.password:
        raise InvalidRequest(f"{param} must not embed credentials; use api_key", param=param)
    if allow_private:
        return url.rstrip("/")
    host = parts.hostname
    literal = literal_address(host)
    if literal is not None:
        addresses = [literal]
    else:
        if not resolve:
            return url.rstrip("/")
        try:
            infos = socket.getaddrinfo(host, port or 443, proto=socket.IPPROTO_TCP)
        except OSError:
            raise InvalidRequest(
                f"{param}: the host {host!r} does not resolve", param=param
            ) from None
        addresses = [str(info[4][0]) for info in infos]
    if any(is_private_address(a) for a in addresses):
        raise InvalidRequest(
            f"{param} resolves to a private or loopback address, which this server does not "
            "allow (ALICERCE_ALLOW_PRIVATE_UPSTREAMS)",
            param=param,
            code="private_upstream",
        )
    return url.rstrip("/")
