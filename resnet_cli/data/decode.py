"""Image files -> uint8 RGB arrays (the ImageFolder scan, exact RGB conversion, decoding), for
:func:`resnet_cli.data.load_image_folder` and the user's own images (:func:`load_images`). Every
failure is a :class:`~resnet_cli.errors.DataError` naming the file.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
import logging
import os
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import DataError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".gif", ".tif", ".tiff", ".webp")
"""File suffixes read as images (torchvision's ImageFolder list)."""

EXACT_MODES = ("RGB", "L", "1", "P", "YCbCr")
"""Modes whose conversion to 8-bit RGB is exact (RGBA, LA, PA too when fully opaque). Refused:
transparency, 16/32-bit and float modes (clipping loses levels), CMYK (needs the ICC profile)."""


def rgb_problem(im: Image.Image) -> str | None:
    """Why ``im`` cannot be converted to RGB exactly (None when it can)."""
    mode = im.mode
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in im.info):
        alpha = im.convert("RGBA").getchannel("A")
        return None if alpha.getextrema()[0] == 255 else f"mode {mode} with transparent pixels"
    if mode in EXACT_MODES:
        return None
    if mode.startswith("I") or mode == "F":
        return f"mode {mode} (more than 8 bits per pixel)"
    if mode == "CMYK":
        return "mode CMYK (colours need the ICC profile)"
    return f"mode {mode}"


def decode(path: str, size: int, fix: str | None = None) -> np.ndarray:
    """One image file -> uint8 (size, size, 3) RGB (bilinear resize); DataError naming the file
    (with ``fix``, what to pass instead, for the user's own files)."""
    try:
        with Image.open(path) as im:
            im.load()
            if problem := rgb_problem(im):
                raise DataError(f"image {path} is not RGB: {problem} cannot be converted to RGB exactly; "
                                "save it as 8-bit RGB (JPEG/PNG) or remove it")
            im = im.convert("RGB")
            if im.size != (size, size):
                im = im.resize((size, size), Image.BILINEAR)
            return np.asarray(im, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        if fix is not None:
            raise DataError(f"cannot decode image {path} ({type(e).__name__}): {fix}") from None
        reason = str(e).splitlines()[0][:120] if str(e) else type(e).__name__
        raise DataError(f"cannot decode image {path} ({reason}); remove or replace the file") from None


def decode_images(paths: list[str], size: int, workers: int = 4) -> np.ndarray:
    """Decode image files to a uint8 array (N, size, size, 3); DataError naming the first bad file."""
    if not paths:
        return np.zeros((0, size, size, 3), np.uint8)
    pool = ThreadPoolExecutor(max_workers=workers)
    try:
        return np.stack(list(pool.map(lambda p: decode(p, size), paths)))
    finally:  # on a bad file or Ctrl-C, drop the images not decoded yet instead of waiting for them
        pool.shutdown(wait=True, cancel_futures=True)


def _listing(folder: Path) -> list[os.DirEntry]:
    """The entries of ``folder``; DataError naming it when it cannot be read (permissions)."""
    try:
        with os.scandir(folder) as it:
            return list(it)
    except OSError as e:
        fix = f"chmod -R u+rX {folder}" if isinstance(e, PermissionError) else "check the disk"
        raise DataError(f"cannot read the folder {folder} ({e.strerror or type(e).__name__}): {fix}, "
                        "or move it out of the data folder") from None


def scan_split(split_dir: Path) -> tuple[list[str], list[tuple[str, int]]]:
    """ImageFolder-style scan: class folders in sorted order and (path, label) samples; DataError if the
    split folder is missing, holds no class folder, or a folder cannot be read."""
    if not split_dir.is_dir():
        raise DataError(f"image folder split not found: {split_dir} "
                        "(expected <root>/train/<class>/* and <root>/test/<class>/*)")
    classes = sorted(e.name for e in _listing(split_dir) if e.is_dir())
    if not classes:
        raise DataError(f"no class folders in {split_dir}: expected {split_dir}/<class>/<image>")
    samples, seen = [], set()  # (path, label); real paths
    for label, c in enumerate(classes):  # torchvision's make_dataset order, links to folders not followed
        files = _class_files(split_dir, c)
        if not files:  # as torchvision's make_dataset
            raise DataError(f"{split_dir}: Found no valid file for the class {c}. "
                            f"Supported extensions are: {', '.join(IMAGE_SUFFIXES)}")
        for path in files:
            real = os.path.realpath(path)
            if real in seen:
                log.warning("%s is the file %s again (a link): counted once", path, real)
                continue
            seen.add(real)
            samples.append((path, label))
    return classes, samples


def _class_files(split_dir: Path, c: str) -> list[str]:
    """The image files under ``split_dir/c`` in torchvision's ``make_dataset`` order (folders sorted, then
    names), without following a link to a folder: it leads back into the tree (a loop, another class)
    or out of it, so its images would be counted twice or under the wrong class (one warning each)."""
    _listing(split_dir / c)  # torchvision's scan skips a folder it cannot read and blames the extensions
    found = []
    for root, dirs, files in sorted(os.walk(split_dir / c, followlinks=False)):
        for d in sorted(dirs):
            link = Path(root) / d
            if link.is_symlink():
                target = Path(os.path.realpath(link))
                where = "back into" if target.is_relative_to(split_dir.parent.resolve()) else "out of"
                log.warning("not following the folder link %s -> %s: it leads %s the image folder %s",
                            link, os.readlink(link), where, split_dir.parent)
        found += [os.path.join(root, f) for f in sorted(files) if f.lower().endswith(IMAGE_SUFFIXES)]
    return found


def load_images(paths: list[str], image_size: int) -> np.ndarray:
    """Decode the user's own image files (``images=[...]``) to uint8 RGB (N, S, S, 3), S = ``image_size``,
    with the training data's checks; DataError naming a missing, non-RGB or undecodable file."""
    out = []
    for p in paths:
        path = Path(p).expanduser()
        if not path.is_file():
            raise DataError(f"image not found: {p} (check the path in images=[...])")
        out.append(decode(str(path), image_size, fix="pass a PNG or JPEG file in images=[...]"))
    return np.stack(out)
