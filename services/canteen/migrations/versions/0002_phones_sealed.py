"""phones sealed: masked in place, encrypted (AES-GCM, key id, AAD) and keyed-hashed beside (issue 13)

Create Date: 2026-12-06 03:03:02.889465
"""
from minsheng.platform.migrations import add_sealed_phones, drop_sealed_phones


revision: str = '0002'
down_revision: str | None = '0001'


def upgrade() -> None:
    # The phones already stored: masked in place, encrypted and hashed beside (SQLite and PostgreSQL alike).
    add_sealed_phones(('diner_family', 'phone'), ('diners', 'phone'))


def downgrade() -> None:
    drop_sealed_phones(('diner_family', 'phone'), ('diners', 'phone'))
