"""Image files (PNG, JPEG, BMP, TIFF) as uint8 arrays of a fixed shape."""

from __future__ import annotations

import glob
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import OneClassError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


class ImageFileError(OneClassError):
    """An image file is missing, corrupt or not an image."""


def find_image_files(folder: str | os.PathLike) -> list[str]:
    """Image files under ``folder``, recursively, as path strings in path order.

    Strings rather than ``Path`` objects: a listing of 100,000 files then costs about 100 bytes per
    file instead of about 1 KB, which keeps the memory of scoring a large folder nearly flat."""
    found = []
    for directory, _, names in os.walk(folder):
        for name in names:
            if os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES:
                candidate = os.path.join(directory, name)
                if os.path.isfile(candidate):
                    found.append(candidate)
    found.sort(key=lambda p: p.replace(os.sep, "\0"))  # the order Path objects sort in
    return found


def expand_image_paths(specs: list[str]) -> list[str | Path]:
    """Files, folders (searched recursively for image suffixes) and glob patterns -> sorted paths."""
    paths: list[str | Path] = []
    for spec in specs:
        path = Path(spec).expanduser()
        if path.is_dir():
            found = find_image_files(path)
            if not found:
                raise ImageFileError(f"{path}: folder holds no image files ({', '.join(IMAGE_SUFFIXES)})")
            paths += found
        elif path.is_file():
            paths.append(path)
        elif any(ch in spec for ch in "*?["):
            matches = sorted(Path(p) for p in glob.glob(spec, recursive=True) if Path(p).is_file())
            if not matches:
                raise ImageFileError(f"{spec}: pattern matches no files")
            paths += matches
        else:
            raise ImageFileError(f"{spec}: no such file or folder")
    return paths


# EXIF orientations that turn an image by a quarter: its width and height trade places
QUARTER_TURNS = (5, 6, 7, 8)
# grey files of more than 8 bits: their levels are scaled to 0..255 by one fixed factor per run
HIGH_BIT_MODES = ("I;16", "I;16B", "I;16L", "I")
HIGH_BIT_WHITE = 65535  # the level read as 255 unless a run says otherwise (``high_bit_white``)


def high_bit_white(levels: int) -> int:
    """The level read as white for grey files whose brightest level is ``levels``: the top of the
    smallest bit depth (8 to 16 bits) that holds it, 4095 for a 12-bit camera's frames."""
    return 2 ** min(16, max(8, int(levels).bit_length())) - 1


def upright_size(image: Image.Image) -> tuple[int, int]:
    """``(width, height)`` of an opened image as ``read_image`` reads it (EXIF orientation applied),
    from its header."""
    return _turned(image.size, image.getexif())


def header_size(image: Image.Image) -> tuple[int, int]:
    """``upright_size`` without decoding any pixels: a PNG's orientation tag counts only where the
    tag comes before the image data (Pillow's ``getexif`` of a PNG decodes the whole image to look
    for one after it). For checking many files' sizes cheaply."""
    if image.format != "PNG":
        return upright_size(image)
    exif = Image.Exif()
    if image.info.get("exif"):
        exif.load(image.info["exif"])
    return _turned(image.size, exif)


def _turned(size: tuple[int, int], exif: Image.Exif) -> tuple[int, int]:
    """``size`` ``(width, height)`` swapped where the EXIF orientation is a quarter turn."""
    width, height = size
    return (height, width) if exif.get(0x0112) in QUARTER_TURNS else (width, height)


def read_image(path: str | os.PathLike, shape: tuple[int, int, int], white: int | None = None) -> np.ndarray:
    """One image as uint8 ``(C, H, W)``: converted to grey (C=1) or RGB (C=3), resized to H x W.

    A file whose EXIF orientation tag says it was taken turned is read upright, as viewers and
    OpenCV show it. Grey files of more than 8 bits are scaled so that level ``white``
    (``HIGH_BIT_WHITE`` when None) is 255, levels above it clipped: the same factor for every
    image of a run, so that a darker image stays darker (a factor per image would stretch each
    to its own brightest pixel)."""
    channels, height, width = shape
    mode = {1: "L", 3: "RGB"}.get(channels)
    if mode is None:
        raise OneClassError(f"images with {channels} channels are not supported (1 or 3)")
    try:
        with Image.open(path) as opened:
            image = ImageOps.exif_transpose(opened)  # upright, as a viewer shows it (a camera's tag)
            if image.mode in HIGH_BIT_MODES:  # scaled to 8 bits (Pillow's conversion clips)
                scale = 255.0 / (white or HIGH_BIT_WHITE)
                array = np.clip(np.rint(np.asarray(image, dtype=np.float64) * scale), 0, 255)
                image = Image.fromarray(array.astype(np.uint8))
            if image.mode in ("RGBA", "LA", "P"):
                image = image.convert("RGBA")
                background = Image.new("RGBA", image.size, (0, 0, 0, 255))
                image = Image.alpha_composite(background, image)
            image = image.convert(mode)
            if image.size != (width, height):
                image = image.resize((width, height), Image.BILINEAR)
            array = np.asarray(image, dtype=np.uint8)
    except FileNotFoundError as exc:
        raise ImageFileError(f"{path}: no such file") from exc
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError, SyntaxError) as exc:
        raise ImageFileError(f"{path}: not a readable image ({exc.__class__.__name__}: {exc})") from exc
    return array[None] if channels == 1 else array.transpose(2, 0, 1)
