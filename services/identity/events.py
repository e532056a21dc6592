"""The events this service publishes and consumes (the contracts live in ``minsheng.contracts``)."""

from minsheng.contracts.identity import (
    AccountAccessChanged,
    AccountContactChanged,
    AccountCreated,
    AccountLinked,
    AccountStatusChanged,
)
from services.identity.handlers import HANDLERS

PUBLISHES = (AccountCreated, AccountAccessChanged, AccountStatusChanged, AccountContactChanged, AccountLinked)
CONSUMES = tuple(HANDLERS)
