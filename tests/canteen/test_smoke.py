from __future__ import annotations

from tests.canteen.helpers import TOMORROW, book, county, make_canteen, make_diner, make_menu, make_rules
from tests.support.client import System


async def test_smoke(canteen: System) -> None:
    c = await make_canteen(canteen)
    await make_rules(canteen)
    menu = await make_menu(canteen, "yunxing-street", TOMORROW)
    d = await make_diner(canteen, c["id"])
    r = await book(canteen, county(canteen), d["id"], menu)
    assert r.status_code == 201, r.text
    print(r.json())
