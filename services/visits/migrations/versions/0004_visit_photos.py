"""photos taken on a visit (the bytes are in the object store)

Create Date: 2026-12-06 19:55:00.000000
"""
import sqlalchemy as sa
from alembic import op

import minsheng.platform.types
from minsheng.platform.migrations import create_photos_table, drop_photos_table


revision: str = '0004'
down_revision: str | None = '0003'


def upgrade() -> None:
    create_photos_table('visit_photos')
    with op.batch_alter_table('visits', schema=None) as batch_op:
        batch_op.add_column(sa.Column('photo_urls', minsheng.platform.types.JSONType(), nullable=False, server_default='[]'))


def downgrade() -> None:
    with op.batch_alter_table('visits', schema=None) as batch_op:
        batch_op.drop_column('photo_urls')
    drop_photos_table('visit_photos')
