"""The preprocess step's image work on one file, as one process: what `--vs-sharp` times.

Usage: python bench/preprocess_once.py IN.jpg OUT.jpg MAX_WIDTH JPEG_QUALITY MAX_PIXELS
with the repository root on PYTHONPATH. Prints the ThumbHash. Nothing but chalicelib's imaging
is imported, so the process costs what the Lambda function's image work costs on a cold start.
"""

from __future__ import annotations

import sys

from chalicelib.domain.imaging import process_image


def main(source: str, target: str, max_width: str, jpeg_quality: str, max_pixels: str) -> None:
    with open(source, "rb") as file:
        data = file.read()
    result = process_image(
        data, max_width=int(max_width), jpeg_quality=int(jpeg_quality), max_pixels=int(max_pixels)
    )
    with open(target, "wb") as file:
        file.write(result.jpeg)
    print(result.thumbhash)


if __name__ == "__main__":
    main(*sys.argv[1:])
