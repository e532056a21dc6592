"""``python -m bench.photos``: what one phone photo costs the service that takes it — sniff, pixel check,
decode, orientation, metadata stripped, re-encode, thumbnail, and both files written to the local object
store — in CPU and in extra memory, in a process of its own (so the RSS is this work's and nothing else's).

The photo is a 12-megapixel (4000×3000) JPEG made like a phone's: smooth content plus sensor-like noise at
quality 90 (≈5 MB), with EXIF orientation 6 (held upright). A decompression bomb (a PNG claiming 10
gigapixels) is timed being refused. Prints one JSON document.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psutil
from PIL import Image
from PIL.ExifTags import Base

from minsheng.platform.errors import Problem
from minsheng.platform.images import ImageLimits, process
from minsheng.platform.storage import LocalStore

RUNS = 7


def phone_photo(width: int = 4000, height: int = 3000) -> bytes:
    base = Image.frombytes("RGB", (width // 40, height // 40), os.urandom(width // 40 * height // 40 * 3))
    base = base.resize((width, height), Image.Resampling.BICUBIC)
    noise = Image.frombytes("L", (width, height), os.urandom(width * height)).convert("RGB")
    exif = Image.Exif()
    exif[Base.Orientation] = 6
    out = io.BytesIO()
    Image.blend(base, noise, 0.12).save(out, "JPEG", quality=90, exif=exif)
    return out.getvalue()


def bomb() -> bytes:
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(bytes(1024))) + chunk(b"IEND", b"")
    )


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


class RssSampler:
    """The largest resident set seen, sampled every millisecond from a thread (Pillow decodes without the GIL)."""

    def __init__(self) -> None:
        import threading

        self.max_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            self.max_mb = max(self.max_mb, me.memory_info().rss / 2**20)
            time.sleep(0.001)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def handle(store: LocalStore, data: bytes, n: int) -> None:
    image = process(data, ImageLimits())
    asyncio.run(_store(store, image.data, image.thumb, image.content_type, n))


async def _store(store: LocalStore, display: bytes, thumb: bytes, content_type: str, n: int) -> None:
    await store.put(f"bench/photos/{n}.jpg", display, content_type)
    await store.put(f"bench/photos/{n}.thumb.jpg", thumb, content_type)


def main() -> int:
    if sys.argv[1:2] == ["--make"]:
        Path(sys.argv[2]).write_bytes(phone_photo())
        return 0
    photo_path = Path(sys.argv[1]) if len(sys.argv) > 1 else None
    if photo_path is None:
        # Made and measured in processes of their own: Linux keeps a process's peak RSS across exec, so the
        # measuring process must not descend from one that held the 36 MB of pixels while making the photo.
        import subprocess

        with tempfile.NamedTemporaryFile(suffix=".jpg", delete=False) as f:
            pass
        try:
            subprocess.run([sys.executable, "-m", "bench.photos", "--make", f.name], check=True)
            out = subprocess.run([sys.executable, "-m", "bench.photos", f.name], capture_output=True, text=True)
            if out.returncode != 0:
                print(out.stderr, file=sys.stderr)
                return out.returncode
            print(out.stdout.strip().splitlines()[-1])
            return 0
        finally:
            os.unlink(f.name)
    data = photo_path.read_bytes()
    with tempfile.TemporaryDirectory() as root:
        store = LocalStore(Path(root), b"k" * 32)
        small = io.BytesIO()
        Image.new("RGB", (64, 48)).save(small, "JPEG")
        handle(store, small.getvalue(), 999)  # warm: codecs loaded, the thread pool and event loop machinery
        rss_before = psutil.Process().memory_info().rss / 2**20
        peak_before = _peak_rss_mb()
        with RssSampler() as sampler:
            handle(store, data, 0)
        # The process's own high-water mark when this work raised it, else the sampled maximum (imports may
        # have set a higher mark before: ru_maxrss then says nothing about this work).
        peak_after = _peak_rss_mb()
        extra_rss = max(sampler.max_mb, peak_after if peak_after > peak_before else 0.0) - rss_before
        cpu_ms, wall_ms = [], []
        for n in range(1, RUNS + 1):
            c0, w0 = time.process_time(), time.perf_counter()
            handle(store, data, n)
            cpu_ms.append((time.process_time() - c0) * 1000)
            wall_ms.append((time.perf_counter() - w0) * 1000)
        refused_us = []
        the_bomb = bomb()
        rss_before_bombs = psutil.Process().memory_info().rss / 2**20
        for _ in range(50):
            t0 = time.perf_counter()
            try:
                process(the_bomb)
            except Problem as problem:
                assert problem.code == "photo_too_many_pixels"
            refused_us.append((time.perf_counter() - t0) * 1e6)
        stored = Path(root, "bench/photos/1.jpg")
        kept = Image.open(stored)
        result = {
            "photo_bytes": len(data),
            "photo_pixels": "4000x3000",
            "stored_pixels": f"{kept.width}x{kept.height}",
            "stored_bytes": stored.stat().st_size,
            "stored_exif_entries": len(kept.getexif()),
            "cpu_ms_median": round(statistics.median(cpu_ms), 1),
            "cpu_ms_max": round(max(cpu_ms), 1),
            "wall_ms_median": round(statistics.median(wall_ms), 1),
            "extra_rss_mb": round(extra_rss, 1),
            "bomb_refused_us_median": round(statistics.median(refused_us), 1),
            "bomb_rss_growth_mb": round(max(0.0, psutil.Process().memory_info().rss / 2**20 - rss_before_bombs), 1),
        }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
