"""Local infrastructure for development, tests and benchmarks: a private PostgreSQL server and an Apache Kafka
(or Tansu) broker started from this machine's own binaries, on free ports, in throw-away directories.

Nothing here is used by a deployed service; ``minsheng dev-cluster``, the test suite and ``bin/bench`` share it.
"""
