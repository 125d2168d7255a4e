"""Specification of chalicelib.domain.imaging: every image is generated here, in memory."""

from __future__ import annotations

import base64
import io
import struct
import subprocess
import sys
import textwrap
import warnings
import zlib
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pillow_heif
import pytest
from PIL import Image, ImageCms, ImageFile, ImageStat
from thumbhash import thumbhash_to_image
from thumbhash.encode import rgba_to_thumbhash

from chalicelib.domain import imaging
from chalicelib.domain.errors import CorruptImage, EmptyImage, ImageTooLarge, UnsupportedImageFormat
from chalicelib.domain.imaging import ProcessedImage, process_image

PROJECT_DIR = Path(__file__).resolve().parents[1]
RED = (255, 0, 0)
WHITE = (255, 255, 255)
CANVAS = (60, 40)  # wider than tall, so a wrong quarter turn shows in the size

# The transpose that turns an upright image into what a camera stores with each orientation
# (the inverse of the one a viewer applies).
STORED_AS = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


# --- helpers ---------------------------------------------------------------------------------


def encode(image: Image.Image, fmt: str, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def heic(image: Image.Image, **params) -> bytes:
    """Return `image` as HEIC, lossless (quality -1, 4:4:4) unless `params` say otherwise."""
    # The app registers pillow_heif's opener only when it meets a HEIC; writing one here needs it now.
    pillow_heif.register_heif_opener()
    return encode(image, "HEIF", **{"quality": -1, "chroma": 444, **params})


def exif_bytes(
    orientation: int | None = None, original: str | None = None, offset: str | None = None
) -> bytes:
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    exif_ifd = {}
    if original is not None:
        exif_ifd[0x9003] = original
    if offset is not None:
        exif_ifd[0x9011] = offset
    if exif_ifd:
        exif[0x8769] = exif_ifd
    return exif.tobytes()


def process(data: bytes, *, max_width: int = 2048, max_pixels: int = 50_000_000) -> ProcessedImage:
    return process_image(data, max_width=max_width, jpeg_quality=90, max_pixels=max_pixels)


def decoded(result: ProcessedImage) -> Image.Image:
    image = Image.open(io.BytesIO(result.jpeg))
    assert image.format == "JPEG"
    assert image.mode == "RGB"
    assert image.size == (result.width, result.height)
    return image


def upright_canvas(size: tuple[int, int] = CANVAS) -> Image.Image:
    image = Image.new("RGB", size, WHITE)
    width, height = size
    image.paste(RED, (0, 0, width // 3, height * 3 // 10))
    return image


def stored_with_orientation(upright: Image.Image, orientation: int) -> Image.Image:
    method = STORED_AS[orientation]
    return upright if method is None else upright.transpose(method)


def close_to(pixel: tuple[int, ...], expected: tuple[int, ...], tolerance: int = 40) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(pixel, expected, strict=True))


def assert_red_block_top_left(image: Image.Image) -> None:
    width, height = image.size
    assert close_to(image.getpixel((width // 10, height // 10)), RED)
    for corner in [(width - 3, 2), (2, height - 3), (width - 3, height - 3)]:
        assert close_to(image.getpixel(corner), WHITE), corner


def jpeg_markers(data: bytes) -> list[int]:
    """Return the marker bytes of a JPEG's segments up to the start of scan."""
    markers, position = [], 2
    while position < len(data):
        marker = data[position + 1]
        markers.append(marker)
        if marker == 0xDA:  # start of scan: entropy-coded data follows
            break
        (length,) = struct.unpack(">H", data[position + 2 : position + 4])
        position += 2 + length
    return markers


def png_with_size(width: int, height: int) -> bytes:
    """Return a tiny real PNG whose IHDR (with a correct CRC) declares `width` x `height`."""
    data = bytearray(encode(Image.new("L", (8, 8)), "PNG"))
    # Signature (8) + length (4) + b"IHDR" (4), then width, height and the rest of IHDR.
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def jpeg_with_size(width: int, height: int) -> bytes:
    """Return a tiny real JPEG whose baseline frame header declares `width` x `height`."""
    data = bytearray(encode(Image.new("RGB", (16, 16), RED), "JPEG"))
    frame = data.index(b"\xff\xc0")
    data[frame + 5 : frame + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def swapped_primaries_profile() -> bytes:
    """Return an RGB ICC profile, not sRGB, whose red and blue primaries are sRGB's swapped."""
    profile = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    (count,) = struct.unpack(">I", profile[128:132])
    tags = {}
    for index in range(count):
        signature, offset, size = struct.unpack(">4sII", profile[132 + 12 * index : 144 + 12 * index])
        tags[signature] = (offset, size)
    (red, size), (blue, _) = tags[b"rXYZ"], tags[b"bXYZ"]
    profile[red : red + size], profile[blue : blue + size] = (
        profile[blue : blue + size],
        profile[red : red + size],
    )
    return bytes(profile).replace("sRGB".encode("utf-16-be"), "swap".encode("utf-16-be"))


# --- orientation -----------------------------------------------------------------------------


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_ends_upright(orientation: int) -> None:
    stored = stored_with_orientation(upright_canvas(), orientation)
    data = encode(stored, "JPEG", quality=95, exif=exif_bytes(orientation))

    image = decoded(process(data))

    assert image.size == CANVAS
    assert_red_block_top_left(image)


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "TIFF"])
def test_orientation_6_ends_upright_in_other_formats(fmt: str) -> None:
    stored = stored_with_orientation(upright_canvas(), 6)
    data = encode(stored, fmt, exif=exif_bytes(6))

    image = decoded(process(data))

    assert image.size == CANVAS
    assert_red_block_top_left(image)


@pytest.mark.parametrize("orientation", [6, 8])
def test_width_limit_applies_to_the_upright_width_of_a_rotated_photo(orientation: int) -> None:
    stored = stored_with_orientation(upright_canvas((1200, 800)), orientation)
    assert stored.size == (800, 1200)
    data = encode(stored, "JPEG", quality=95, exif=exif_bytes(orientation))

    image = decoded(process(data, max_width=300))

    assert image.size == (300, 200)
    assert_red_block_top_left(image)


@pytest.mark.parametrize("orientation", [0, 9, 255])
def test_invalid_orientation_is_ignored(orientation: int) -> None:
    data = encode(upright_canvas(), "JPEG", quality=95, exif=exif_bytes(orientation))

    image = decoded(process(data))

    assert image.size == CANVAS
    assert_red_block_top_left(image)


# --- formats and colour ----------------------------------------------------------------------


def test_cmyk_jpeg_becomes_rgb() -> None:
    cmyk = Image.new("CMYK", (64, 48), (0, 255, 255, 0))  # red in ink
    data = encode(cmyk, "JPEG", quality=95)
    assert Image.open(io.BytesIO(data)).info.get("adobe")  # Adobe marker: inverted CMYK on disk

    image = decoded(process(data))

    assert close_to(image.getpixel((32, 24)), RED)


def test_16_bit_png_is_scaled_to_8_bit_not_clipped() -> None:
    sixteen = Image.new("I;16", (64, 48), 0x4000)
    # An image, not an int: Pillow 10.4 fills I;16 with 0 when pasting an int above 0x7FFF.
    sixteen.paste(Image.new("I;16", (32, 48), 0xC000), (32, 0))
    data = encode(sixteen, "PNG")

    image = decoded(process(data))

    assert close_to(image.getpixel((8, 24)), (64, 64, 64), tolerance=6)
    assert close_to(image.getpixel((56, 24)), (192, 192, 192), tolerance=6)


def test_png_alpha_is_composited_onto_white() -> None:
    rgba = Image.new("RGBA", (64, 48), (0, 0, 0, 0))
    rgba.paste((0, 0, 255, 255), (32, 0, 64, 48))
    data = encode(rgba, "PNG")

    image = decoded(process(data))

    assert close_to(image.getpixel((8, 24)), WHITE, tolerance=8)
    assert close_to(image.getpixel((56, 24)), (0, 0, 255))


def test_greyscale_with_alpha_is_composited_onto_white() -> None:
    grey = Image.new("LA", (64, 48), (0, 0))
    grey.paste((0, 255), (32, 0, 64, 48))
    data = encode(grey, "PNG")

    image = decoded(process(data))

    assert close_to(image.getpixel((8, 24)), WHITE, tolerance=8)
    assert close_to(image.getpixel((56, 24)), (0, 0, 0), tolerance=8)


def test_palette_gif_becomes_rgb_from_its_first_frame() -> None:
    first = Image.new("RGB", (64, 48), RED)
    first.paste((0, 255, 0), (32, 0, 64, 48))
    second = Image.new("RGB", (64, 48), (0, 0, 255))
    data = encode(first.convert("P"), "GIF", save_all=True, append_images=[second.convert("P")])
    assert Image.open(io.BytesIO(data)).n_frames == 2

    image = decoded(process(data))

    assert close_to(image.getpixel((8, 24)), RED)
    assert close_to(image.getpixel((56, 24)), (0, 255, 0))


def test_palette_transparency_is_composited_onto_white() -> None:
    palette = Image.new("P", (64, 48), 0)
    palette.putpalette([0, 0, 0, 255, 0, 0])
    palette.paste(1, (32, 0, 64, 48))
    data = encode(palette, "GIF", transparency=0)

    image = decoded(process(data))

    assert close_to(image.getpixel((8, 24)), WHITE, tolerance=8)
    assert close_to(image.getpixel((56, 24)), RED)


def test_webp_is_decoded_by_content_whatever_its_name() -> None:
    # The uploader called this file photo.jpg; only the bytes count.
    data = encode(upright_canvas(), "WEBP", lossless=True)

    image = decoded(process(data))

    assert image.size == CANVAS
    assert_red_block_top_left(image)


def test_heic_is_decoded() -> None:
    # Lossless (quality -1, 4:4:4) keeps x265's run-to-run variation out of the pixel checks.
    data = heic(upright_canvas((64, 48)))
    assert data[4:12] == b"ftypheic"

    image = decoded(process(data))

    assert image.size == (64, 48)
    assert_red_block_top_left(image)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_heic_orientation_is_applied_once(orientation: int) -> None:
    # pillow_heif stores the orientation as HEIF transforms, which libheif applies on decoding.
    stored = stored_with_orientation(upright_canvas((64, 48)), orientation)
    data = heic(stored, exif=exif_bytes(orientation))

    image = decoded(process(data))

    assert image.size == (64, 48)
    assert_red_block_top_left(image)


def test_heic_is_decoded_when_no_heif_opener_is_registered_yet(monkeypatch: pytest.MonkeyPatch) -> None:
    data = heic(upright_canvas((64, 48)))
    monkeypatch.delitem(Image.OPEN, "HEIF")  # as in a fresh process: the app registers it on demand

    image = decoded(process(data))

    assert "HEIF" in Image.OPEN
    assert image.size == (64, 48)
    assert_red_block_top_left(image)


def test_concurrent_first_heic_uploads_all_decode(monkeypatch: pytest.MonkeyPatch) -> None:
    uploads = [
        heic(stored_with_orientation(upright_canvas((64, 48)), o), exif=exif_bytes(o)) for o in (1, 6)
    ] * 4
    monkeypatch.delitem(Image.OPEN, "HEIF")

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(process, uploads))

    for result in results:
        assert (result.width, result.height) == (64, 48)
        assert_red_block_top_left(decoded(result))


def test_pillow_heif_is_imported_only_when_an_iso_media_file_arrives(tmp_path: Path) -> None:
    uploads = {
        "jpeg": encode(upright_canvas(), "JPEG"),
        "png": encode(upright_canvas(), "PNG"),
        "text": b"Bib 1234 finished in 3:12:45\n",
        "heic": heic(upright_canvas((64, 48))),
    }
    for name, data in uploads.items():
        (tmp_path / name).write_bytes(data)
    # A fresh interpreter: in this one the test helpers have imported pillow_heif already.
    script = textwrap.dedent(
        """
        import sys
        from pathlib import Path
        from chalicelib.domain.imaging import process_image
        from chalicelib.domain.errors import InvalidImage
        for path in sys.argv[1:]:
            try:
                result = process_image(Path(path).read_bytes(), max_width=2048, jpeg_quality=87, max_pixels=10**6)
                outcome = f"{result.width}x{result.height}"
            except InvalidImage as exc:
                outcome = type(exc).__name__
            print(Path(path).name, outcome, "pillow_heif" in sys.modules)
        """
    )
    paths = [str(tmp_path / name) for name in uploads]

    child = subprocess.run(
        [sys.executable, "-c", script, *paths], cwd=PROJECT_DIR, capture_output=True, text=True, check=True
    )

    assert child.stdout.splitlines() == [
        "jpeg 60x40 False",
        "png 60x40 False",
        "text UnsupportedImageFormat False",
        "heic 64x48 True",
    ]


def test_tiff_is_decoded() -> None:
    data = encode(upright_canvas(), "TIFF", compression="tiff_lzw")

    image = decoded(process(data))

    assert image.size == CANVAS
    assert_red_block_top_left(image)


def test_greyscale_jpeg_becomes_rgb() -> None:
    data = encode(Image.new("L", (64, 48), 100), "JPEG")

    image = decoded(process(data))

    assert close_to(image.getpixel((32, 24)), (100, 100, 100), tolerance=4)


def test_non_srgb_icc_profile_is_converted_to_srgb() -> None:
    red = Image.new("RGB", (64, 48), RED)
    data = encode(red, "JPEG", quality=95, icc_profile=swapped_primaries_profile())

    image = decoded(process(data))

    # In the embedded profile, the first channel is sRGB's blue primary.
    assert close_to(image.getpixel((32, 24)), (0, 0, 255))


def test_srgb_icc_profile_leaves_colours_alone() -> None:
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    data = encode(Image.new("RGB", (64, 48), RED), "JPEG", quality=95, icc_profile=srgb)

    assert close_to(decoded(process(data)).getpixel((32, 24)), RED)


def test_damaged_icc_profile_is_ignored() -> None:
    data = encode(Image.new("RGB", (64, 48), RED), "JPEG", quality=95, icc_profile=b"not a profile")

    assert close_to(decoded(process(data)).getpixel((32, 24)), RED)


def test_without_imagecms_colours_pass_through(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(imaging, "ImageCms", None)
    red = Image.new("RGB", (64, 48), RED)
    data = encode(red, "JPEG", quality=95, icc_profile=swapped_primaries_profile())

    assert close_to(decoded(process(data)).getpixel((32, 24)), RED)


# --- bad input -------------------------------------------------------------------------------


def test_zero_bytes_are_empty() -> None:
    with pytest.raises(EmptyImage, match="zero bytes"):
        process(b"")


def test_truncated_jpeg_is_corrupt() -> None:
    data = encode(Image.effect_noise((256, 256), 50).convert("RGB"), "JPEG")

    with pytest.raises(CorruptImage, match="JPEG image is truncated or damaged"):
        process(data[: len(data) // 2])


def test_truncated_png_is_corrupt() -> None:
    data = encode(Image.effect_noise((256, 256), 50), "PNG")

    with pytest.raises(CorruptImage, match="PNG"):
        process(data[: len(data) // 2])


def test_jpeg_signature_without_a_header_is_corrupt() -> None:
    with pytest.raises(CorruptImage, match="JPEG header cannot be read"):
        process(b"\xff\xd8\xff\xe0 and then nothing useful")


@pytest.mark.parametrize(
    ("data", "named"),
    [
        (b"Bib 1234 finished in 3:12:45\nBib 0042 did not start\n", "text"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n", "a PDF document"),
        (b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"/>', "an SVG document"),
        (encode(Image.new("RGB", (8, 8)), "BMP"), "a BMP image"),
        (b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00", "an ISO media file of brand 'avif'"),
        (bytes(range(256)), "unrecognised bytes starting 00 01 02"),
    ],
    ids=["text", "pdf", "svg", "bmp", "avif", "unknown"],
)
def test_non_images_are_unsupported_formats(data: bytes, named: str) -> None:
    with pytest.raises(UnsupportedImageFormat, match=f"unsupported image format: {named}"):
        process(data)


@pytest.mark.parametrize(("craft", "fmt"), [(png_with_size, "PNG"), (jpeg_with_size, "JPEG")])
def test_30000_by_30000_header_is_too_large_before_decoding(craft, fmt: str) -> None:
    data = craft(30_000, 30_000)  # a few hundred bytes: nothing of 900 M pixels is allocated

    expected = f"{fmt} image is 30000x30000 = 900,000,000 pixels, over the limit of 120,000,000"
    with pytest.raises(ImageTooLarge, match=expected):
        process(data, max_pixels=120_000_000)


@pytest.mark.parametrize(("width", "height"), [(12_000, 9_000), (15_000, 12_000)])
def test_pixel_limit_is_ours_not_pillows(width: int, height: int) -> None:
    # 108 MP passes Pillow's warning threshold (89 MP), 180 MP its error threshold (179 MP); both
    # are within our limit. libjpeg fills the rows the file lacks with grey, as browsers do.
    data = jpeg_with_size(width, height)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = process(data, max_width=100, max_pixels=200_000_000)

    assert (result.width, result.height) == (100, round(100 * height / width))


def gif_with_first_frame(width: int, height: int) -> bytes:
    """Return a tiny real GIF with an 8x8 screen whose first frame declares `width` x `height`."""
    data = bytearray(encode(Image.new("P", (8, 8)), "GIF"))
    descriptor = data.index(b",\x00\x00\x00\x00")
    data[descriptor + 5 : descriptor + 9] = struct.pack("<HH", width, height)
    return bytes(data)


def test_gif_frame_larger_than_its_screen_is_too_large_before_pillow_warns() -> None:
    # 95 MP: within our limit, but past the 89 MP at which Pillow's GIF opener would warn.
    data = gif_with_first_frame(10_000, 9_500)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ImageTooLarge, match="GIF image is 10000x9500 = 95,000,000 pixels"):
            process(data, max_pixels=120_000_000)


def test_pixel_limit_counts_declared_pixels() -> None:
    data = png_with_size(1000, 1001)

    with pytest.raises(ImageTooLarge, match="1,001,000 pixels"):
        process(data, max_pixels=1_000_000)


# --- size and output -------------------------------------------------------------------------


def test_jpeg_wider_than_max_width_is_capped_keeping_aspect() -> None:
    data = encode(upright_canvas((3000, 2000)), "JPEG", quality=90)

    image = decoded(process(data, max_width=1000))

    assert image.size == (1000, 667)
    assert_red_block_top_left(image)


def test_png_wider_than_max_width_is_capped_keeping_aspect() -> None:
    data = encode(upright_canvas((1500, 500)), "PNG")

    image = decoded(process(data, max_width=600))

    assert image.size == (600, 200)
    assert_red_block_top_left(image)


def test_small_image_is_never_enlarged() -> None:
    data = encode(upright_canvas((300, 200)), "PNG")

    assert decoded(process(data, max_width=2048)).size == (300, 200)


def test_output_carries_no_exif_or_other_metadata() -> None:
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    data = encode(
        upright_canvas(),
        "JPEG",
        exif=exif_bytes(1, "2024:05:12 09:31:07", "+02:00"),
        icc_profile=srgb,
        comment=b"shot by someone",
    )

    result = process(data)

    assert not decoded(result).getexif()
    markers = jpeg_markers(result.jpeg)
    assert 0xE1 not in markers  # APP1: EXIF or XMP
    assert 0xE2 not in markers  # APP2: ICC profile
    assert 0xFE not in markers  # COM: comment


def test_output_is_a_progressive_jpeg_at_the_requested_quality() -> None:
    data = encode(upright_canvas(), "PNG")

    result = process(data)  # quality 90

    assert 0xC2 in jpeg_markers(result.jpeg)  # SOF2: progressive DCT
    assert decoded(result).info.get("progressive") == 1
    reference = Image.open(io.BytesIO(encode(upright_canvas(), "JPEG", quality=90)))
    assert decoded(result).quantization == reference.quantization


# --- ThumbHash -------------------------------------------------------------------------------


def test_thumbhash_is_standard_base64_of_a_plausible_hash() -> None:
    data = encode(Image.new("RGB", (300, 200), RED), "JPEG")

    thumbhash = process(data).thumbhash

    raw = base64.b64decode(thumbhash, validate=True)
    assert 5 <= len(raw) <= 25
    preview = thumbhash_to_image(raw).convert("RGB")
    assert preview.width > preview.height  # the hash remembers a landscape aspect
    assert close_to(preview.getpixel((preview.width // 2, preview.height // 2)), RED, tolerance=60)


def photo_like(size: tuple[int, int]) -> Image.Image:
    """Return an image with a sky, a ground, a red shirt and grain: enough structure for a hash."""
    width, height = size
    image = Image.new("RGB", size, (90, 150, 220))
    image.paste((70, 120, 40), (0, height * 3 // 5, width, height))
    image.paste(RED, (width // 3, height // 3, width // 2, height * 4 // 5))
    grain = Image.effect_noise(size, 20).convert("RGB")
    return Image.blend(image, grain, 0.15)


def hash_at(image: Image.Image, max_side: int) -> bytes:
    """Return the ThumbHash of `image` shrunk to at most `max_side` (the app's old side was 100)."""
    scale = max_side / max(image.size)
    small = image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.BICUBIC)
    return rgba_to_thumbhash(small.width, small.height, small.convert("RGBA").tobytes())


def aspect(image: Image.Image) -> float:
    return image.width / image.height


@pytest.mark.parametrize("size", [(600, 400), (400, 600), (640, 360), (500, 500)])
def test_thumbhash_from_a_32_px_copy_decodes_to_the_photos_shape_and_colours(size: tuple[int, int]) -> None:
    photo = photo_like(size)

    raw = base64.b64decode(process(encode(photo, "PNG")).thumbhash)

    preview = thumbhash_to_image(raw, saturation_boost=1.0).convert("RGB")
    reference = thumbhash_to_image(hash_at(photo, 100), saturation_boost=1.0).convert("RGB")
    # ThumbHash stores the aspect ratio only as its coefficient grid (e.g. 7x5 for 3:2).
    assert preview.size == reference.size
    assert abs(aspect(preview) / aspect(photo) - 1) < 0.1
    average = tuple(round(v) for v in ImageStat.Stat(preview).mean)
    assert close_to(average, tuple(round(v) for v in ImageStat.Stat(photo).mean), tolerance=8)
    assert close_to(average, tuple(round(v) for v in ImageStat.Stat(reference).mean), tolerance=3)
    # Still a picture of the scene: blue above, green below.
    top, bottom = preview.getpixel((2, 1)), preview.getpixel((2, preview.height - 2))
    assert top[2] > top[1] > top[0]
    assert bottom[1] > bottom[2] and bottom[1] > bottom[0]


def test_thumbhash_sees_the_upright_image() -> None:
    stored = stored_with_orientation(upright_canvas((300, 200)), 6)
    data = encode(stored, "JPEG", exif=exif_bytes(6))

    preview = thumbhash_to_image(process(data).thumbhash)

    assert preview.width > preview.height


# --- capture time ----------------------------------------------------------------------------


def with_exif(**fields: str) -> bytes:
    return encode(Image.new("RGB", (32, 24), WHITE), "JPEG", exif=exif_bytes(1, **fields))


def test_captured_at_without_offset_is_taken_as_utc() -> None:
    result = process(with_exif(original="2024:05:12 09:31:07"))

    assert result.captured_at == datetime(2024, 5, 12, 9, 31, 7, tzinfo=UTC)
    assert result.captured_at.utcoffset().total_seconds() == 0


@pytest.mark.parametrize(
    ("offset", "utc_time"),
    [("+02:00", (7, 31, 7)), ("-05:30", (15, 1, 7)), ("+00:00", (9, 31, 7))],
)
def test_captured_at_honours_offset_time_original(offset: str, utc_time: tuple[int, int, int]) -> None:
    result = process(with_exif(original="2024:05:12 09:31:07", offset=offset))

    assert result.captured_at == datetime(2024, 5, 12, *utc_time, tzinfo=UTC)
    assert result.captured_at.tzinfo == UTC


@pytest.mark.parametrize("offset", ["   :  ", "Europe/Paris", "+25:00", "+02:75"])
def test_malformed_offset_is_ignored_and_time_taken_as_utc(offset: str) -> None:
    result = process(with_exif(original="2024:05:12 09:31:07", offset=offset))

    assert result.captured_at == datetime(2024, 5, 12, 9, 31, 7, tzinfo=UTC)


def test_captured_at_is_none_without_exif() -> None:
    assert process(encode(Image.new("RGB", (32, 24)), "JPEG")).captured_at is None


def test_captured_at_is_none_without_date_time_original() -> None:
    assert process(encode(Image.new("RGB", (32, 24)), "JPEG", exif=exif_bytes(1))).captured_at is None


@pytest.mark.parametrize("original", ["0000:00:00 00:00:00", "2024:13:45 25:61:00", "yesterday", "    "])
def test_malformed_date_time_original_gives_none(original: str) -> None:
    assert process(with_exif(original=original)).captured_at is None


def test_damaged_exif_block_gives_none_and_still_decodes() -> None:
    data = encode(upright_canvas(), "JPEG", exif=b"Exif\x00\x00MM\x00\x2a\xff\xff\xff\xffgarbage")

    with pytest.warns(UserWarning, match="Corrupt EXIF"):  # Pillow's own, harmless
        result = process(data)

    assert result.captured_at is None
    assert_red_block_top_left(decoded(result))


def test_captured_at_is_read_from_png_exif() -> None:
    data = encode(Image.new("RGB", (32, 24)), "PNG", exif=exif_bytes(1, "2024:05:12 09:31:07", "+02:00"))

    assert process(data).captured_at == datetime(2024, 5, 12, 7, 31, 7, tzinfo=UTC)


# --- process safety --------------------------------------------------------------------------


def test_pillow_globals_are_left_at_their_defaults() -> None:
    default_limit = Image.MAX_IMAGE_PIXELS

    process(encode(upright_canvas(), "PNG"))

    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    assert Image.MAX_IMAGE_PIXELS == default_limit == (1024 * 1024 * 1024 // 4 // 3)


def test_concurrent_calls_give_the_same_results_as_sequential_ones() -> None:
    uploads = [
        encode(stored_with_orientation(upright_canvas((300, 200)), 6), "JPEG", exif=exif_bytes(6)),
        encode(upright_canvas((300, 200)), "PNG"),
        encode(upright_canvas((300, 200)), "WEBP", lossless=True),
        encode(upright_canvas((300, 200)), "TIFF"),
    ] * 2
    sequential = [process(data, max_width=48) for data in uploads]

    with ThreadPoolExecutor(max_workers=8) as pool:
        concurrent = list(pool.map(lambda data: process(data, max_width=48), uploads))

    assert concurrent == sequential


def test_grid_rendition_fits_the_long_side_and_never_enlarges():
    wide = Image.new("RGB", (2048, 1365), (10, 120, 200))
    webp = imaging.grid_rendition(wide, 512, "WEBP", 75)
    assert (webp.width, webp.height, webp.content_type) == (512, 341, "image/webp")
    assert Image.open(io.BytesIO(webp.data)).size == (512, 341)
    small = imaging.grid_rendition(Image.new("RGB", (300, 400)), 512, "JPEG", 75)
    assert (small.width, small.height, small.content_type) == (300, 400, "image/jpeg")
    with pytest.raises(ValueError, match="grid format"):
        imaging.grid_rendition(wide, 512, "GIF", 75)
