"""Decode once: decoded image-folder splits (uint8 (N, H, W, 3) images, int64 (N,) labels) stored in
``<cache_dir>/<split>-<key>/`` (``images.npy``, ``labels.npy``, ``meta.json``) and loaded memory-mapped
by later runs.

The key (:func:`fingerprint`) changes with any selected file, so a stale entry is never read;
``meta.json``'s shapes and CRC-32s are checked, and a bad entry is rebuilt. Entries are written to a
temporary sibling and renamed into place (atomic between multirun jobs). ``data.cache_dir`` (null =
the platformdirs user cache), ``data.cache=false`` turns it off; an unwritable location only warns.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import zlib
from contextlib import suppress
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

log = logging.getLogger(__name__)

FORMAT = 1
"""Bumped when the entry layout changes (older entries are then ignored)."""


def default_cache_dir() -> Path:
    """The user cache folder (platformdirs), e.g. ``~/.cache/resnet-cli``."""
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("resnet-cli"))


def fingerprint(root: Path, paths: Sequence[str], image_size: int, classes: Sequence[str]) -> str:
    """SHA-256 (hex, 20 chars) of image size, classes and each file's relative path, size and mtime
    (OSError if a file vanished)."""
    h = hashlib.sha256(f"format={FORMAT};size={image_size};classes={','.join(classes)}\n".encode())
    for p in paths:
        st = os.stat(p)
        h.update(f"{os.path.relpath(p, root)}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:20]


def _crc(a: np.ndarray) -> int:
    return zlib.crc32(memoryview(np.ascontiguousarray(a)).cast("B"))


def _read(entry: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """The entry's (images, labels), or None if it is absent; raises ValueError (or the error of the
    file that cannot be read) if it is corrupt."""
    meta_path = entry / "meta.json"
    if not entry.is_dir():
        return None
    if not meta_path.is_file():  # entries are renamed into place whole: never one being written
        raise ValueError("meta.json is missing")
    meta = json.loads(meta_path.read_text())
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"meta.json is not a format-{FORMAT} record")
    images = np.load(entry / "images.npy", mmap_mode="c")  # copy-on-write: writable, the file untouched
    labels = np.load(entry / "labels.npy")
    if (list(images.shape) != meta["images_shape"] or str(images.dtype) != "uint8"
            or list(labels.shape) != [meta["images_shape"][0]] or str(labels.dtype) != "int64"):
        raise ValueError("shapes or dtypes differ from meta.json")
    if _crc(images) != meta["images_crc32"] or _crc(labels) != meta["labels_crc32"]:
        raise ValueError("checksum mismatch")
    return images, labels


def _write(entry: Path, images: np.ndarray, labels: np.ndarray) -> None:
    """Write the entry into a temporary sibling folder, then rename it into place (atomic)."""
    entry.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", dir=entry.parent))
    try:
        np.save(tmp / "images.npy", images)
        np.save(tmp / "labels.npy", labels)
        meta = {"format": FORMAT, "images_shape": list(images.shape), "images_crc32": _crc(images),
                "labels_crc32": _crc(labels)}
        (tmp / "meta.json").write_text(json.dumps(meta) + "\n")
        try:
            os.rename(tmp, entry)
        except OSError:  # a sibling job renamed the same entry first: keep theirs
            if not (entry / "meta.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _remove(entry: Path) -> None:
    """Remove an entry, whatever it has become (folder, file, link); errors ignored."""
    with suppress(OSError):
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


def cached_decode(cache_dir: Path | None, split: str, root: Path, paths: Sequence[str], labels: np.ndarray,
                  image_size: int, classes: Sequence[str],
                  decode: Callable[[list[str], int], np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Decoded images (uint8 (N, S, S, 3)) and labels (int64 (N,)) of ``paths``: from a valid cache
    entry (memory-mapped, copy-on-write), else from ``decode(paths, image_size)``, then stored.
    ``cache_dir`` None disables the cache. Cache faults only log warnings; ``decode``'s errors propagate.
    """
    labels = np.asarray(labels, dtype=np.int64)
    if cache_dir is None:
        return decode(list(paths), image_size), labels
    try:
        entry = Path(cache_dir).expanduser() / f"{split}-{fingerprint(root, paths, image_size, classes)}"
    except OSError as e:
        log.warning("data cache skipped: cannot list %s (%s)", root, e)
        return decode(list(paths), image_size), labels
    if entry.exists() and not entry.is_dir():  # e.g. replaced by a file: never readable, never written over
        log.warning("data cache entry %s is not a folder: rebuilding it", entry)
        _remove(entry)
    try:
        hit = _read(entry)
        if hit is not None and np.array_equal(hit[1], labels):
            log.info("data cache: loaded the %s split (%d images) from %s", split, len(hit[1]), entry)
            return hit
        if hit is not None:
            raise ValueError("labels differ from the folder's")
    except Exception as e:  # noqa: BLE001 - any unreadable entry (EOFError, TypeError...) is rebuilt
        log.warning("data cache entry %s is unusable (%s: %s): rebuilding it", entry, type(e).__name__, e)
        _remove(entry)
    log.info("data cache: decoding the %s split (%d images) once and caching it in %s; later runs load it from there",
             split, len(paths), entry)
    images = decode(list(paths), image_size)
    try:
        _write(entry, images, labels)
    except OSError as e:
        log.warning("data cache not written (%s: %s); set data.cache_dir=<writable folder> or data.cache=false",
                    entry.parent, e.strerror or e)
    return images, labels
