"""The relay packs record batches per partition itself, so it must pick exactly the partition aiokafka's (and the
Java client's) default partitioner picks: otherwise one aggregate's events would land on two partitions and
lose their order."""

from __future__ import annotations

import random

from aiokafka.partitioner import DefaultPartitioner
from aiokafka.partitioner import murmur2 as aiokafka_murmur2

from minsheng.platform.bus.partitioner import default_partition, murmur2


def test_murmur2_matches_aiokafka_for_10000_random_keys() -> None:
    rng = random.Random(20261206)
    keys = [rng.randbytes(rng.randint(0, 64)) for _ in range(9_000)]
    keys += [str(rng.getrandbits(128)).encode() for _ in range(500)]
    keys += [b"01936f2e-8c9a-7b3c-9d4e-5f6a7b8c9d0e", "云泰园".encode(), b""] * 166 + [b"x"] * 2
    assert len(keys) == 10_000
    partitioner = DefaultPartitioner()
    for key in keys:
        assert murmur2(key) == aiokafka_murmur2(key), key
        for count in (1, 3, 6, 12):
            ours = default_partition(key, list(range(count)))
            assert ours == partitioner(key, list(range(count)), list(range(count))), (key, count)


def test_known_vectors_of_the_java_client() -> None:
    # org.apache.kafka.common.utils.UtilsTest#testMurmur2
    vectors = {
        b"21": -973932308,
        b"foobar": -790332482,
        b"a-little-bit-long-string": -985981536,
        b"a-little-bit-longer-string": -1486304829,
        b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
        b"abc": 479470107,
    }
    for key, signed in vectors.items():
        assert murmur2(key) == signed & 0xFFFFFFFF, key
