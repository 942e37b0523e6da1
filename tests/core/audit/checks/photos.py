"""Photo-like test images: a shaded background with sharp coloured shapes and a little noise.

Unlike flat or smoothly blurred textures they have edges, so that blur, re-encoding
and resizing change their statistics the way they change real photos'.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw


def photo(seed: int, size: tuple[int, int] = (160, 120)) -> Image.Image:
    """An RGB photo-like image of `size` (width, height), the same for the same seed."""
    rng = np.random.default_rng(seed)
    width, height = size
    ramp = np.linspace(rng.integers(40, 120), rng.integers(140, 220), width)
    background = ramp[None, :, None] * np.ones((height, 1, 3)) * rng.uniform(0.7, 1.0, 3)
    image = Image.fromarray(np.clip(background, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(8):
        x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
        box = [x0, y0, x0 + int(rng.integers(10, 60)), y0 + int(rng.integers(10, 60))]
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        (draw.rectangle if rng.random() < 0.5 else draw.ellipse)(box, fill=colour)
    noisy = np.asarray(image, dtype=np.float64) + rng.normal(0, 4, (height, width, 3))
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def save(image: Image.Image, path: Path, **options) -> Path:
    """Save `image` to `path` (format from the suffix; JPEG at quality 90 unless told), creating folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() in (".jpg", ".jpeg"):
        options.setdefault("quality", 90)
    image.save(path, **options)
    return path
