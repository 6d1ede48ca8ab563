"""Personal data at rest: AES-GCM under a rotatable key ring; plaintext never reaches the database."""

from __future__ import annotations

import base64
import os
import uuid

import pytest
from tortoise import connections

from bff.crypto import DEFAULT_PII_KEYS, PREFIX, FieldCipher, KeyRingError, _cipher
from bff.models.member import Address, Member
from bff.models.order import Order
from bff.services.pii_rotation import reencrypt_all


def key(seed: bytes) -> str:
    return base64.b64encode(seed.ljust(32, b"0")[:32]).decode()


def test_values_round_trip_and_differ_each_time() -> None:
    ring = FieldCipher(f"k1:{key(b'one')}")
    first, second = ring.encrypt("13812348000"), ring.encrypt("13812348000")
    assert first != second and first.startswith(f"{PREFIX}k1:")
    assert ring.decrypt(first) == ring.decrypt(second) == "13812348000"
    assert ring.encrypt("") == "" and ring.decrypt("legacy plain") == "legacy plain"


def test_a_new_key_first_still_reads_the_old_one_until_it_is_removed() -> None:
    old = FieldCipher(f"k1:{key(b'one')}")
    sealed = old.encrypt("上海市浦东新区")
    rotated = FieldCipher(f"k2:{key(b'two')},k1:{key(b'one')}")
    assert rotated.decrypt(sealed) == "上海市浦东新区" and rotated.needs_rotation(sealed)
    assert not rotated.needs_rotation(rotated.encrypt("x"))
    with pytest.raises(KeyRingError):
        FieldCipher(f"k2:{key(b'two')}").decrypt(sealed)


@pytest.mark.parametrize("spec", ["", "k1", "k1:notbase64!", f"k1:{base64.b64encode(b'short').decode()}"])
def test_a_malformed_key_ring_is_refused(spec: str) -> None:
    with pytest.raises(KeyRingError):
        FieldCipher(spec)


async def _raw(table: str, column: str, row_id: int) -> str:
    rows = await connections.get("default").execute_query_dict(
        f'SELECT CAST("{column}" AS TEXT) AS v FROM "{table}" WHERE id = {int(row_id)}'
    )
    return str(rows[0]["v"])


async def test_phones_addresses_and_order_addresses_are_ciphertext_in_the_database(seeded: str) -> None:
    member = await Member.create(openid=f"o_crypto_{uuid.uuid4().hex[:8]}", phone="13900001111", level_id=1)
    address = await Address.create(
        member=member,
        name="张三",
        phone="13900001111",
        province="上海",
        city="上海",
        district="浦东",
        detail="世纪大道1号",
    )
    order = await Order.create(
        order_no=f"C{uuid.uuid4().hex[:12]}",
        member_id=member.id,
        address_snapshot={"name": "张三", "phone": "13900001111"},
    )
    for table, column, row_id in (
        ("member", "phone", member.id),
        ("address", "phone", address.id),
        ("address", "detail", address.id),
        ("orders", "address_snapshot", order.id),
    ):
        stored = await _raw(table, column, row_id)
        assert PREFIX in stored and "13900001111" not in stored and "世纪大道" not in stored, (table, column)
    again = await Order.get(id=order.id)
    assert again.address_snapshot == {"name": "张三", "phone": "13900001111"}
    assert (await Address.get(id=address.id)).detail == "世纪大道1号"


async def test_rotation_reencrypts_old_and_plaintext_rows(
    seeded: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    member = await Member.create(openid=f"o_rot_{uuid.uuid4().hex[:8]}", phone="13700002222", level_id=1)
    old_stored = await _raw("member", "phone", member.id)
    base = os.environ.get("PII_KEYS") or DEFAULT_PII_KEYS
    temporary = f"rot{uuid.uuid4().hex[:4]}:{key(uuid.uuid4().bytes)}"
    monkeypatch.setenv("PII_KEYS", f"{temporary},{base}")
    _cipher.cache_clear()
    try:
        counts = await reencrypt_all()
        assert counts["member"] >= 1
        new_stored = await _raw("member", "phone", member.id)
        assert new_stored != old_stored and not new_stored.startswith(old_stored[: len(PREFIX) + 4])
        assert (await Member.get(id=member.id)).phone == "13700002222"
        assert (await reencrypt_all())["member"] == 0  # nothing left under the old key
    finally:
        # Back under the session's key, or the rest of the session could not read the shared rows.
        monkeypatch.setenv("PII_KEYS", f"{base},{temporary}")
        _cipher.cache_clear()
        await reencrypt_all()
        monkeypatch.undo()
        _cipher.cache_clear()
