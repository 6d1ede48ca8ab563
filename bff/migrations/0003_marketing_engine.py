from tortoise import migrations
from tortoise.migrations import operations as ops
from orjson import loads
from tortoise.fields.data import JSON_DUMPS
from tortoise import fields
from tortoise.indexes import Index
from tortoise.migrations.constraints import UniqueConstraint

class Migration(migrations.Migration):
    dependencies = [('models', '0002_orders_payments_outbox')]

    initial = False

    operations = [
        ops.CreateModel(
            name='ActivityPage',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('slug', fields.CharField(unique=True, max_length=64)),
                ('title', fields.CharField(max_length=100)),
                ('blocks', fields.JSONField(default=list, encoder=JSON_DUMPS, decoder=loads)),
                ('published', fields.BooleanField(default=False)),
                ('starts_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('ends_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'activity_page', 'app': 'models', 'pk_attr': 'id', 'table_description': '活动页: a campaign page assembled from blocks by an operator, served without a release.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='BargainHelp',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('session_id', fields.IntField()),
                ('helper_id', fields.IntField()),
                ('cut_fen', fields.IntField()),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'bargain_help', 'app': 'models', 'unique_together': (('session_id', 'helper_id'),), 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='BargainSession',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('campaign_id', fields.IntField()),
                ('member_id', fields.IntField()),
                ('current_price_fen', fields.IntField()),
                ('helpers_count', fields.IntField(default=0)),
                ('status', fields.CharField(default='OPEN', max_length=12)),
                ('expires_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('order_id', fields.IntField(null=True)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'bargain_session', 'app': 'models', 'indexes': [Index(fields=['campaign_id', 'member_id']), Index(fields=['status', 'expires_at'])], 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='FlashSalePurchase',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('item_id', fields.IntField()),
                ('member_id', fields.IntField()),
                ('order_id', fields.IntField(null=True, unique=True)),
                ('quantity', fields.IntField()),
                ('status', fields.CharField(default='RESERVED', max_length=12)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'flash_sale_purchase', 'app': 'models', 'indexes': [Index(fields=['item_id', 'member_id', 'status'])], 'pk_attr': 'id', 'table_description': 'A hold on flash-sale stock for one order, RESERVED until paid and RELEASED if it closes.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='LotteryDraw',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('pool_id', fields.IntField()),
                ('member_id', fields.IntField()),
                ('prize_id', fields.IntField(null=True)),
                ('day', fields.DateField()),
                ('roll', fields.IntField()),
                ('points_spent', fields.IntField(default=0)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'lottery_draw', 'app': 'models', 'indexes': [Index(fields=['pool_id', 'member_id', 'day'])], 'pk_attr': 'id', 'table_description': 'The auditable record of every draw.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='LotteryPool',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('name', fields.CharField(max_length=64)),
                ('points_cost', fields.IntField(default=0)),
                ('daily_draws', fields.IntField(default=1)),
                ('starts_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('ends_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'lottery_pool', 'app': 'models', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='LotteryPrize',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('pool_id', fields.IntField()),
                ('kind', fields.CharField(max_length=16)),
                ('name', fields.CharField(max_length=64)),
                ('weight', fields.IntField()),
                ('stock', fields.IntField(default=-1)),
                ('coupon_template_id', fields.IntField(null=True)),
                ('points', fields.IntField(default=0)),
            ],
            options={'table': 'lottery_prize', 'app': 'models', 'indexes': [Index(fields=['pool_id'])], 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='PresaleOrder',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('campaign_id', fields.IntField()),
                ('member_id', fields.IntField()),
                ('deposit_order_id', fields.IntField(unique=True)),
                ('balance_order_id', fields.IntField(null=True)),
                ('status', fields.CharField(default='DEPOSIT_PENDING', max_length=16)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'presale_order', 'app': 'models', 'indexes': [Index(fields=['campaign_id', 'member_id'])], 'pk_attr': 'id', 'table_description': 'A presale purchase: the deposit order, then the balance order.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Referral',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('inviter_id', fields.IntField()),
                ('invitee_id', fields.IntField(unique=True)),
                ('rewarded_order_id', fields.IntField(null=True)),
                ('rewarded_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'referral', 'app': 'models', 'indexes': [Index(fields=['inviter_id'])], 'pk_attr': 'id', 'table_description': '分享得券: who invited whom. Both are rewarded once, when the invitee pays a first order.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='SignIn',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('member_id', fields.IntField()),
                ('day', fields.DateField()),
                ('points', fields.IntField()),
                ('streak', fields.IntField(default=1)),
            ],
            options={'table': 'sign_in', 'app': 'models', 'unique_together': (('member_id', 'day'),), 'pk_attr': 'id', 'table_description': 'Daily sign-in (签到): one row per member per shop day.'},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='CouponTemplate',
            name='purpose',
            field=fields.CharField(default='', db_default='', max_length=24),
        ),
        ops.AddField(
            model_name='GroupBuyTeamMember',
            name='order_id',
            field=fields.IntField(null=True),
        ),
        ops.AddField(
            model_name='GroupBuyTeamMember',
            name='status',
            field=fields.CharField(default='PAID', db_default='PAID', max_length=16),
        ),
        ops.AddField(
            model_name='MemberCoupon',
            name='claim_seq',
            field=fields.IntField(null=True),
        ),
        ops.AddField(
            model_name='MemberCoupon',
            name='source',
            field=fields.CharField(default='CLAIM', db_default='CLAIM', max_length=24),
        ),
        ops.AddConstraint(
            model_name='MemberCoupon',
            constraint=UniqueConstraint(fields=('member_id', 'template_id', 'claim_seq'), name=None),
        ),
        ops.AddField(
            model_name='PointsLedger',
            name='expires_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='PointsLedger',
            name='remaining',
            field=fields.IntField(default=0, db_default=0),
        ),
    ]
