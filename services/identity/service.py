"""The identity use cases used to live here; they now have modules of their own: ``accounts``, ``staff_login`` and
``wechat_login``. These names stay importable from here until the routes and the CLI import them from there."""

from services.identity.accounts import account_id_of as _account_id
from services.identity.accounts import (
    account_view,
    change_access,
    create_staff,
    get_account,
    grants,
    list_accounts,
    me,
    reset_password,
    set_status,
)
from services.identity.staff_login import change_password, staff_login, totp_confirm, totp_setup
from services.identity.wechat_login import close_wechat, wechat_login, wechat_phone

__all__ = [
    "_account_id",
    "account_view",
    "change_access",
    "change_password",
    "close_wechat",
    "create_staff",
    "get_account",
    "grants",
    "list_accounts",
    "me",
    "reset_password",
    "set_status",
    "staff_login",
    "totp_confirm",
    "totp_setup",
    "wechat_login",
    "wechat_phone",
]
