"""No personal data in logs, and the masked forms everyone but the owner sees (个人信息保护法)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from bff import log_privacy
from bff.pii_mask import mask_address, mask_name, mask_phone, mask_text

log = logging.getLogger("bff.test.privacy")


@pytest.fixture
def masked_logs() -> Iterator[None]:
    fresh = log_privacy.install()
    yield
    if fresh:
        log_privacy.uninstall()


def test_phones_names_and_addresses_have_masked_forms() -> None:
    assert mask_phone("13812348000") == "138****8000"
    assert mask_phone("12345") == "*****" and mask_phone("") == ""
    assert mask_name("张三丰") == "张**" and mask_name("") == ""
    assert mask_address("上海市", "上海市", "浦东新区") == "上海市上海市浦东新区****"


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("call 13812348000 now", "call 138****8000 now"),
        ("+86 15912345678", "159****5678"),
        ("身份证11010519491231002X。", "身份证110***********002X。"),
        ("mail zhang.san@example.com.cn", "mail z***@example.com.cn"),
        # Longer digit runs are not phones; an 18-digit number without a valid check digit is no ID.
        ("order 2026110112000012345678", "order 2026110112000012345678"),
        ("order 202511010000001234", "order 202511010000001234"),
        ("id 110105194912310021", "id 110105194912310021"),
        ("12 items, 3 days", "12 items, 3 days"),
    ],
)
def test_free_text_is_masked_where_it_holds_personal_data(text: str, masked: str) -> None:
    assert mask_text(text) == masked


def test_the_filter_masks_messages_and_arguments(masked_logs: None, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="bff.test.privacy"):
        log.info("member phone 13812348000 bound")
        log.info("member %s bound %s", "13912345678", {"email": "li.si@example.com"})
        log.info("as a number: %d", 13712345678)
        log.info("named %(phone)s", {"phone": "15012345678"})
        log.info("unchanged %d items at %.1f", 3, 1.5)
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "member phone 138****8000 bound",
        "member 139****5678 bound {'email': 'l***@example.com'}",
        "as a number: 137****5678",
        "named 150****5678",
        "unchanged 3 items at 1.5",
    ]
    assert "13812348000" not in caplog.text and "13912345678" not in caplog.text


def test_tracebacks_and_credentials_in_urls_are_masked(
    masked_logs: None, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="bff.test.privacy"):
        try:
            raise ValueError("no member with phone 13812348000")
        except ValueError:
            log.exception("lookup failed")
        log.info(
            "HTTP Request: %s %s", "GET", "https://api.example/sns/jscode2session?secret=s3cr3t&js_code=abc"
        )
    assert "138****8000" in caplog.text and "13812348000" not in caplog.text
    assert "secret=***&js_code=***" in caplog.text and "s3cr3t" not in caplog.text


def test_access_log_arguments_keep_their_shape(masked_logs: None) -> None:
    # uvicorn's access formatter unpacks record.args as a 5-tuple.
    record = logging.getLogger("uvicorn.access").makeRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", "/graphql?phone=13812348000", "1.1", 200),
        None,
    )
    assert record.args == ("127.0.0.1:5000", "GET", "/graphql?phone=138****8000", "1.1", 200)


def test_installing_twice_installs_once() -> None:
    fresh = log_privacy.install()
    try:
        assert log_privacy.install() is False
    finally:
        if fresh:
            log_privacy.uninstall()
