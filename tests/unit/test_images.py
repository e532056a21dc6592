"""Photo processing (minsheng.platform.images): what a phone sends comes out without metadata, upright, bounded."""

from __future__ import annotations

import io
import os

import pytest
from PIL import Image, ImageFile

from minsheng.platform.errors import Problem
from minsheng.platform.images import HEIC_SUPPORTED, ImageLimits, process, sniff
from tests.support.photos import phone_jpeg, png, png_bomb


def _opened(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data))


def test_gps_exif_comment_and_icc_are_gone() -> None:
    upload = phone_jpeg()
    assert _opened(upload).getexif().get_ifd(0x8825)  # the upload does carry a GPS position
    result = process(upload)
    for data in (result.data, result.thumb):
        out = _opened(data)
        assert out.format == "JPEG" and out.mode == "RGB"
        assert len(out.getexif()) == 0
        assert not {"exif", "icc_profile", "comment", "xmp", "XML:com.adobe.xmp"} & set(out.info)
        assert b"Exif" not in data and b"iPhone" not in data and b"taken at home" not in data
    assert result.source_type == "image/jpeg" and (result.width, result.height) == (400, 300)


@pytest.mark.parametrize(("orientation", "size", "red_at"), [(1, (400, 300), (10, 150)), (6, (300, 400), (150, 10))])
def test_orientation_is_applied(orientation: int, size: tuple[int, int], red_at: tuple[int, int]) -> None:
    """Orientation 6 (the phone held upright): the stored image is turned so the red half is on top."""
    result = process(phone_jpeg(orientation=orientation))
    out = _opened(result.data)
    assert out.size == size
    r, _, b = out.getpixel(red_at)  # type: ignore[misc]
    assert r > 200 and b < 60


def test_display_size_and_thumbnail_are_bounded() -> None:
    result = process(phone_jpeg(4000, 3000), ImageLimits(display_edge=1920, thumb_edge=320))
    assert (result.width, result.height) == (1920, 1440)
    assert (result.thumb_width, result.thumb_height) == (320, 240)
    assert _opened(result.thumb).size == (320, 240)


def test_a_png_named_jpg_is_read_as_the_png_it_is() -> None:
    assert sniff(png()) == "image/png"
    result = process(png())
    assert result.source_type == "image/png" and result.content_type == "image/jpeg"
    transparent = process(png(alpha=True))
    assert transparent.content_type == "image/webp" and _opened(transparent.data).mode == "RGBA"


def test_random_bytes_and_html_are_415_and_a_cut_jpeg_422() -> None:
    for data in (os.urandom(4096), b"<html><script>alert(1)</script></html>"):
        with pytest.raises(Problem) as refused:
            process(data)
        assert (refused.value.status, refused.value.code) == (415, "photo_type_not_allowed")
    with pytest.raises(Problem) as cut:
        process(phone_jpeg()[:600])
    assert (cut.value.status, cut.value.code) == (422, "photo_unreadable")


def test_too_many_bytes_is_413() -> None:
    with pytest.raises(Problem) as refused:
        process(b"\xff\xd8\xff" + b"\0" * (20 * 1024 * 1024))
    assert (refused.value.status, refused.value.code) == (413, "photo_too_large")


def test_a_decompression_bomb_is_refused_before_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    decoded: list[object] = []
    original = ImageFile.ImageFile.load

    def load(self: ImageFile.ImageFile) -> object:
        decoded.append(self)
        return original(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", load)
    for bomb in (png_bomb(), png_bomb(9000, 9000)):  # beyond Pillow's own limit, and beyond only ours (81 MP)
        with pytest.raises(Problem) as refused:
            process(bomb)
        assert (refused.value.status, refused.value.code) == (413, "photo_too_many_pixels")
    assert decoded == []
    process(png())  # the spy does see a decode
    assert decoded


@pytest.mark.skipif(not HEIC_SUPPORTED, reason="pillow-heif not installed")
def test_heic_from_an_iphone_becomes_jpeg() -> None:
    import pillow_heif

    pillow_heif.register_heif_opener()  # to write one here; the service loads it with the first HEIC upload
    out = io.BytesIO()
    try:
        Image.new("RGB", (64, 48), "red").save(out, "HEIF", quality=80)
    except (KeyError, OSError, ValueError) as exc:  # a libheif without an HEVC encoder
        pytest.skip(f"cannot write HEIC here: {exc}")
    assert sniff(out.getvalue()) == "image/heic", pillow_heif.__version__
    result = process(out.getvalue())
    assert result.source_type == "image/heic" and result.content_type == "image/jpeg"
    assert _opened(result.data).size == (64, 48)


def test_pillow_is_loaded_with_the_first_photo_not_with_the_services() -> None:
    """Pillow is ~3 MB of every server's idle RSS (issue 17: ≤ 120 MB): importing the services must not load it."""
    import subprocess
    import sys

    code = (
        "import sys; import minsheng.platform.photos, services.points.models, services.issues.photos; "
        "print('PIL' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
