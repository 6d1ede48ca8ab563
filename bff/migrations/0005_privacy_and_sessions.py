from tortoise import migrations
from tortoise.migrations import operations as ops
from bff.models.encrypted import EncryptedCharField, EncryptedJSONField
from orjson import loads
from tortoise.fields.data import JSON_DUMPS
from tortoise import fields

class AlterColumnType(ops.AlterField):
    """AlterField that leaves SQLite alone: its rebuild of the table drops the table's indexes and
    unique constraints, and SQLite neither enforces VARCHAR lengths nor stores JSON differently, so
    the encrypted columns need no change there. PostgreSQL alters the column in place."""

    async def database_forward(self, app_label, old_state, new_state, state_editor=None):  # type: ignore[no-untyped-def]
        if state_editor is not None and state_editor.client.capabilities.dialect == "sqlite":
            return
        await super().database_forward(app_label, old_state, new_state, state_editor)


class Migration(migrations.Migration):
    dependencies = [('models', '0004_data_analytics')]

    initial = False

    operations = [
        AlterColumnType(
            model_name='Address',
            name='detail',
            field=EncryptedCharField(max_length=1024),
        ),
        AlterColumnType(
            model_name='Address',
            name='name',
            field=EncryptedCharField(max_length=255),
        ),
        AlterColumnType(
            model_name='Address',
            name='phone',
            field=EncryptedCharField(max_length=255),
        ),
        AlterColumnType(
            model_name='Member',
            name='phone',
            field=EncryptedCharField(default='', max_length=255),
        ),
        ops.AddField(
            model_name='Member',
            name='deleted_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='Member',
            name='privacy_accepted_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='Member',
            name='privacy_version',
            field=fields.CharField(null=True, max_length=16),
        ),
        ops.AddField(
            model_name='Member',
            name='token_version',
            field=fields.IntField(default=0, db_default=0),
        ),
        AlterColumnType(
            model_name='Order',
            name='address_snapshot',
            field=EncryptedJSONField(default=dict, encoder=JSON_DUMPS, decoder=loads),
        ),
    ]
