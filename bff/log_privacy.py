"""No personal data (nor credentials in URLs) in logs: every record's message, arguments and traceback
text are masked.

A `logging.Filter` on the root *logger* would only see records logged on the root logger itself
(propagated records skip ancestors' logger filters), and handlers come and go (uvicorn installs its
own). So `install()` runs the filter inside the log record factory, which every record of the
process passes through whatever its logger or handler.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from typing import Any

from bff.pii_mask import mask_text

_installed: list[Callable[..., logging.LogRecord]] = []  # the factory replaced, while installed
# Credentials in URLs, as httpx logs every request ("HTTP Request: GET …/jscode2session?secret=…").
_SECRET_PARAM = re.compile(r"(?i)\b(secret|access_token|js_code|session_key|password|token)=([^&\s\"']+)")


def scrub(text: str) -> str:
    """`text` with personal data masked and credentials in query strings replaced by ***."""
    text = mask_text(text)
    return _SECRET_PARAM.sub(r"\1=***", text) if "=" in text else text


def _masked_arg(value: object) -> object:
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, int | float | bool) or value is None:
        return value  # keeps %d and %.1f working; an int phone number is caught in the fallback below
    rendered = str(value)
    masked = scrub(rendered)
    return value if masked == rendered else masked


class PersonalDataFilter(logging.Filter):
    """Masks mobile numbers (138****8000), ID-card numbers and e-mails in a record; never drops one."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = scrub(record.msg)
        args = record.args
        if isinstance(args, Mapping):
            record.args = {k: _masked_arg(v) for k, v in args.items()}
        elif isinstance(args, tuple):
            record.args = tuple(_masked_arg(a) for a in args)
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            return True  # a malformed record: logging reports it as it would have anyway
        if scrub(message) != message:
            # A number the masking of single arguments could not reach (an int, digits split over
            # arguments): log the masked text and drop the arguments.
            record.msg, record.args = scrub(message), ()
        if record.exc_info and not record.exc_text:
            # Formatters print exc_text when it is set: render the traceback now, masked.
            record.exc_text = scrub(logging.Formatter().formatException(record.exc_info))
        if record.stack_info:
            record.stack_info = scrub(record.stack_info)
        return True


def install() -> bool:
    """Mask personal data in every log record this process creates from now on; False: already on."""
    if _installed:
        return False
    previous = logging.getLogRecordFactory()
    masking = PersonalDataFilter()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        masking.filter(record)
        return record

    _installed.append(previous)
    logging.setLogRecordFactory(factory)
    return True


def uninstall() -> None:
    """Restore the record factory `install()` replaced (tests)."""
    if _installed:
        logging.setLogRecordFactory(_installed.pop())
