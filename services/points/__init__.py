"""points — the red, blue and yellow riders (红蓝黄骑士): hazard reports, governance tasks, the points ledger
and redemption at alliance merchants."""
