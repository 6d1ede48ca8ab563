"""Masked forms of personal data, for everyone but its owner (个人信息保护法): phones, addresses, names,
and free text that may hold a mobile number, an ID-card number or an e-mail address."""

from __future__ import annotations

import re

# Digit boundaries keep longer numbers (order numbers, timestamps) from matching in their middle.
_MOBILE = re.compile(r"(?<!\d)(?:\+?86[- ]?)?(1[3-9]\d)(\d{4})(\d{4})(?!\d)")
# 18-digit resident ID: region (first digit 1-8), birth date, sequence, check digit. The check digit is
# verified too, so an 18-digit order number is not taken for one by accident.
_ID_CARD = re.compile(
    r"(?<![0-9A-Za-z])([1-8]\d{5})((?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01]))"
    r"(\d{3})([0-9Xx])(?![0-9A-Za-z])"
)
_EMAIL = re.compile(r"(?<![\w.+-])([\w.+-])[\w.+-]*@([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)")
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"


def mask_phone(phone: str) -> str:
    """13812348000 → 138****8000; shorter values are starred whole; "" stays ""."""
    if not phone:
        return ""
    if len(phone) < 7:
        return "*" * len(phone)
    return f"{phone[:3]}****{phone[-4:]}"


def mask_name(name: str) -> str:
    """张三丰 → 张**: the first character only."""
    return name[:1] + "*" * (len(name) - 1) if name else ""


def mask_address(province: str, city: str, district: str) -> str:
    """An address cut to its district: 上海市浦东新区****; the street and door number never show."""
    return f"{province}{city}{district}****"


def _id_card_checks(body: str, check: str) -> bool:
    # GB 11643: the check digit of the weighted sum of the first 17 digits, modulo 11.
    total = sum(int(d) * w for d, w in zip(body, _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11] == check.upper()


def _mask_id_card(match: re.Match[str]) -> str:
    number = match.group(0)
    if not _id_card_checks(number[:17], number[17]):
        return number
    return f"{number[:3]}{'*' * 11}{number[-4:]}"


def mask_text(text: str) -> str:
    """`text` with every mobile number, ID-card number and e-mail address in it masked."""
    if not any(c.isdigit() or c == "@" for c in text):
        return text  # the common case of a log line without numbers costs one scan
    text = _ID_CARD.sub(_mask_id_card, text)
    text = _MOBILE.sub(lambda m: f"{m.group(1)}****{m.group(3)}", text)
    return _EMAIL.sub(lambda m: f"{m.group(1)}***@{m.group(2)}", text)
