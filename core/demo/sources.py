"""What the photos demo style draws: item cut-outs from Tux Paint stamps (Debian package
tuxpaint-stamps-default, GPL-2+; SVG stamps rasterised with rsvg-convert from librsvg2-bin) and surfaces from
GIMP patterns (gimp-data, GPL-3+) and textures made here with numpy.
"""
from __future__ import annotations

import functools
import io
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
from PIL import Image, ImageFilter

from core.demo.catalogue import CATALOGUE
from core.demo.styles import DemoSourceError, pick_one

STAMPS_DIR = Path("/usr/share/tuxpaint/stamps")
PATTERNS_DIR = Path("/usr/share/gimp/2.0/patterns")



_STAMP_SIDE = 640  # stamps are kept at most this many pixels on their longer side
_SVG_SIDE = 560  # SVG stamps are rasterised to this many pixels on their longer side
# GIMP patterns (under /usr/share/gimp/2.0/patterns) by surface kind, with the factor they are enlarged by.
_GIMP_PATTERNS = {
    "wood": (("Wood/pine.pat", 3), ("Wood/wood1.pat", 3), ("Wood/wood2.pat", 3), ("Wood/wood3.pat", 4),
             ("Wood/wood4.pat", 4), ("Wood/wood5.pat", 3), ("Wood/walnut.pat", 3), ("Wood/parque1.pat", 3),
             ("Wood/parque2.pat", 3), ("Wood/parque3.pat", 3), ("Wood/corkboard.pat", 3)),
    "fabric": (("Fabric/burlap.pat", 2), ("Animal/leather.pat", 3)),
    "tiles": (("Stone/marble2.pat", 3), ("Stone/terra.pat", 3)),
    "stone": (("Stone/granite1.pat", 3), ("Stone/slate.pat", 3), ("Stone/marble1.pat", 3), ("Stone/marble3.pat", 3),
              ("Stone/pink_marble.pat", 3), ("Stone/cracked.pat", 2), ("Paper/crinklepaper.pat", 3)),
}
# How many textures of each kind are made with numpy, and how often each surface kind is drawn.
_PROCEDURAL_COUNT = {"wood": 6, "fabric": 6, "bedsheet": 10, "tiles": 6, "carpet": 8, "stone": 3}
SURFACE_WEIGHTS = {"plain": 0.32, "wood": 0.2, "fabric": 0.08, "bedsheet": 0.12, "tiles": 0.1, "carpet": 0.08,
                   "stone": 0.1}
SURFACES = tuple(SURFACE_WEIGHTS)


def read_gimp_pattern(path: Path) -> np.ndarray:
    """A GIMP .pat file as RGB uint8, shape (height, width, 3).

    The format: a big-endian header (header size, version, width, height, bytes per pixel), the magic
    "GPAT", the pattern's name, then width * height pixels of 1 (grey), 2 (grey, alpha), 3 or 4 bytes.
    """
    try:
        data = path.read_bytes()
    except OSError as error:
        raise DemoSourceError(f"cannot read {path}: {error}") from error
    if len(data) < 24 or data[20:24] != b"GPAT":
        raise DemoSourceError(f"{path} is not a GIMP pattern")
    header_size, _, width, height, depth = (int(v) for v in np.frombuffer(data[:20], dtype=">u4"))
    if depth not in (1, 2, 3, 4) or len(data) < header_size + width * height * depth:
        raise DemoSourceError(f"{path} is truncated or has {depth} bytes per pixel")
    pixels = np.frombuffer(data, dtype=np.uint8, count=width * height * depth, offset=header_size)
    pixels = pixels.reshape(height, width, depth)
    return np.repeat(pixels[..., :1], 3, axis=2) if depth <= 2 else np.ascontiguousarray(pixels[..., :3])


@dataclass(frozen=True)
class Cutout:
    """A stamp ready to draw: RGBA cropped to its visible pixels, and how it may be changed."""

    image: Image.Image
    tintable: bool  # drawn in white or grey, to be coloured
    mirror: bool  # may be flipped left to right (not when it shows writing)


@dataclass(frozen=True)
class PhotoSources:
    """Where the photos style reads its stamps and patterns."""

    stamps_dir: Path
    patterns_dir: Path

    def cutout(self, stamp_path: str) -> Cutout:
        return _load_cutout(self.stamps_dir, stamp_path)

    def tintable(self, stamp_path: str) -> bool:
        return "tintable" in _stamp_flags(_stamp_file(self.stamps_dir, stamp_path))

    def texture(self, index: int) -> Image.Image:
        return _texture(self.patterns_dir, index)

    def preload(self, stamp_paths: set[str], textures: set[int]) -> None:
        """Load these stamps (SVGs rasterised a few at a time) and make these textures, so that later
        renders, and processes forked after this, find them ready."""
        with ThreadPoolExecutor(max_workers=4) as pool:  # rsvg-convert runs outside the GIL
            list(pool.map(self.cutout, sorted(stamp_paths)))
        for index in sorted(textures):
            self.texture(index)


def _stamp_file(stamps_dir: Path, stamp_path: str) -> Optional[Path]:
    for extension in (".png", ".svg"):
        if (stamps_dir / f"{stamp_path}{extension}").is_file():
            return stamps_dir / f"{stamp_path}{extension}"
    return None


def load_sources(stamps_dir: Path = STAMPS_DIR, patterns_dir: Path = PATTERNS_DIR) -> PhotoSources:
    """Check that every catalogue stamp and GIMP pattern is there (and rsvg-convert for SVG stamps).

    Raises DemoSourceError naming what is missing and the Debian package that provides it.
    """
    missing = [stamp.path for stamp in CATALOGUE if _stamp_file(stamps_dir, stamp.path) is None]
    if missing:
        raise DemoSourceError(
            f"Tux Paint stamps not found in {stamps_dir}: missing {len(missing)} of {len(CATALOGUE)}, "
            f"e.g. {', '.join(missing[:3])}. Install them with `apt-get install tuxpaint-stamps-default`, "
            "or point --source DIR (source_dir) at a copy of /usr/share/tuxpaint/stamps."
        )
    patterns = [name for entries in _GIMP_PATTERNS.values() for name, _ in entries]
    absent = [name for name in patterns if not (patterns_dir / name).is_file()]
    if absent:
        raise DemoSourceError(
            f"GIMP patterns not found in {patterns_dir}: missing {', '.join(absent[:3])}. "
            "Install them with `apt-get install gimp-data`."
        )
    if shutil.which("rsvg-convert") is None:
        raise DemoSourceError("rsvg-convert is needed to draw the SVG stamps: `apt-get install librsvg2-bin`")
    return PhotoSources(stamps_dir, patterns_dir)


@functools.lru_cache(maxsize=None)
def _stamp_flags(stamp_file: Path) -> frozenset[str]:
    """The words of a stamp's .dat file (e.g. "tintable", "nomirror"); empty when it has none."""
    dat = stamp_file.with_suffix(".dat")
    return frozenset(dat.read_text(errors="replace").split()) if dat.is_file() else frozenset()


@functools.lru_cache(maxsize=None)
def _load_cutout(stamps_dir: Path, stamp_path: str) -> Cutout:
    stamp_file = _stamp_file(stamps_dir, stamp_path)
    if stamp_file is None:
        raise DemoSourceError(f"stamp {stamp_path} not found in {stamps_dir}")
    if stamp_file.suffix == ".svg":
        side = str(_SVG_SIDE)
        result = subprocess.run(["rsvg-convert", "-a", "-w", side, "-h", side, str(stamp_file)],
                                capture_output=True, check=False)
        if result.returncode != 0:
            raise DemoSourceError(f"rsvg-convert failed on {stamp_file}: {result.stderr.decode(errors='replace')}")
        image = Image.open(io.BytesIO(result.stdout))
    else:
        image = Image.open(stamp_file)
    image = image.convert("RGBA")
    box = image.getchannel("A").point(lambda a: 255 if a > 8 else 0).getbbox()
    if box is None:
        raise DemoSourceError(f"stamp {stamp_file} is empty")
    image = image.crop(box)
    if max(image.size) > _STAMP_SIDE:
        image.thumbnail((_STAMP_SIDE, _STAMP_SIDE), Image.Resampling.LANCZOS)
    flags = _stamp_flags(stamp_file)
    return Cutout(image, tintable="tintable" in flags, mirror="nomirror" not in flags)



_TEXTURE_SIDE = 1024
_TEXTURE_SEED = 20240611  # textures are the same in every build; photos differ in crops, tints and light


def _texture_entries() -> tuple[tuple[str, str, Any], ...]:
    """(kind, "gimp" or "numpy", pattern name and factor or variant number), in a fixed order."""
    entries = [(kind, "gimp", entry) for kind, patterns in _GIMP_PATTERNS.items() for entry in patterns]
    entries += [(kind, "numpy", i) for kind, count in _PROCEDURAL_COUNT.items() for i in range(count)]
    return tuple(entries)


TEXTURES = _texture_entries()


def texture_name(index: int) -> str:
    """A short name of texture `index`: the GIMP pattern's file name ("pine") or "numpy-3"."""
    _, origin, detail = TEXTURES[index]
    return Path(detail[0]).stem if origin == "gimp" else f"numpy-{detail}"

TEXTURES_BY_KIND = {kind: tuple(i for i, entry in enumerate(TEXTURES) if entry[0] == kind) for kind in SURFACES}


def _smooth_noise(rng: np.random.Generator, size: tuple[int, int], cells: tuple[int, int]) -> np.ndarray:
    """Value noise in about [0, 1], float32 of shape (height, width): a random grid of `cells` (rows, columns)
    upsampled with bicubic interpolation."""
    grid = rng.random(cells, dtype=np.float32)
    return np.asarray(Image.fromarray(grid).resize((size[1], size[0]), Image.Resampling.BICUBIC))


def colourise(tone: np.ndarray, colour: tuple[int, int, int]) -> np.ndarray:
    """uint8 RGB of `colour` scaled by `tone` (float, shape (H, W), about 1)."""
    return np.clip(tone[..., None] * np.asarray(colour, dtype=np.float32), 0, 255).astype(np.uint8)


_WOOD_TONES = ((198, 160, 112), (150, 100, 62), (112, 72, 45), (214, 182, 134), (160, 150, 138), (128, 80, 52))
_FABRIC_TONES = ((70, 80, 110), (150, 40, 48), (60, 100, 70), (190, 180, 160), (90, 90, 95), (200, 150, 60))
_SHEET_TONES = ((244, 244, 240), (214, 226, 240), (240, 214, 220), (214, 236, 222), (226, 226, 230),
                (244, 234, 210), (226, 216, 240))
_TILE_TONES = ((236, 234, 228), (222, 208, 184), (178, 92, 62), (160, 162, 166), (150, 170, 186), (172, 190, 160))
_CARPET_TONES = ((128, 126, 122), (186, 170, 142), (110, 80, 60), (44, 56, 96), (52, 84, 60), (120, 40, 52),
                 (66, 66, 70), (200, 196, 188))


def _numpy_texture(kind: str, rng: np.random.Generator) -> np.ndarray:
    """A texture of `kind` made from noise and stripes, uint8 RGB of _TEXTURE_SIDE square."""
    side = _TEXTURE_SIDE
    y = np.arange(side, dtype=np.float32)[:, None]
    x = np.arange(side, dtype=np.float32)[None, :]
    if kind == "wood":  # boards running left to right, with rings, streaks and seams
        board = int(rng.integers(110, 240))
        warp = _smooth_noise(rng, (side, side), (6, 3)) * 60
        period = float(rng.uniform(9, 22))
        rings = np.sin(2 * np.pi * (y + warp) / period)
        streaks = _smooth_noise(rng, (side, side), (side // 3, 6))
        offsets = rng.normal(0, 0.07, side // board + 2).astype(np.float32)
        tone = 1 + 0.07 * rings + 0.18 * (streaks - 0.5) + offsets[(np.arange(side) // board)][:, None]
        tone = np.where((np.arange(side) % board < 2)[:, None], tone * 0.55, tone)
        return colourise(tone, pick_one(rng, _WOOD_TONES))
    if kind == "fabric":  # a plain weave of threads, sometimes in a two-colour check
        thread = int(rng.integers(3, 7))
        over = ((x // thread + y // thread) % 2).astype(np.float32)
        shading = over * np.sin(np.pi * (x % thread) / thread) + (1 - over) * np.sin(np.pi * (y % thread) / thread)
        tone = 0.82 + 0.16 * shading + 0.1 * (_smooth_noise(rng, (side, side), (24, 24)) - 0.5)
        image = colourise(tone, pick_one(rng, _FABRIC_TONES)).astype(np.float32)
        if rng.random() < 0.4:
            band = int(rng.integers(40, 120))
            check = (((x // band) + (y // band)) % 2 == 0)[..., None]
            image = np.where(check, image * np.array([0.8, 0.85, 0.95], np.float32), image)
        return np.clip(image, 0, 255).astype(np.uint8)
    if kind == "bedsheet":  # pale cotton with soft folds, plain, striped, checked or dotted
        folds = _smooth_noise(rng, (side, side), (5, 5))
        gy, gx = np.gradient(folds)
        angle = rng.uniform(0, 2 * np.pi)
        tone = 1 + 90 * (np.cos(angle) * gx + np.sin(angle) * gy) + 0.05 * (folds - 0.5)
        colour = np.asarray(pick_one(rng, _SHEET_TONES), dtype=np.float32)
        pattern = rng.integers(4)
        base = np.broadcast_to(colour, (side, side, 3)).copy()
        accent = colour * np.array(rng.uniform(0.7, 0.95, 3), dtype=np.float32)
        if pattern == 1:
            period = int(rng.integers(24, 70))
            base[(np.arange(side) % period < period // 3)] = accent
        elif pattern == 2:
            period = int(rng.integers(30, 80))
            stripes = ((x % period) < period // 2) ^ ((y % period) < period // 2)
            base[stripes] = accent
        elif pattern == 3:
            period = int(rng.integers(28, 60))
            dots = ((x % period - period / 2) ** 2 + (y % period - period / 2) ** 2) < (period / 7) ** 2
            base[dots] = accent
        return np.clip(base * tone[..., None], 0, 255).astype(np.uint8)
    if kind == "tiles":  # square tiles of slightly varying shade with grout lines
        tile = int(rng.integers(90, 230))
        grout = int(rng.integers(3, 8))
        count = side // tile + 2
        shade = rng.normal(1, 0.04, (count, count)).astype(np.float32)
        tone = shade[np.arange(side) // tile][:, np.arange(side) // tile]
        tone = tone + 0.06 * (_smooth_noise(rng, (side, side), (40, 40)) - 0.5)
        image = colourise(tone, pick_one(rng, _TILE_TONES))
        lines = ((np.arange(side) % tile) < grout)
        grout_colour = np.array(rng.choice([(200, 200, 196), (120, 118, 114), (232, 230, 226)]), dtype=np.uint8)
        image[lines, :] = grout_colour
        image[:, lines] = grout_colour
        return image
    if kind == "carpet":  # short pile: fine speckle over a blotchy base
        speckle = Image.fromarray((rng.random((side, side)) * 255).astype(np.uint8), mode="L")
        speckle = np.asarray(speckle.filter(ImageFilter.GaussianBlur(1.0)), dtype=np.float32) / 255
        tone = 0.75 + 0.5 * (speckle - 0.5) * 2.2 + 0.12 * (_smooth_noise(rng, (side, side), (16, 16)) - 0.5)
        return colourise(tone, pick_one(rng, _CARPET_TONES))
    # stone: several octaves of noise, grey or sandy
    tone = sum(0.5 ** octave * (_smooth_noise(rng, (side, side), (8 * 4 ** octave,) * 2) - 0.5)
               for octave in range(3))
    return colourise(0.9 + 0.35 * tone, pick_one(rng, ((150, 148, 144), (190, 176, 150), (110, 108, 104))))


def _tile_pattern(pattern: np.ndarray, factor: int, rng: np.random.Generator) -> np.ndarray:
    """A GIMP pattern enlarged by `factor`, repeated to _TEXTURE_SIDE square, with gentle uneven shading
    so that the repeats show less."""
    image = Image.fromarray(pattern).resize((pattern.shape[1] * factor, pattern.shape[0] * factor),
                                            Image.Resampling.BICUBIC)
    tile = np.asarray(image)
    reps = (-(-_TEXTURE_SIDE // tile.shape[0]), -(-_TEXTURE_SIDE // tile.shape[1]), 1)
    tiled = np.tile(tile, reps)[:_TEXTURE_SIDE, :_TEXTURE_SIDE].astype(np.float32)
    shading = 1 + 0.12 * (_smooth_noise(rng, (_TEXTURE_SIDE, _TEXTURE_SIDE), (5, 5)) - 0.5)
    return np.clip(tiled * shading[..., None], 0, 255).astype(np.uint8)


@functools.lru_cache(maxsize=None)
def _texture(patterns_dir: Path, index: int) -> Image.Image:
    """Texture number `index` of TEXTURES, RGB of _TEXTURE_SIDE square; made once per process."""
    kind, origin, detail = TEXTURES[index]
    rng = np.random.default_rng([_TEXTURE_SEED, index])
    if origin == "gimp":
        name, factor = detail
        return Image.fromarray(_tile_pattern(read_gimp_pattern(patterns_dir / name), factor, rng))
    return Image.fromarray(_numpy_texture(kind, rng))


_PLAIN_TONES = ((242, 242, 238), (232, 230, 224), (214, 214, 212), (236, 226, 208), (246, 240, 226),
                (204, 214, 222), (92, 92, 96), (52, 52, 56), (196, 182, 160), (224, 232, 226))


def surface(sources: PhotoSources, texture_index: int, size: tuple[int, int], rng: np.random.Generator) -> Image.Image:
    """The background of a photo of `size` (width, height): a plain colour with a soft gradient (index -1),
    or a crop of texture number `texture_index` of TEXTURES, turned, mirrored and maybe enlarged."""
    width, height = size
    if texture_index < 0:  # plain; smooth, so drawn small and enlarged
        colour = np.asarray(pick_one(rng, _PLAIN_TONES), dtype=np.float32) * rng.uniform(0.94, 1.04, 3)
        ramp = np.linspace(1 + rng.uniform(0, 0.1), 1 - rng.uniform(0, 0.12), 16, dtype=np.float32)
        small = Image.fromarray(colourise(np.repeat(ramp[:, None], 16, axis=1), tuple(colour)))
        return small.resize(size, Image.Resampling.BILINEAR)
    texture = sources.texture(texture_index)
    zoom = rng.uniform(0.55, 1.05) if rng.random() < 0.3 else 1.0  # enlarging costs a resize: only some
    turn = rng.random() < 0.5  # boards and stripes run either way
    crop_w = min(_TEXTURE_SIDE, max(64, round((height if turn else width) * zoom)))
    crop_h = min(_TEXTURE_SIDE, max(64, round((width if turn else height) * zoom)))
    top = int(rng.integers(0, _TEXTURE_SIDE - crop_h + 1))
    left = int(rng.integers(0, _TEXTURE_SIDE - crop_w + 1))
    crop = texture.crop((left, top, left + crop_w, top + crop_h))
    if rng.random() < 0.5:
        crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if turn:
        crop = crop.transpose(Image.Transpose.ROTATE_90)
    return crop if crop.size == size else crop.resize(size, Image.Resampling.BILINEAR)
