"""The events this service publishes and consumes (the contracts live in ``minsheng.contracts``)."""

from minsheng.contracts.canteen import (
    AbsenceAlert,
    DeliveryCancelled,
    DeliveryRequested,
    OrderDelivered,
    SubsidySuspended,
)
from services.canteen.handlers import HANDLERS

PUBLISHES = (DeliveryRequested, DeliveryCancelled, OrderDelivered, AbsenceAlert, SubsidySuspended)
CONSUMES = tuple(HANDLERS)
