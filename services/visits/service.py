"""Use cases of the visits service. They take a unit of work and never commit: the caller does, once."""
