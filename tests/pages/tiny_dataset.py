"""A tiny real dataset on disk for the page and browse tests: 3 classes x 4 images, one broken file, listings.csv."""
from __future__ import annotations

from pathlib import Path

from tests.conftest import make_image

CLASSES = ("bag", "phone", "shoe")
IMAGES_PER_CLASS = 4
BROKEN_PATH = "shoe/broken.jpg"
#: Base price of each class; image i of a class costs base + 10 * i.
BASE_PRICE = {"bag": 40.0, "phone": 300.0, "shoe": 60.0}


def build_tiny_dataset(root: Path) -> Path:
    """Write the dataset under `root` and return it.

    Readable images are `<class>/<class>-<i>.png` (32x32), plus BROKEN_PATH
    (not an image). listings.csv prices every image, has one non-numeric price
    (bag-3, reported as a listings problem) and one row for a file that does not exist.
    """
    rows = ["path,listing_id,price,title"]
    for label in CLASSES:
        for index in range(IMAGES_PER_CLASS):
            path = f"{label}/{label}-{index}.png"
            make_image(root / path, size=(32, 32))
            price = "abc" if path == "bag/bag-3.png" else f"{BASE_PRICE[label] + 10 * index:.2f}"
            rows.append(f"{path},L-{label}-{index},{price},A used {label} number {index}")
    (root / BROKEN_PATH).write_bytes(b"this is not a jpeg")
    rows.append(f"{BROKEN_PATH},L-broken,70,A broken shoe photo")
    rows.append("bag/gone.png,L-gone,10,A listing whose photo is missing")
    (root / "listings.csv").write_text("\n".join(rows) + "\n")
    return root
