from tortoise import migrations
from tortoise.migrations import operations as ops
from orjson import loads
from tortoise.fields.base import OnDelete
from tortoise.fields.data import JSON_DUMPS
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0001_initial')]

    initial = False

    operations = [
        ops.CreateModel(
            name='InboundEvent',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('source', fields.CharField(max_length=16)),
                ('event_id', fields.CharField(max_length=128)),
                ('type', fields.CharField(max_length=64)),
                ('version', fields.BigIntField(default=0)),
                ('occurred_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('payload', fields.JSONField(default=dict, encoder=JSON_DUMPS, decoder=loads)),
                ('status', fields.CharField(default='PENDING', max_length=12)),
                ('received_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('applied_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('last_error', fields.TextField(default='', unique=False)),
            ],
            options={'table': 'inbound_event', 'app': 'models', 'unique_together': (('source', 'event_id'),), 'indexes': [Index(fields=['status', 'id'])], 'pk_attr': 'id', 'table_description': 'A webhook event, stored before it is acknowledged and applied exactly once afterwards.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='OrderEvent',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('order', fields.ForeignKeyField('models.Order', source_field='order_id', db_constraint=True, to_field='id', related_name='events', on_delete=OnDelete.CASCADE)),
                ('status', fields.CharField(max_length=24)),
                ('note', fields.CharField(default='', max_length=256)),
                ('at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'order_event', 'app': 'models', 'indexes': [Index(fields=['order_id', 'id'])], 'pk_attr': 'id', 'table_description': "The order's timeline: every status change with when and why."},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='OutboxMessage',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('topic', fields.CharField(max_length=64)),
                ('payload', fields.JSONField(default=dict, encoder=JSON_DUMPS, decoder=loads)),
                ('dedupe_key', fields.CharField(null=True, unique=True, max_length=128)),
                ('status', fields.CharField(default='PENDING', max_length=12)),
                ('attempts', fields.IntField(default=0)),
                ('run_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('locked_until', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('last_error', fields.TextField(default='', unique=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('done_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'outbox_message', 'app': 'models', 'indexes': [Index(fields=['status', 'run_at']), Index(fields=['topic', 'status'])], 'pk_attr': 'id', 'table_description': 'A side effect to perform (push an order, send a message, close an order at its deadline).'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Payment',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('order_id', fields.IntField()),
                ('out_trade_no', fields.CharField(max_length=64)),
                ('transaction_id', fields.CharField(unique=True, max_length=64)),
                ('amount_fen', fields.IntField()),
                ('status', fields.CharField(max_length=16)),
                ('paid_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'payment', 'app': 'models', 'indexes': [Index(fields=['order_id'])], 'pk_attr': 'id', 'table_description': 'A WeChat Pay transaction for an order, recorded once per transaction id.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Refund',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('order_id', fields.IntField()),
                ('after_sale_id', fields.IntField(null=True)),
                ('out_refund_no', fields.CharField(unique=True, max_length=64)),
                ('amount_fen', fields.IntField()),
                ('reason', fields.CharField(default='', max_length=128)),
                ('status', fields.CharField(default='PENDING', max_length=16)),
                ('refund_id', fields.CharField(null=True, max_length=64)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('succeeded_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'refund', 'app': 'models', 'indexes': [Index(fields=['order_id'])], 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Shipment',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('order', fields.ForeignKeyField('models.Order', source_field='order_id', db_constraint=True, to_field='id', related_name='shipments', on_delete=OnDelete.CASCADE)),
                ('carrier', fields.CharField(max_length=64)),
                ('tracking_no', fields.CharField(unique=True, max_length=64)),
                ('shipped_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('events', fields.JSONField(default=list, encoder=JSON_DUMPS, decoder=loads)),
                ('events_version', fields.BigIntField(default=0)),
            ],
            options={'table': 'shipment', 'app': 'models', 'indexes': [Index(fields=['order_id'])], 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='AfterSale',
            name='description',
            field=fields.TextField(default='', db_default='', unique=False),
        ),
        ops.AddField(
            model_name='AfterSale',
            name='erp_return_id',
            field=fields.CharField(null=True, max_length=64),
        ),
        ops.AddField(
            model_name='AfterSale',
            name='image_urls',
            field=fields.JSONField(default=list, db_default=[], encoder=JSON_DUMPS, decoder=loads),
        ),
        ops.AddField(
            model_name='AfterSale',
            name='lines',
            field=fields.JSONField(default=list, db_default=[], encoder=JSON_DUMPS, decoder=loads),
        ),
        ops.AddIndex(
            model_name='AfterSale',
            index=Index(fields=['order_id']),
        ),
        ops.AddField(
            model_name='Order',
            name='campaign_kind',
            field=fields.CharField(null=True, max_length=24),
        ),
        ops.AddField(
            model_name='Order',
            name='campaign_ref',
            field=fields.IntField(null=True),
        ),
        ops.AddField(
            model_name='Order',
            name='close_reason',
            field=fields.CharField(default='', db_default='', max_length=128),
        ),
        ops.AddField(
            model_name='Order',
            name='closed_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='Order',
            name='completed_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='Order',
            name='delivered_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='Order',
            name='erp_order_id',
            field=fields.CharField(null=True, max_length=64),
        ),
        ops.AddField(
            model_name='Order',
            name='prepay_id',
            field=fields.CharField(null=True, max_length=128),
        ),
        ops.AddField(
            model_name='Order',
            name='refunded_fen',
            field=fields.IntField(default=0, db_default=0),
        ),
        ops.AddField(
            model_name='Order',
            name='shipped_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddIndex(
            model_name='Order',
            index=Index(fields=['member_id', 'id']),
        ),
        ops.AddIndex(
            model_name='Order',
            index=Index(fields=['status', 'pay_deadline']),
        ),
        ops.AlterModelOptions(
            name='OrderLine',
            options={'table': 'order_line', 'app': 'models', 'indexes': [Index(fields=['order_id'])], 'pk_attr': 'id', 'table_description': 'A line as it was sold: snapshot of the product and the discounts allocated to it.'},
        ),
        ops.AddField(
            model_name='OrderLine',
            name='campaign_discount_fen',
            field=fields.IntField(default=0, db_default=0),
        ),
        ops.AddField(
            model_name='OrderLine',
            name='coupon_discount_fen',
            field=fields.IntField(default=0, db_default=0),
        ),
        ops.AddField(
            model_name='OrderLine',
            name='list_price_fen',
            field=fields.IntField(default=0, db_default=0),
        ),
        ops.AddField(
            model_name='OrderLine',
            name='member_discount_fen',
            field=fields.IntField(default=0, db_default=0),
        ),
        ops.AddField(
            model_name='OrderLine',
            name='paid_fen',
            field=fields.IntField(default=0, db_default=0),
        ),
        ops.AddField(
            model_name='OrderLine',
            name='points_discount_fen',
            field=fields.IntField(default=0, db_default=0),
        ),
        ops.AddField(
            model_name='OrderLine',
            name='refunded_fen',
            field=fields.IntField(default=0, db_default=0),
        ),
        ops.AddField(
            model_name='OrderLine',
            name='refunded_quantity',
            field=fields.IntField(default=0, db_default=0),
        ),
        ops.AddField(
            model_name='OrderLine',
            name='sku_code',
            field=fields.CharField(default='', db_default='', max_length=64),
        ),
        ops.AddField(
            model_name='Sku',
            name='reserved',
            field=fields.IntField(default=0, db_default=0),
        ),
    ]
