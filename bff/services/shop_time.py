"""The shop's calendar: days (sign-ins, draws, search stats) are counted in China time, UTC+8."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

SHOP_TZ = timezone(timedelta(hours=8), "Asia/Shanghai")


def shop_day(moment: datetime) -> date:
    """The shop's calendar day of a moment."""
    return moment.astimezone(SHOP_TZ).date()


def shop_today() -> date:
    """Today in the shop's calendar."""
    return shop_day(datetime.now(UTC))
