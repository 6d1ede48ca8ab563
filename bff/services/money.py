"""Money in integer fen: formatting and percentage arithmetic that never uses floats."""

from __future__ import annotations


def format_fen(fen: int) -> str:
    """¥ display of an amount in fen: 12345 → "¥123.45"."""
    sign = "-" if fen < 0 else ""
    yuan, cents = divmod(abs(fen), 100)
    return f"{sign}¥{yuan}.{cents:02d}"


def percent_of(fen: int, percent: int) -> int:
    """`percent`% of `fen`, rounded half up to a whole fen."""
    return (fen * percent + 50) // 100


def member_price(price_fen: int, discount_percent: int) -> int:
    """The price a member pays at a level that takes `discount_percent`% off (never below 1 fen)."""
    if price_fen <= 0:
        return price_fen
    return max(1, price_fen - percent_of(price_fen, discount_percent))
