"""Use cases of the canteen service. They take a unit of work and never commit: the caller does, once."""
