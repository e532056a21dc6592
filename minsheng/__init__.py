"""Minsheng (民生): the grassroots-governance backend a county runs for its residents."""

SERVICES = ("visits", "issues", "points", "canteen", "identity", "notify")
