"""visits — Grid workers' door-to-door rounds, the needs ledger closed one by one, the happiness bill."""
