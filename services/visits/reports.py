"""The happiness bill and the coverage figures used to live here; they now have modules of their own, ``bill``
and ``coverage``. These names stay importable from here until the routes import them from there."""

from services.visits.bill import bill, bill_html
from services.visits.coverage import coverage, round_progress

__all__ = ["bill", "bill_html", "coverage", "round_progress"]
