"""The events this service publishes and consumes (the contracts live in ``minsheng.contracts``)."""

from minsheng.contracts.canteen import AbsenceAlert, DeliveryCancelled, DeliveryRequested, OrderDelivered
from services.canteen.handlers import HANDLERS

PUBLISHES = (DeliveryRequested, DeliveryCancelled, OrderDelivered, AbsenceAlert)
CONSUMES = tuple(HANDLERS)
