"""Turn an uploaded photo into the pipeline's web JPEG, its ThumbHash and its capture time.

Pure domain: Pillow, pillow_heif and thumbhash only. The format is decided by the bytes, never by
the file name. Every way an upload can fail becomes one of the named `InvalidImage` errors.
pillow_heif is imported only when an ISO media file (HEIC, HEIF, AVIF, ...) arrives.

Pillow globals are never touched (the code runs in threads): truncated data stays an error because
LOAD_TRUNCATED_IMAGES keeps its default, and the pixel limit is ours, checked from the header,
because Image.open's own bomb check is bypassed (see `_open`).
"""

from __future__ import annotations

import base64
import io
import logging
import re
import struct
import threading
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import cast

from PIL import (
    GifImagePlugin,  # noqa: F401 - importing a plugin registers its opener in Image.OPEN
    Image,
    ImageFile,
    JpegImagePlugin,
    PngImagePlugin,  # noqa: F401
    TiffImagePlugin,  # noqa: F401
    WebPImagePlugin,  # noqa: F401
)
from thumbhash.encode import rgba_to_thumbhash

from chalicelib.domain.errors import CorruptImage, EmptyImage, ImageTooLarge, UnsupportedImageFormat

try:
    from PIL import ImageCms
except ImportError:  # Pillow built without LittleCMS: colours pass through unconverted
    ImageCms = None  # type: ignore[assignment]

logger = logging.getLogger(__name__)

# Pillow format names, in the order their signatures are tried. HEIF's opener is registered by
# pillow_heif on first use (see _open).
_DECODED_FORMATS = ("JPEG", "PNG", "WEBP", "HEIF", "TIFF", "GIF")
_EXPECTED = "JPEG, PNG, WebP, HEIC/HEIF, TIFF or GIF"

# What Pillow and pillow_heif raise for data they recognise but cannot parse; Image.open itself
# treats SyntaxError, IndexError, TypeError and struct.error as "not readable by this plugin".
_DECODE_ERRORS = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    IndexError,
    TypeError,
    KeyError,
    struct.error,
    zlib.error,
    RuntimeError,
)

# Pillow's own bomb check; its warning arrives as an exception when warnings are errors.
_PILLOW_BOMB = (Image.DecompressionBombError, Image.DecompressionBombWarning)

_ORIENTATION = 0x0112
_EXIF_IFD = 0x8769
_DATETIME_ORIGINAL = 0x9003
_OFFSET_TIME_ORIGINAL = 0x9011
_OFFSET = re.compile(r"([+-])(\d{2}):?(\d{2})")

# EXIF orientation -> the transpose that makes the stored pixels upright (as ImageOps.exif_transpose).
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_SWAPS_AXES = frozenset({5, 6, 7, 8})

# Modes that resize, alpha flattening and ImageCms all accept without an extra conversion.
_WORKING_MODES = frozenset({"L", "LA", "RGB", "RGBA", "CMYK"})
# ThumbHash keeps at most 7x7 luma coefficients, so a 32-px copy is plenty. 32, not 100 (~25 ms
# less per 24 MP photo): over 89 photos and crops the hash was byte-identical in 41; in the other
# 48 it moved by 2 bytes (median; at most 11) and the decoded placeholder by a mean 0.66/255
# (median; worst photo 11.6/255, single pixels up to 69/255), no further from the photo overall.
_THUMBHASH_MAX_SIDE = 32
# Built once and only read afterwards, so threads can share it.
_SRGB = None if ImageCms is None else ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
# LANCZOS, not BILINEAR, for the shrink that remains after a JPEG draft (under 2x). On detailed
# 24 MP photos BILINEAR blurs enough that no JPEG quality reaches sharp's SSIM at sharp's bytes;
# LANCZOS at q87 gives 2-3 % fewer bytes than sharp (mozjpeg q90) at 0.0005-0.002 higher SSIM,
# for ~60 ms more per photo (`python -m bench.preprocess --vs-sharp`).
_RESAMPLE = Image.Resampling.LANCZOS
# Matters only for non-JPEG sources over 6x too wide: a box reduce first is far cheaper and, at a
# gap of 3, indistinguishable from a single pass. After a JPEG draft it never applies.
_REDUCING_GAP = 3.0
# Progressive: 6-6.5 % fewer bytes than baseline for the same pixels; `optimize` adds nothing to
# it (libjpeg always builds Huffman tables for progressive scans). 4:2:0: 4:4:4 costs ~20 % more
# bytes for the same luma SSIM. Both named rather than left to Pillow's defaults.
_JPEG_OPTIONS = {"progressive": True, "subsampling": "4:2:0"}
# libwebp's effort (0-6). On the 24 MP bench photo's 512 px copy: method 2 encodes in ~16 ms for
# 2 % fewer bytes than the default 4 (~37 ms); 0 takes ~8 ms but 19 % more bytes; 6 ~108 ms.
_WEBP_METHOD = 2
# 2048 -> 512 px: a gap of 2 box-reduces by 2 first (~25 ms on the bench photo, ~65 ms at 3).
_GRID_REDUCING_GAP = 2.0

# Held while pillow_heif is imported and registered, so concurrent first HEIC uploads do it once.
_HEIF_LOCK = threading.Lock()

# Only to name what was uploaded in the error message.
_SIGNATURES = (
    (b"%PDF", "a PDF document"),
    (b"8BPS", "a Photoshop document"),
    (b"\x00\x00\x01\x00", "an ICO icon"),
    (b"PK\x03\x04", "a ZIP archive"),
    (b"\x1f\x8b", "gzip data"),
)


# The grid rendition's encodings: Pillow format name -> (content type, file suffix).
GRID_FORMATS = {"WEBP": ("image/webp", "webp"), "JPEG": ("image/jpeg", "jpg")}


@dataclass(frozen=True)
class Rendition:
    """A smaller copy of the photo for the gallery grid."""

    data: bytes
    width: int
    height: int
    content_type: str


@dataclass(frozen=True)
class ProcessedImage:
    """The web JPEG of a photo, its grid rendition and the facts read from it."""

    jpeg: bytes
    width: int
    height: int
    thumbhash: str  # standard base64 of the ThumbHash bytes
    captured_at: datetime | None  # EXIF DateTimeOriginal in UTC
    grid: Rendition | None = None


def process_image(
    data: bytes,
    *,
    max_width: int,
    jpeg_quality: int,
    max_pixels: int,
    grid_side: int = 0,
    grid_format: str = "WEBP",
    grid_quality: int = 75,
) -> ProcessedImage:
    """Return `data` as an upright sRGB JPEG at most `max_width` wide, and (when `grid_side` > 0)
    a grid rendition whose long side is at most `grid_side`; raise an InvalidImage subclass."""
    rgb, captured_at = _render(data, max_width=max_width, max_height=None, max_pixels=max_pixels)
    return ProcessedImage(
        jpeg=_jpeg(rgb, jpeg_quality),
        width=rgb.width,
        height=rgb.height,
        thumbhash=_thumbhash(rgb),
        captured_at=captured_at,
        grid=grid_rendition(rgb, grid_side, grid_format, grid_quality) if grid_side > 0 else None,
    )


def grid_rendition(rgb: Image.Image, side: int, fmt: str, quality: int) -> Rendition:
    """Return `rgb` fitted into `side` x `side` (never enlarged), encoded as `fmt` (GRID_FORMATS)."""
    if fmt not in GRID_FORMATS:
        raise ValueError(f"grid format must be one of {', '.join(GRID_FORMATS)}, not {fmt!r}")
    width, height = rgb.size
    scale = min(1.0, side / max(width, height))
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    # From the already downscaled copy, about a 4x reduction.
    small = rgb if size == rgb.size else rgb.resize(size, _RESAMPLE, reducing_gap=_GRID_REDUCING_GAP)
    buffer = io.BytesIO()
    if fmt == "WEBP":
        small.save(buffer, "WEBP", quality=quality, method=_WEBP_METHOD)
    else:
        small.save(buffer, "JPEG", quality=quality, **_JPEG_OPTIONS)
    return Rendition(buffer.getvalue(), size[0], size[1], GRID_FORMATS[fmt][0])


def analysis_jpeg(
    data: bytes, *, max_side: int, max_pixels: int, jpeg_quality: int = 90
) -> tuple[bytes, int, int]:
    """Return (JPEG, width, height) of `data` upright with both sides at most `max_side`.

    For sending a user's image (a selfie) to a face service: any supported format, any
    orientation; raises an InvalidImage subclass.
    """
    rgb, _ = _render(data, max_width=max_side, max_height=max_side, max_pixels=max_pixels)
    return _jpeg(rgb, jpeg_quality), rgb.width, rgb.height


def _render(
    data: bytes, *, max_width: int, max_height: int | None, max_pixels: int
) -> tuple[Image.Image, datetime | None]:
    """Return the upright 8-bit sRGB pixels of `data` within the size limits, and the capture time."""
    if not data:
        raise EmptyImage("the upload has zero bytes")
    image = _open(data, max_pixels)
    fmt = image.format or "image"

    if isinstance(image, JpegImagePlugin.JpegImageFile):
        # The draft size depends on the orientation, so JPEG EXIF is read before decoding.
        orientation, captured_at = _exif_facts(image)
        stored_target = _stored_target_size(image.size, orientation, max_width, max_height)
        if stored_target != image.size:
            # libjpeg scales by 1/2, 1/4 or 1/8 while decoding, to the smallest size >= the target.
            image.draft("RGB", stored_target)
        _load(image, fmt)
    else:
        # After decoding for the rest: PNG may keep its eXIf chunk after the pixels, and Pillow's
        # TIFF loader applies the orientation itself and then drops the tag.
        _load(image, fmt)
        orientation, captured_at = _exif_facts(image)
        stored_target = _stored_target_size(image.size, orientation, max_width, max_height)

    icc_profile = image.info.get("icc_profile")
    working = _to_working_mode(image, fmt)
    if working.size != stored_target:
        working = working.resize(stored_target, _RESAMPLE, reducing_gap=_REDUCING_GAP)
    rgb = _to_srgb(_flatten_alpha(working), icc_profile)
    if orientation in _UPRIGHT:
        # Rotating the downscaled pixels is cheaper, and the target already accounts for the swap.
        rgb = rgb.transpose(_UPRIGHT[orientation])
    # Pillow writes some info keys (e.g. a JPEG comment) into the saved file: the output carries none.
    rgb.info = {}
    return rgb, captured_at


def _jpeg(rgb: Image.Image, quality: int) -> bytes:
    buffer = io.BytesIO()
    rgb.save(buffer, "JPEG", quality=quality, **_JPEG_OPTIONS)
    return buffer.getvalue()


# --- decoding ------------------------------------------------------------------------------


def _open(data: bytes, max_pixels: int) -> ImageFile.ImageFile:
    """Return the image parsed from its header only; raise if unsupported, corrupt or too large."""
    prefix = data[:16]
    for fmt in _DECODED_FORMATS:
        if fmt == "HEIF":
            # Only an ISO media file (an `ftyp` box first: pillow_heif's own first test) can be
            # HEIF, so only one loads pillow_heif; every other cold start skips its import.
            if prefix[4:8] != b"ftyp":
                continue
            _register_heif_opener()
        factory, accept = Image.OPEN[fmt]
        verdict = accept(prefix) if accept is not None else True
        if isinstance(verdict, str):  # Pillow's way of saying "recognised, but support missing"
            raise UnsupportedImageFormat(verdict)
        if not verdict:
            continue
        if fmt == "GIF":
            _check_gif_canvas(data, max_pixels)
        try:
            # The plugin's factory, not Image.open: Image.open applies Pillow's global bomb limit
            # (a warning past 89 MP, an error past 179 MP) before our own, configurable one.
            image = factory(io.BytesIO(data), "")
        except _PILLOW_BOMB as exc:
            raise ImageTooLarge(f"{fmt} image is too large: {exc}") from exc
        except _DECODE_ERRORS as exc:
            raise CorruptImage(f"{fmt} header cannot be read: {exc}") from exc
        _check_pixels(image.size, fmt, max_pixels)
        return image
    raise UnsupportedImageFormat(f"unsupported image format: {_describe(data)}; expected {_EXPECTED}")


def _register_heif_opener() -> None:
    """Import pillow_heif and register its Pillow opener, once per process (thread-safe)."""
    with _HEIF_LOCK:
        if "HEIF" not in Image.OPEN:
            import pillow_heif

            pillow_heif.register_heif_opener()


def _check_pixels(size: tuple[int, int], fmt: str, max_pixels: int) -> None:
    """Raise ImageTooLarge when the declared size exceeds `max_pixels`."""
    width, height = size
    if width * height > max_pixels:
        raise ImageTooLarge(
            f"{fmt} image is {width}x{height} = {width * height:,} pixels, over the limit of {max_pixels:,}"
        )


def _check_gif_canvas(data: bytes, max_pixels: int) -> None:
    """Raise ImageTooLarge when GIF frame 0 would grow the canvas past our or Pillow's limit."""
    # Pillow's GIF opener grows the canvas to the first frame's extent and runs its global bomb
    # check there, inside the factory: a warning (or error) we could not catch. Refusing such a
    # canvas first keeps that check silent. Real photos never come near Pillow's 89 MP.
    canvas = _gif_canvas(data)
    if canvas is None:
        return  # unparsable: the opener reports the damage
    limit = max_pixels if Image.MAX_IMAGE_PIXELS is None else min(max_pixels, Image.MAX_IMAGE_PIXELS)
    _check_pixels(canvas, "GIF", limit)


def _gif_canvas(data: bytes) -> tuple[int, int] | None:
    """Return the canvas size Pillow derives from a GIF's screen and first frame, or None."""
    try:
        width, height, flags = struct.unpack_from("<HHB", data, 6)
        position = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
        # Walk the blocks as Pillow does: extensions, then the first image descriptor.
        while data[position] != 0x3B:  # trailer
            block = data[position]
            if block == 0x2C:
                left, top, frame_width, frame_height = struct.unpack_from("<HHHH", data, position + 1)
                return max(width, left + frame_width), max(height, top + frame_height)
            if block == 0x21:  # extension: a label, then sub-blocks up to a zero length
                position += 2
                while data[position]:
                    position += data[position] + 1
            position += 1  # Pillow skips unknown bytes one at a time too
    except (IndexError, struct.error):
        return None
    return width, height


def _load(image: ImageFile.ImageFile, fmt: str) -> None:
    """Decode the pixels; raise CorruptImage for truncated or damaged data."""
    try:
        image.load()  # type: ignore[no-untyped-call]
    except _PILLOW_BOMB as exc:
        raise ImageTooLarge(f"{fmt} image is too large: {exc}") from exc
    except _DECODE_ERRORS as exc:
        raise CorruptImage(f"{fmt} image is truncated or damaged: {exc}") from exc


def _describe(data: bytes) -> str:
    """Return a short human name for bytes that are not a supported image."""
    head = data[:16]
    for signature, label in _SIGNATURES:
        if head.startswith(signature):
            return label
    if head[:2] == b"BM" and head[6:10] == bytes(4):  # reserved zeros: not just text starting "BM"
        return "a BMP image"
    if head[4:8] == b"ftyp":
        brand = head[8:12].decode("ascii", "replace")
        return f"an ISO media file of brand {brand!r} (e.g. AVIF or video)"
    sample = data[:1024]
    if b"<svg" in sample.lower():
        return "an SVG document"
    if sample.lstrip().startswith(b"<"):
        return "an XML or HTML document"
    # One replacement character may be a multi-byte character cut at the sample's end.
    if sample and b"\x00" not in sample and sample.decode("utf-8", "replace").count("\ufffd") <= 1:
        return "text"
    return f"unrecognised bytes starting {head[:8].hex(' ')}"


# --- pixels --------------------------------------------------------------------------------


def _stored_target_size(
    size: tuple[int, int], orientation: int, max_width: int, max_height: int | None = None
) -> tuple[int, int]:
    """Return the pre-rotation size whose upright size fits the limits, never enlarging."""
    width, height = size
    upright_width, upright_height = (height, width) if orientation in _SWAPS_AXES else (width, height)
    scale = max_width / upright_width
    if max_height is not None:
        scale = min(scale, max_height / upright_height)
    if scale >= 1:
        return size
    return max(1, round(width * scale)), max(1, round(height * scale))


def _to_working_mode(image: Image.Image, fmt: str) -> Image.Image:
    """Return `image` in an 8-bit mode of _WORKING_MODES; raise UnsupportedImageFormat otherwise."""
    mode = image.mode
    if mode in _WORKING_MODES:
        return image
    if mode == "I" or mode.startswith("I;16"):
        return _sixteen_bit_to_l(image)
    if mode == "P":
        return image.convert("RGBA" if "transparency" in image.info else "RGB")
    target = {"PA": "RGBA", "RGBa": "RGBA", "La": "LA", "1": "L", "F": "L"}.get(mode, "RGB")
    try:
        return image.convert(target)
    except ValueError as exc:  # e.g. LAB TIFFs: Pillow has no direct conversion
        raise UnsupportedImageFormat(f"{fmt} colour mode {mode} is not supported") from exc


def _sixteen_bit_to_l(image: Image.Image) -> Image.Image:
    """Return 8-bit greyscale from 16-bit (or 32-bit integer) greyscale, scaling not clipping."""
    wide = image.convert("I")
    _, high = cast(tuple[int, int], wide.getextrema())  # one band: (min, max)
    if high > 255:
        # Pillow's I -> L conversion clips at 255: scale the 16-bit range down first.
        wide = wide.point(lambda value: value / 256)
    return wide.convert("L")


def _flatten_alpha(image: Image.Image) -> Image.Image:
    """Return `image` composited onto white when it has an alpha channel (JPEG has none)."""
    if image.mode not in ("LA", "RGBA"):
        return image
    base_mode = image.mode[:-1]
    background = Image.new(base_mode, image.size, "white")
    background.paste(image.convert(base_mode), mask=image.getchannel("A"))
    return background


def _to_srgb(image: Image.Image, icc_profile: bytes | None) -> Image.Image:
    """Return `image` as 8-bit RGB, converted through its ICC profile when that is not sRGB."""
    if icc_profile and ImageCms is not None:
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc_profile))
            if "srgb" not in ImageCms.getProfileDescription(source).lower():
                converted = ImageCms.profileToProfile(image, source, _SRGB, outputMode="RGB")
                if converted is not None:  # None only when converting in place, which this is not
                    return converted
        except (ImageCms.PyCMSError, OSError, ValueError, TypeError) as exc:
            # A damaged or mismatched profile: the pixels are still usable as if they were sRGB.
            logger.warning("icc profile ignored mode=%s error=%s", image.mode, exc)
    return image if image.mode == "RGB" else image.convert("RGB")


def _thumbhash(image: Image.Image) -> str:
    """Return the standard-base64 ThumbHash of `image`, computed from a copy at most 32x32."""
    width, height = image.size
    scale = min(1.0, _THUMBHASH_MAX_SIDE / max(width, height))
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small = image.resize(size, Image.Resampling.BICUBIC, reducing_gap=2.0).convert("RGBA")
    return base64.b64encode(rgba_to_thumbhash(size[0], size[1], small.tobytes())).decode("ascii")


# --- EXIF ----------------------------------------------------------------------------------


def _exif_facts(image: Image.Image) -> tuple[int, datetime | None]:
    """Return the EXIF orientation (1 when absent or invalid) and the capture time."""
    try:
        exif = image.getexif()
    except Exception:  # noqa: BLE001 - EXIF is optional: a damaged block must not sink the photo
        return 1, None
    orientation = exif.get(_ORIENTATION)
    if not isinstance(orientation, int) or orientation not in range(1, 9):
        orientation = 1
    return orientation, _captured_at(exif)


def _captured_at(exif: Image.Exif) -> datetime | None:
    """Return DateTimeOriginal as aware UTC, using OffsetTimeOriginal when valid, else None."""
    try:
        ifd = exif.get_ifd(_EXIF_IFD)  # type: ignore[no-untyped-call]
        original = _exif_text(ifd.get(_DATETIME_ORIGINAL))
        offset = _exif_text(ifd.get(_OFFSET_TIME_ORIGINAL))
    except Exception:  # noqa: BLE001 - same reason as in _exif_facts
        return None
    if original is None:
        return None
    try:
        local = datetime.strptime(original, "%Y:%m:%d %H:%M:%S")
    except ValueError:  # includes the "0000:00:00 00:00:00" cameras write when unset
        return None
    return local.replace(tzinfo=_timezone(offset)).astimezone(UTC)


def _exif_text(value: object) -> str | None:
    """Return an EXIF ASCII value as stripped text, or None when absent or not text."""
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    if not isinstance(value, str):
        return None
    return value.strip("\x00 ") or None


def _timezone(offset: str | None) -> timezone:
    """Return the zone of an EXIF offset such as "+02:00"; UTC when absent or malformed."""
    # A blank or garbled offset says no more than a missing one, and a missing one means UTC.
    match = _OFFSET.fullmatch(offset or "")
    if match is None:
        return UTC
    sign, hours, minutes = match[1], int(match[2]), int(match[3])
    if hours > 23 or minutes > 59:
        return UTC
    delta = timedelta(hours=hours, minutes=minutes)
    return timezone(-delta if sign == "-" else delta)
