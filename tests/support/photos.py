"""Photos as phones make them, for the upload tests: a JPEG with GPS and orientation EXIF, a bomb, noise."""

from __future__ import annotations

import io
import os
import struct
import zlib

from PIL import Image
from PIL.ExifTags import GPS, IFD, Base


def phone_jpeg(width: int = 400, height: int = 300, orientation: int = 1, gps: bool = True) -> bytes:
    """A JPEG with a red left half, camera EXIF (make, model, orientation) and a GPS position."""
    image = Image.new("RGB", (width, height), "blue")
    image.paste((255, 0, 0), (0, 0, width // 2, height))
    exif = Image.Exif()
    exif[Base.Make] = "Apple"
    exif[Base.Model] = "iPhone 15"
    exif[Base.Orientation] = orientation
    if gps:
        exif.get_ifd(IFD.GPSInfo).update(
            {
                GPS.GPSLatitudeRef: "N",
                GPS.GPSLatitude: (40.0, 1.0, 12.5),
                GPS.GPSLongitudeRef: "E",
                GPS.GPSLongitude: (112.0, 42.0, 3.25),
            }
        )
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90, exif=exif, comment=b"taken at home", icc_profile=_srgb_icc())
    return out.getvalue()


def _srgb_icc() -> bytes:
    from PIL import ImageCms

    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def noisy_jpeg(width: int = 4000, height: int = 3000, quality: int = 90) -> bytes:
    """A phone-sized photo: smooth shapes plus sensor-like noise, so it compresses like a real one (~5 MB)."""
    base = Image.frombytes("RGB", (width // 40, height // 40), os.urandom(width // 40 * height // 40 * 3))
    base = base.resize((width, height), Image.Resampling.BICUBIC)
    noise = Image.frombytes("L", (width, height), os.urandom(width * height)).convert("RGB")
    image = Image.blend(base, noise, 0.12)
    exif = Image.Exif()
    exif[Base.Orientation] = 6
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality, exif=exif)
    return out.getvalue()


def png(width: int = 8, height: int = 8, alpha: bool = False) -> bytes:
    out = io.BytesIO()
    Image.new("RGBA" if alpha else "RGB", (width, height), (0, 128, 0, 128) if alpha else (0, 128, 0)).save(out, "PNG")
    return out.getvalue()


def png_bomb(width: int = 100_000, height: int = 100_000) -> bytes:
    """A PNG whose header claims ``width``×``height`` pixels (10 gigapixels: 30 GB decoded) in a few bytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    rows = zlib.compress(b"\x00" * 1024)  # a start; the decoder would expand it to the claimed size
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")
