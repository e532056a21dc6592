"""``python -m minsheng.cli``."""

from minsheng.cli import app

app()
