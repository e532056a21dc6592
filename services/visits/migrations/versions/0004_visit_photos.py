"""photos taken on a visit (the bytes are in the object store)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06 19:55:00.000000
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import minsheng.platform.types


revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('visit_photos',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('owner', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('storage_key', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=True),
    sa.Column('thumb_key', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=True),
    sa.Column('content_type', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('source_type', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('width', sa.Integer(), nullable=True),
    sa.Column('height', sa.Integer(), nullable=True),
    sa.Column('sha256', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('created_at', minsheng.platform.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('visit_photos', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_visit_photos_owner'), ['owner'], unique=False)
    with op.batch_alter_table('visits', schema=None) as batch_op:
        batch_op.add_column(sa.Column('photo_urls', minsheng.platform.types.JSONType(), nullable=False, server_default='[]'))


def downgrade() -> None:
    with op.batch_alter_table('visits', schema=None) as batch_op:
        batch_op.drop_column('photo_urls')
    with op.batch_alter_table('visit_photos', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_visit_photos_owner'))
    op.drop_table('visit_photos')
