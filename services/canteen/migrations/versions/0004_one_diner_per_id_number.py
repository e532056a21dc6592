"""one diner per ID number: the keyed hash of a diner's ID number becomes unique

Registration checked for the number, but two registrations of the same elder at the same moment could both
pass the check and leave two diners, and two subsidy allowances, for one person. A database that already holds
such pairs stops here and names how many: keep one diner of each pair, withdraw the other (clearing its ID
number), and migrate again.

Create Date: 2026-12-07 23:50:00
"""
import sqlalchemy as sa
from alembic import op

revision: str = '0004'
down_revision: str | None = '0003'

DUPLICATES = sa.text(
    "SELECT count(*) FROM (SELECT id_number_hash FROM diners WHERE id_number_hash IS NOT NULL"
    " GROUP BY id_number_hash HAVING count(*) > 1) AS pairs"
)


def upgrade() -> None:
    pairs = op.get_bind().execute(DUPLICATES).scalar_one()
    if pairs:
        raise RuntimeError(
            f"{pairs} ID number(s) belong to more than one diner: keep one diner of each, withdraw the others "
            "(clearing their ID number), then migrate again"
        )
    with op.batch_alter_table('diners', schema=None) as batch_op:
        batch_op.drop_index('ix_diners_id_number_hash')
        batch_op.create_index('ix_diners_id_number_hash', ['id_number_hash'], unique=True)


def downgrade() -> None:
    with op.batch_alter_table('diners', schema=None) as batch_op:
        batch_op.drop_index('ix_diners_id_number_hash')
        batch_op.create_index('ix_diners_id_number_hash', ['id_number_hash'], unique=False)
