"""Re-encrypt personal data under the current PII key (after a new key is put first in PII_KEYS)."""

from __future__ import annotations

from tortoise import connections
from tortoise.models import Model

from bff.crypto import cipher
from bff.models.member import Address, Member
from bff.models.order import Order

# Each model with the columns that hold ciphertext (see bff/models/encrypted.py).
ENCRYPTED_COLUMNS: tuple[tuple[type[Model], tuple[str, ...]], ...] = (
    (Member, ("phone",)),
    (Address, ("name", "phone", "detail")),
    (Order, ("address_snapshot",)),
)
_BATCH = 500


async def reencrypt_all() -> dict[str, int]:
    """Rewrite every row whose personal data is plaintext or under an older key; counts per table."""
    ring = cipher()
    connection = connections.get("default")
    mark = "$1" if connection.capabilities.dialect == "postgres" else "?"
    counts: dict[str, int] = {}
    for model, columns in ENCRYPTED_COLUMNS:
        table = model._meta.db_table
        # The stored text decides (the model would hand back plaintext): read it raw. The table and
        # column names are this module's constants, never input.
        select = ", ".join(f'CAST("{c}" AS TEXT) AS "{c}"' for c in columns)
        sql = f'SELECT id, {select} FROM "{table}" WHERE id > {mark} ORDER BY id LIMIT {_BATCH}'  # nosec B608
        counts[table] = 0
        last_id = 0
        while True:
            _, rows = await connection.execute_query(sql, [last_id])
            if not rows:
                break
            last_id = int(rows[-1]["id"])
            stale = [
                int(r["id"])
                for r in rows
                if any(ring.needs_rotation(_unquoted(r[c])) for c in columns if r[c] is not None)
            ]
            for instance in await model.filter(id__in=stale):
                await instance.save(update_fields=list(columns))  # the fields seal under the current key
            counts[table] += len(stale)
    return counts


def _unquoted(stored: str) -> str:
    """A JSON column holds the ciphertext as a JSON string: compare what is inside the quotes."""
    return stored[1:-1] if stored.startswith('"') and stored.endswith('"') else stored
