"""The ERP's side of webhooks: build events, sign a batch per Standard Webhooks, POST it to the BFF."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
from standardwebhooks.webhooks import Webhook


def erp_event(
    type: str,
    data: Mapping[str, Any],
    *,
    version: int,
    event_id: str | None = None,
    occurred_at: datetime | None = None,
) -> dict[str, Any]:
    """One event as the ERP sends it (a fresh `evt_…` id unless given)."""
    return {
        "id": event_id or f"evt_{uuid.uuid4().hex}",
        "type": type,
        "occurred_at": (occurred_at or datetime.now(UTC)).isoformat(),
        "version": version,
        "data": dict(data),
    }


def batch_body(events: Sequence[Mapping[str, Any]]) -> bytes:
    """The raw body of a batch: the exact bytes that are signed and sent."""
    return orjson.dumps({"events": list(events)})


def signed_headers(
    body: bytes,
    secrets: str | Sequence[str],
    *,
    msg_id: str | None = None,
    timestamp: datetime | None = None,
) -> dict[str, str]:
    """Standard Webhooks headers with one `v1,…` signature per secret (several while a secret rotates)."""
    keys = [secrets] if isinstance(secrets, str) else list(secrets)
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    moment = timestamp or datetime.now(UTC)
    text = body.decode()
    signatures = " ".join(Webhook(key).sign(msg_id, moment, text) for key in keys)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(moment.timestamp())),
        "webhook-signature": signatures,
        "content-type": "application/json",
    }


async def send_events(
    http: httpx.AsyncClient,
    url: str,
    events: Sequence[Mapping[str, Any]],
    secrets: str | Sequence[str],
    *,
    msg_id: str | None = None,
    timestamp: datetime | None = None,
) -> httpx.Response:
    """Sign and POST a batch to `url`, as the ERP delivers it; pass the same msg_id to redeliver."""
    body = batch_body(events)
    headers = signed_headers(body, secrets, msg_id=msg_id, timestamp=timestamp)
    return await http.post(url, content=body, headers=headers)
