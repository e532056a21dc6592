"""photos in object storage

Create Date: 2026-12-06 19:45:00.000000

The bytes of earlier photos stay in ``data`` until the issues job ``issues-photos-out-of-database`` (or
``minsheng photos migrate``) has cleaned them and moved them into the object store; the store is not reachable
from a schema migration, and decoding every photo has no place in the transaction each replica runs at start.
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = '0003'
down_revision: str | None = '0002'


def upgrade() -> None:
    with op.batch_alter_table('issue_photos', schema=None) as batch_op:
        batch_op.add_column(sa.Column('storage_key', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=True))
        batch_op.add_column(sa.Column('thumb_key', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=True))
        batch_op.add_column(sa.Column('source_type', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True))
        batch_op.add_column(sa.Column('width', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('height', sa.Integer(), nullable=True))
        batch_op.alter_column('data', existing_type=sa.LargeBinary(), nullable=True)
        batch_op.create_index(batch_op.f('ix_issue_photos_owner'), ['owner'], unique=False)


def downgrade() -> None:
    # Photos uploaded since live only in the object store: a downgrade leaves them unreadable, not lost.
    op.execute("UPDATE issue_photos SET data = '' WHERE data IS NULL")
    with op.batch_alter_table('issue_photos', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_issue_photos_owner'))
        batch_op.alter_column('data', existing_type=sa.LargeBinary(), nullable=False)
        batch_op.drop_column('height')
        batch_op.drop_column('width')
        batch_op.drop_column('source_type')
        batch_op.drop_column('thumb_key')
        batch_op.drop_column('storage_key')
