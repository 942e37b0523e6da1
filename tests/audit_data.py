"""A small real dataset with planted problems for the audit tests (core, jobs, CLI, app).

Two classes, "cheap" and "dear", of ten photo-like JPEGs each, priced about 10-12 and
100-104; planted: a price typo (cheap/p3.jpg at 1000), an exact copy of it filed
under "dear" (a duplicate group whose labels disagree) and an unreadable file.
"""
from __future__ import annotations

from pathlib import Path

from tests.core.audit.checks.photos import photo, save

PHOTOS = 20
TYPO_PATH = "cheap/p3.jpg"
COPY_PATH = "dear/p3-copy.jpg"
BROKEN_PATH = "dear/broken.jpg"


def build_audit_dataset(root: Path) -> Path:
    """Write the dataset under `root` (with listings.csv) and return `root`."""
    rows = ["path,listing_id,price,title"]
    for index in range(PHOTOS):
        label = "cheap" if index % 2 else "dear"
        path = f"{label}/p{index}.jpg"
        save(photo(index), root / path)
        price = 10.0 + index % 3 if label == "cheap" else 100.0 + index % 5
        rows.append(f"{path},L{index},{1000.0 if path == TYPO_PATH else price},item {index}")
    (root / COPY_PATH).write_bytes((root / TYPO_PATH).read_bytes())
    (root / BROKEN_PATH).write_bytes(b"oops")
    (root / "listings.csv").write_text("\n".join(rows) + "\n")
    return root
