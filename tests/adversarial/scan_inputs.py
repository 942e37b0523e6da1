"""Hostile inputs for the scan: links out of the dataset folder, a secret file behind listings.csv, huge flat PNGs.

Each generator writes real files and returns what a test needs to check that the
scan neither read nor echoed them.
"""
from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import make_image

#: The first line of the file that listings.csv links to: what /etc/shadow starts with.
SECRET_LINE = "root:$6$Zx9sEcReT$hashedpassword:19000:0:99999:7:::"
#: System files a link in a dataset may point to (those that do not exist here are dangling links).
SYSTEM_FILES = ("/etc/passwd", "/etc/shadow")


@dataclass
class LinksOut:
    """A dataset folder whose only real image is shoes/real.jpg; everything else links outside it.

    root: the dataset folder; outside: the folder next to it that the links lead to;
    links: relative paths of the links in root (files, folders, one class folder, listings.csv).
    """

    root: Path
    outside: Path
    links: list[str]


def dataset_with_links_out(base: Path) -> LinksOut:
    """Write <base>/outside (a secret CSV, photos) and <base>/shop, a dataset linking to them and to /etc."""
    outside = base / "outside"
    make_image(outside / "photos" / "private.jpg")
    make_image(outside / "id-card.png")
    (outside / "shadow").write_text(SECRET_LINE + "\nbin:*:19000:0:99999:7:::\n")
    root = base / "shop"
    make_image(root / "shoes" / "real.jpg")
    links = {
        "shoes/passwd.jpg": SYSTEM_FILES[0],
        "shoes/shadow.jpg": SYSTEM_FILES[1],
        "shoes/id-card.png": str(outside / "id-card.png"),
        "shoes/more": str(outside / "photos"),
        "shoes/up.jpg": "../../outside/id-card.png",
        "bags": str(outside / "photos"),
        "listings.csv": str(outside / "shadow"),
    }
    for relative, target in links.items():
        os.symlink(target, root / relative)
    return LinksOut(root, outside, sorted(links))


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def write_flat_png(path: Path, width: int, height: int, rgba: tuple[int, int, int, int] = (200, 30, 40, 128)) -> Path:
    """A single-colour RGBA PNG of width x height, written row by row (never held whole in memory).

    Rows use PNG's "Sub" filter (all zeros after the first pixel), which zlib
    compresses fast: 9000 x 9000 takes about half a second and 1.4 MB on disk,
    and Pillow decodes it into 324 MB.
    """
    row = b"\x01" + bytes(rgba) + bytes(4 * (width - 1))  # filter type 1 (Sub): each pixel minus its left one
    compressor = zlib.compressobj(1)
    data = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)  # 8 bits, RGBA
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", data)
                     + _png_chunk(b"IEND", b""))
    return path


def reviewed_shop(factory, root: Path, decisions: list[tuple[str, str, dict]]) -> int:
    """Two classes (bag, shoe) of three images each under `root`, scanned, then `decisions` (path, action,
    decide's options) recorded; returns the dataset id."""
    from sqlalchemy import select

    from db.corrections import decide
    from db.models import Sample
    from db.queries import dataset_classes
    from jobs.scan import scan_dataset

    for label in ("bag", "shoe"):
        for i in range(3):
            make_image(root / label / f"{label}{i}.png")
    dataset_id = scan_dataset(factory, root, workers=1)["dataset_id"]
    with factory.begin() as session:
        samples = {sample.path: sample for sample in session.scalars(select(Sample))}
        classes = dataset_classes(session, dataset_id)
        for path, action, options in decisions:
            decide(session, samples[path], action, classes=classes, **options)
    return dataset_id
