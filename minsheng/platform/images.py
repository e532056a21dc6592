"""Photos as phones send them, made safe to keep and to show: the type is read from the bytes (never from the
file name or the content type the phone sent), the pixel count is checked from the header before anything is
decoded (a decompression bomb is refused without allocating its pixels), the EXIF orientation is applied, and
the image is re-encoded from its pixels alone — no EXIF (GPS), XMP, ICC profile or comment survives — at a
bounded display size, with a thumbnail.

A JPEG is decoded at a reduced scale straight from the DCT (``Image.draft``) when the display size allows it:
a 12-megapixel phone photo costs a quarter of the pixels to decode. HEIC (iPhones) is read through
``pillow-heif`` when it is installed; without it a HEIC upload is refused with a 415 that says what to send.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import io
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL import Image, ImageCms

# Pillow itself is imported with the first photo, not with the services' models: ~3 MB of idle RSS in every
# server process (issue 17: ≤ 120 MB), most of which never sees a photo.

from minsheng.platform.errors import Problem
from minsheng.platform.i18n import _t

# HEIC/HEIF from iPhones through pillow-heif, loaded with the first HEIC photo (it costs ~6 MB of RSS);
# optional, so a platform without the wheel still runs and refuses HEIC clearly.
HEIC_SUPPORTED = importlib.util.find_spec("pillow_heif") is not None


@functools.cache
def _heif_opener() -> bool:
    try:
        from pillow_heif import register_heif_opener
    except ImportError:  # pragma: no cover - depends on the installation
        return False
    register_heif_opener()
    return True


JPEG = "image/jpeg"
PNG = "image/png"
WEBP = "image/webp"
HEIC = "image/heic"
ACCEPTED = (JPEG, PNG, WEBP, HEIC)
_PILLOW_FORMATS = {JPEG: {"JPEG"}, PNG: {"PNG"}, WEBP: {"WEBP"}, HEIC: {"HEIF"}}
_HEIF_BRANDS = (b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1")


@dataclass(frozen=True)
class ImageLimits:
    max_bytes: int = 10 * 1024 * 1024
    # 50 MP: every phone camera's full resolution (48 MP main cameras), refused beyond.
    max_pixels: int = 50_000_000
    display_edge: int = 1920
    thumb_edge: int = 320
    quality: int = 82
    thumb_quality: int = 75


@dataclass(frozen=True)
class ProcessedImage:
    source_type: str  # what the bytes were (JPEG, PNG, WebP, HEIC)
    content_type: str  # what is stored: JPEG, or WebP when the image has transparency
    data: bytes
    width: int
    height: int
    thumb: bytes
    thumb_width: int
    thumb_height: int
    sha256: str  # of the upload as received (a retried upload is recognised)

    @property
    def extension(self) -> str:
        return "webp" if self.content_type == WEBP else "jpg"


def sniff(head: bytes) -> str | None:
    """The image type from its magic bytes, or None."""
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return WEBP
    if head[4:8] == b"ftyp" and head[8:12] in _HEIF_BRANDS:
        return HEIC
    return None


def not_an_image() -> Problem:
    return Problem(415, "photo_type_not_allowed", "Not an accepted image", "Send a JPEG, PNG, WebP or HEIC image.")


def too_large(limit: int) -> Problem:
    return Problem(
        413, "photo_too_large", "Photo too large", _t("At most {megabytes} MB.", megabytes=f"{limit / (1024 * 1024):g}")
    )


def process(data: bytes, limits: ImageLimits | None = None) -> ProcessedImage:
    """Check and re-encode an upload; a ``Problem`` (413/415/422) for anything that is not a usable photo."""
    limits = limits or ImageLimits()
    if len(data) > limits.max_bytes:
        raise too_large(limits.max_bytes)
    if not data:
        raise Problem(422, "photo_empty", "Empty file", "The upload has no bytes.", errors=[_field("empty")])
    kind = sniff(data[:32])
    if kind is None:
        raise not_an_image()
    if kind == HEIC and not _heif_opener():
        raise Problem(
            415,
            "photo_heic_not_supported",
            "HEIC photos are not accepted here",
            "Send the photo as JPEG: in the mini-program use wx.chooseMedia with sizeType ['compressed'], "
            "or set the iPhone camera to 'Most Compatible'.",
        )
    from PIL import Image

    try:
        image = Image.open(io.BytesIO(data), formats=sorted(_PILLOW_FORMATS[kind]))
    except Image.DecompressionBombError:  # Pillow's own check (beyond 179 MP), before ours
        raise _too_many_pixels(0, 0, limits) from None
    except (OSError, SyntaxError, ValueError):
        raise _unreadable() from None
    with image:
        width, height = image.size
        if width * height > limits.max_pixels or width <= 0 or height <= 0:
            # From the header: nothing has been decoded yet.
            raise _too_many_pixels(width, height, limits)
        orientation = _orientation(image)
        icc = image.info.get("icc_profile")
        if image.format == "JPEG" or image.format == "MPO":
            # Decode straight at 1/2, 1/4 or 1/8 scale when that still covers the display size.
            scale = min(1.0, limits.display_edge / max(width, height))
            image.draft("RGB", (max(1, int(width * scale)), max(1, int(height * scale))))
        try:
            image.seek(0)  # the first frame of an animation or of a burst (MPO)
            image.load()
        except (OSError, SyntaxError, ValueError, EOFError):
            raise _unreadable() from None
        pixels = _plain_pixels(image)
    pixels.thumbnail((limits.display_edge, limits.display_edge), Image.Resampling.BICUBIC, reducing_gap=2.0)
    pixels = _in_srgb(pixels, icc)
    transpose = _transpositions().get(orientation)
    if transpose is not None:
        pixels = pixels.transpose(transpose)
    alpha = pixels.mode == "RGBA"
    content_type = WEBP if alpha else JPEG
    display = _encode(pixels, content_type, limits.quality)
    thumb_pixels = pixels.copy()
    thumb_pixels.thumbnail((limits.thumb_edge, limits.thumb_edge), Image.Resampling.BILINEAR)
    thumb = _encode(thumb_pixels, content_type, limits.thumb_quality)
    return ProcessedImage(
        source_type=kind,
        content_type=content_type,
        data=display,
        width=pixels.width,
        height=pixels.height,
        thumb=thumb,
        thumb_width=thumb_pixels.width,
        thumb_height=thumb_pixels.height,
        sha256=hashlib.sha256(data).hexdigest(),
    )


@functools.cache
def _transpositions() -> dict[int, Image.Transpose]:
    """EXIF orientation → the transposition that makes the photo upright."""
    from PIL import Image

    return {
        2: Image.Transpose.FLIP_LEFT_RIGHT,
        3: Image.Transpose.ROTATE_180,
        4: Image.Transpose.FLIP_TOP_BOTTOM,
        5: Image.Transpose.TRANSPOSE,
        6: Image.Transpose.ROTATE_270,
        7: Image.Transpose.TRANSVERSE,
        8: Image.Transpose.ROTATE_90,
    }


@functools.cache
def _srgb() -> ImageCms.ImageCmsProfile:
    from PIL import ImageCms

    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


def _orientation(image: Image.Image) -> int:
    from PIL import ImageOps

    try:
        value = image.getexif().get(ImageOps.ExifTags.Base.Orientation, 1)
    except Exception:  # a broken EXIF block is dropped like any other
        return 1
    return value if isinstance(value, int) else 1


def _plain_pixels(image: Image.Image) -> Image.Image:
    """RGB (or RGBA when there is transparency), a copy with no metadata attached."""
    has_alpha = image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)
    target = "RGBA" if has_alpha else "RGB"
    out = image.convert(target) if image.mode != target else image.copy()
    out.info = {}
    return out


def _in_srgb(image: Image.Image, icc: bytes | None) -> Image.Image:
    """Colours as the camera meant them (Display P3 on iPhones) once the profile is dropped."""
    if not icc:
        return image
    from PIL import ImageCms

    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        converted = ImageCms.profileToProfile(image, source, _srgb(), outputMode=image.mode)
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return image
    if converted is None:
        return image
    converted.info = {}
    return converted


def _encode(image: Image.Image, content_type: str, quality: int) -> bytes:
    buffer = io.BytesIO()
    image.info = {}
    if content_type == WEBP:
        image.save(buffer, "WEBP", quality=quality, method=4, exif=b"", icc_profile=b"", xmp=b"")
    else:
        image.save(buffer, "JPEG", quality=quality, optimize=False, exif=b"", icc_profile=None)
    return buffer.getvalue()


def _too_many_pixels(width: int, height: int, limits: ImageLimits) -> Problem:
    most = f"{limits.max_pixels / 1_000_000:g}"
    detail = (
        _t("{width}×{height} pixels; at most {megapixels} megapixels.", width=width, height=height, megapixels=most)
        if width and height
        else _t("At most {megapixels} megapixels.", megapixels=most)
    )
    return Problem(413, "photo_too_many_pixels", "Photo has too many pixels", detail)


def _unreadable() -> Problem:
    return Problem(
        422, "photo_unreadable", "The photo cannot be read", "The file is damaged or cut short; take or pick it again."
    )


def _field(message: str) -> dict[str, str]:
    return {"field": "file", "message": message, "type": "value_error"}
