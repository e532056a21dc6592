"""photos riders upload (the bytes are in the object store)

Create Date: 2026-12-06 19:50:00.000000
"""
from minsheng.platform.migrations import create_photos_table, drop_photos_table


revision: str = '0004'
down_revision: str | None = '0003'


def upgrade() -> None:
    create_photos_table('points_photos')


def downgrade() -> None:
    drop_photos_table('points_photos')
