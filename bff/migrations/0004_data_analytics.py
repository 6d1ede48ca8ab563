from tortoise import migrations
from tortoise.migrations import operations as ops
from orjson import loads
from tortoise.fields.data import JSON_DUMPS
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0003_marketing_engine')]

    initial = False

    operations = [
        ops.CreateModel(
            name='CareFlow',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('member_id', fields.IntField()),
                ('started_on', fields.DateField()),
                ('reasons', fields.JSONField(default=list, encoder=JSON_DUMPS, decoder=loads)),
                ('crm_task_id', fields.CharField(null=True, max_length=64)),
                ('member_coupon_id', fields.IntField(null=True)),
                ('message_status', fields.CharField(default='PENDING', max_length=16)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'churn_care_flow', 'app': 'models', 'unique_together': (('member_id', 'started_on'),), 'pk_attr': 'id', 'table_description': 'One care flow for an at-risk member: CRM task, targeted coupon, subscribe message (at most weekly).'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='DirtyDay',
            fields=[
                ('day', fields.DateField(primary_key=True, unique=True, db_index=True)),
                ('marked_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'analytics_dirty_day', 'app': 'models', 'pk_attr': 'day', 'table_description': 'A day whose rollups are older than its events: the next rollup run rebuilds it.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Experiment',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('key', fields.CharField(unique=True, max_length=64)),
                ('name', fields.CharField(max_length=128)),
                ('screen', fields.CharField(max_length=32)),
                ('variants', fields.JSONField(default=list, encoder=JSON_DUMPS, decoder=loads)),
                ('status', fields.CharField(default='DRAFT', max_length=16)),
                ('created_by', fields.CharField(default='', max_length=64)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('started_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('stopped_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'experiment', 'app': 'models', 'pk_attr': 'id', 'table_description': 'An experiment: members and visitors are assigned a variant by a stable hash of key and identity.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='ExperimentVisitor',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('experiment_key', fields.CharField(max_length=64)),
                ('variant', fields.CharField(max_length=32)),
                ('visitor_key', fields.CharField(max_length=80)),
                ('member_id', fields.IntField(null=True)),
                ('first_exposed_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'analytics_experiment_visitor', 'app': 'models', 'unique_together': (('experiment_key', 'visitor_key'),), 'indexes': [Index(fields=['experiment_key', 'variant'])], 'pk_attr': 'id', 'table_description': 'The first exposure of a visitor to an experiment, with the variant the server assigned.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='KeywordDay',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('day', fields.DateField()),
                ('keyword', fields.CharField(max_length=64)),
                ('searches', fields.IntField(default=0)),
                ('zero_results', fields.IntField(default=0)),
            ],
            options={'table': 'analytics_keyword_day', 'app': 'models', 'unique_together': (('day', 'keyword'),), 'pk_attr': 'id', 'table_description': 'How often a keyword was searched on one day, and how many of those searches found nothing.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='MemberRecommendation',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('member_id', fields.IntField()),
                ('product_id', fields.IntField()),
                ('score', fields.FloatField()),
                ('rank', fields.IntField()),
                ('reason', fields.CharField(max_length=24)),
            ],
            options={'table': 'reco_member_product', 'app': 'models', 'unique_together': (('member_id', 'product_id'),), 'indexes': [Index(fields=['member_id', 'rank'])], 'pk_attr': 'id', 'table_description': 'A product picked for one member, best first by rank, with the signal that picked it.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='MemberScore',
            fields=[
                ('member_id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('scored_on', fields.DateField()),
                ('recency_days', fields.IntField(null=True)),
                ('frequency', fields.IntField(default=0)),
                ('monetary_fen', fields.BigIntField(default=0)),
                ('r_score', fields.SmallIntField(default=1)),
                ('f_score', fields.SmallIntField(default=1)),
                ('m_score', fields.SmallIntField(default=1)),
                ('segment', fields.CharField(default='', max_length=32)),
                ('high_value', fields.BooleanField(default=False)),
                ('at_risk', fields.BooleanField(default=False)),
                ('reasons', fields.JSONField(default=list, encoder=JSON_DUMPS, decoder=loads)),
                ('recent_activity', fields.IntField(default=0)),
                ('prior_activity', fields.IntField(default=0)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'churn_member_score', 'app': 'models', 'indexes': [Index(fields=['at_risk', 'monetary_fen'])], 'pk_attr': 'member_id', 'table_description': 'The latest RFM score of a member, and whether a high-value member is drifting away (with reasons).'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='PopularProduct',
            fields=[
                ('product_id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('score', fields.FloatField()),
                ('rank', fields.IntField(unique=True)),
            ],
            options={'table': 'reco_popular_product', 'app': 'models', 'pk_attr': 'product_id', 'table_description': 'The cold-start list: products ranked by recent views, carts and sales.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='ProductDay',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('day', fields.DateField()),
                ('product_id', fields.IntField()),
                ('exposures', fields.IntField(default=0)),
                ('clicks', fields.IntField(default=0)),
                ('views', fields.IntField(default=0)),
                ('add_to_carts', fields.IntField(default=0)),
            ],
            options={'table': 'analytics_product_day', 'app': 'models', 'unique_together': (('day', 'product_id'),), 'pk_attr': 'id', 'table_description': 'Exposures, clicks, detail views and add-to-carts of a product on one day.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='ProductNeighbor',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('product_id', fields.IntField()),
                ('neighbor_id', fields.IntField()),
                ('score', fields.FloatField()),
                ('rank', fields.IntField()),
            ],
            options={'table': 'reco_product_neighbor', 'app': 'models', 'unique_together': (('product_id', 'neighbor_id'),), 'indexes': [Index(fields=['product_id', 'rank'])], 'pk_attr': 'id', 'table_description': 'A product often viewed, carted or bought together with another, best first by rank.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='TrackedEvent',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('client_event_id', fields.CharField(max_length=64)),
                ('anonymous_id', fields.CharField(max_length=64)),
                ('member_id', fields.IntField(null=True)),
                ('session_id', fields.CharField(default='', max_length=64)),
                ('type', fields.CharField(max_length=32)),
                ('page', fields.CharField(default='', max_length=128)),
                ('product_id', fields.IntField(null=True)),
                ('keyword', fields.CharField(null=True, max_length=64)),
                ('result_count', fields.IntField(null=True)),
                ('properties', fields.JSONField(default=dict, encoder=JSON_DUMPS, decoder=loads)),
                ('occurred_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('received_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('day', fields.DateField()),
            ],
            options={'table': 'analytics_event', 'app': 'models', 'unique_together': (('anonymous_id', 'client_event_id'),), 'indexes': [Index(fields=['day', 'type']), Index(fields=['member_id', 'day']), Index(fields=['product_id', 'day'])], 'pk_attr': 'id', 'table_description': 'One behaviour event as the mini-program sent it (the member comes from the token).'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='VisitorDay',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('day', fields.DateField()),
                ('visitor_key', fields.CharField(max_length=80)),
                ('member_id', fields.IntField(null=True)),
                ('page_views', fields.IntField(default=0)),
                ('product_views', fields.IntField(default=0)),
                ('add_to_carts', fields.IntField(default=0)),
                ('checkout_starts', fields.IntField(default=0)),
                ('shares', fields.IntField(default=0)),
            ],
            options={'table': 'analytics_visitor_day', 'app': 'models', 'unique_together': (('day', 'visitor_key'),), 'indexes': [Index(fields=['visitor_key', 'day']), Index(fields=['member_id', 'day'])], 'pk_attr': 'id', 'table_description': 'What one visitor did on one day: the rows UV, the funnel and retention are counted from.'},
            bases=['Model'],
        ),
    ]
