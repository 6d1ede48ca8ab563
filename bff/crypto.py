"""Personal data encrypted at rest: AES-256-GCM under a key ring from the environment.

`PII_KEYS` lists `key_id:base64(32 bytes)` pairs separated by commas; the first encrypts, every one
decrypts, so a key is rotated by putting a new one first and re-encrypting (`bff rotate-pii-key`)
before the old one is removed. A stored value reads `enc:v1:<key id>:<base64(nonce | ciphertext)>`;
values without the prefix are plaintext from before encryption and are encrypted on their next write.
"""

from __future__ import annotations

import base64
import os
from functools import cache

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

PREFIX = "enc:v1:"
# Development only (the settings refuse it in production): a fixed key so demo data survives restarts.
DEFAULT_PII_KEYS = "dev1:" + base64.b64encode(b"dev-only-pii-key-change-me-32byt").decode()


class KeyRingError(ValueError):
    """PII_KEYS is malformed or names an unknown key."""


class FieldCipher:
    """Encrypts with the ring's first key; decrypts with whichever key a value names."""

    def __init__(self, spec: str) -> None:
        self.keys: dict[str, AESGCM] = {}
        self.current = ""
        for part in (p.strip() for p in spec.split(",") if p.strip()):
            key_id, _, encoded = part.partition(":")
            try:
                raw = base64.b64decode(encoded, validate=True)
            except ValueError as exc:
                raise KeyRingError(f"PII key {key_id!r} is not base64") from exc
            if not key_id or ":" in key_id or len(raw) != 32:
                raise KeyRingError(f"PII key {key_id!r} must be `id:base64 of 32 bytes`")
            self.keys[key_id] = AESGCM(raw)
            self.current = self.current or key_id
        if not self.current:
            raise KeyRingError("PII_KEYS holds no key")

    def encrypt(self, plaintext: str) -> str:
        """The stored form of a value ("" stays "", so empty columns stay cheap to test)."""
        if plaintext == "":
            return ""
        nonce = os.urandom(12)
        sealed = self.keys[self.current].encrypt(nonce, plaintext.encode(), self.current.encode())
        return f"{PREFIX}{self.current}:{base64.b64encode(nonce + sealed).decode()}"

    def decrypt(self, stored: str) -> str:
        """The plaintext of a stored value; legacy plaintext passes through."""
        if not stored.startswith(PREFIX):
            return stored
        key_id, _, payload = stored[len(PREFIX) :].partition(":")
        key = self.keys.get(key_id)
        if key is None:
            raise KeyRingError(f"no PII key {key_id!r} in PII_KEYS: it was removed before re-encryption")
        raw = base64.b64decode(payload)
        return key.decrypt(raw[:12], raw[12:], key_id.encode()).decode()

    def needs_rotation(self, stored: str) -> bool:
        """True when a stored value is plaintext or under a key other than the current one."""
        return stored != "" and not stored.startswith(f"{PREFIX}{self.current}:")


@cache
def _cipher(spec: str) -> FieldCipher:
    return FieldCipher(spec)


def cipher() -> FieldCipher:
    """The process's cipher, from PII_KEYS (the development key when unset)."""
    return _cipher(os.environ.get("PII_KEYS") or DEFAULT_PII_KEYS)
