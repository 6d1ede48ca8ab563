from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0005_privacy_and_sessions')]

    initial = False

    operations = [
        ops.AddIndex(
            model_name='Order',
            index=Index(fields=['paid_at']),
        ),
        ops.AddIndex(
            model_name='Order',
            index=Index(fields=['created_at']),
        ),
    ]
