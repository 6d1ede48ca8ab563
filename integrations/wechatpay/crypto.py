"""The WeChat Pay API v3 primitives: RSA-SHA256 signatures, the Authorization header, AES-256-GCM.

Shared by our client and the simulator; every message is built as bytes so that what is signed is
exactly what goes on the wire (a JSON body is never re-serialised between signing and sending).
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.serialization import load_pem_private_key, load_pem_public_key

SCHEME = "WECHATPAY2-SHA256-RSA2048"
ENCRYPTION = "AEAD_AES_256_GCM"
# WeChat Pay refuses requests, and its SDKs refuse answers and notifications, more than 5 minutes off.
MAX_CLOCK_SKEW = 300
APIV3_KEY_LENGTH = 32
_AUTH_PARAM = re.compile(r'\s*(\w+)="([^"]*)"\s*(?:,|$)')
_NONCE_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def load_private_key(pem: bytes) -> RSAPrivateKey:
    """An RSA private key from PEM (PKCS#8 as issued with a merchant API certificate, or PKCS#1)."""
    key = load_pem_private_key(pem, password=None)
    if not isinstance(key, RSAPrivateKey):
        raise ValueError("WeChat Pay keys must be RSA keys")
    return key


def load_public_key(pem: bytes) -> RSAPublicKey:
    """An RSA public key from PEM (`-----BEGIN PUBLIC KEY-----`, as the WeChat Pay public key is issued)."""
    key = load_pem_public_key(pem)
    if not isinstance(key, RSAPublicKey):
        raise ValueError("WeChat Pay keys must be RSA keys")
    return key


def new_nonce(length: int = 32) -> str:
    """A random alphanumeric nonce (WeChat Pay allows up to 32 characters)."""
    return "".join(secrets.choice(_NONCE_ALPHABET) for _ in range(length))


def lines(*parts: str | bytes) -> bytes:
    """The v3 signing string: every part followed by `\\n`, including the last."""
    return b"".join((part.encode() if isinstance(part, str) else part) + b"\n" for part in parts)


def request_message(
    method: str, path_with_query: str | bytes, timestamp: str, nonce: str, body: bytes
) -> bytes:
    """What a merchant signs: `METHOD\\nPATH?QUERY\\nTIMESTAMP\\nNONCE\\nBODY\\n`."""
    return lines(method.upper(), path_with_query, timestamp, nonce, body)


def sign(key: RSAPrivateKey, message: bytes) -> str:
    """Base64 RSA-SHA256 (PKCS#1 v1.5) signature of `message`."""
    return base64.b64encode(key.sign(message, PKCS1v15(), SHA256())).decode()


def verify(key: RSAPublicKey, message: bytes, signature: str) -> bool:
    """True when `signature` (base64) is a valid RSA-SHA256 signature of `message` under `key`."""
    try:
        raw = base64.b64decode(signature, validate=True)
        key.verify(raw, message, PKCS1v15(), SHA256())
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True


def authorization(mchid: str, serial_no: str, nonce: str, timestamp: str, signature: str) -> str:
    """The `Authorization` header value of a signed request."""
    return (
        f'{SCHEME} mchid="{mchid}",nonce_str="{nonce}",signature="{signature}",'
        f'timestamp="{timestamp}",serial_no="{serial_no}"'
    )


def parse_authorization(header: str) -> dict[str, str] | None:
    """The parameters of a v3 `Authorization` header, or None when it is not one."""
    scheme, _, params = header.strip().partition(" ")
    if scheme != SCHEME or not params:
        return None
    parsed: dict[str, str] = {}
    position = 0
    while position < len(params):
        match = _AUTH_PARAM.match(params, position)
        if match is None:
            return None
        parsed[match.group(1)] = match.group(2)
        position = match.end()
    return parsed


def encrypt(key: bytes, nonce: str, plaintext: bytes, associated_data: str) -> str:
    """AEAD_AES_256_GCM as WeChat Pay applies it to a notification resource: base64(ciphertext + tag)."""
    return base64.b64encode(AESGCM(key).encrypt(nonce.encode(), plaintext, associated_data.encode())).decode()


def decrypt(key: bytes, nonce: str, ciphertext: str, associated_data: str) -> bytes:
    """Reverse of `encrypt`; raises `cryptography.exceptions.InvalidTag` on a wrong key or altered data."""
    return AESGCM(key).decrypt(nonce.encode(), base64.b64decode(ciphertext), associated_data.encode())
