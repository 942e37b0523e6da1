"""The `duplicate` check: exact copies (same bytes) and near copies (re-encoded, resized, re-saved) grouped together.

Exact duplicates share a content hash. Near-duplicate candidates are pairs whose
64-bit pHashes differ in at most `max_distance` bits (found with
core.scan.hashindex.near_pairs, no loop over all pairs); each candidate is confirmed
on pixels: the mean absolute difference of 32x32 RGB thumbnails must be at most
`max_pixel_difference` (on 0..255). Candidates whose stored brightness, contrast
or colorfulness differ clearly are dropped first, so few files are read. pHash alone confuses distinct items that are
photographed the same way (same layout, same background), the pixel check does
not. Confirmed pairs are joined into groups (connected components); a group
whose members carry different current labels is a label conflict, strong
evidence that some member is mislabelled.
"""
from __future__ import annotations

import logging
import multiprocessing
import os
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional
import numpy as np
import pandas as pd
from PIL import Image
from core.audit.checks.base import AuditContext, Check, CheckResult, register
from core.scan.hashindex import NearPairs, hex_to_uint64, near_pairs
from core.imaging import open_rgb
from core.scan.copies import STATS_TOLERANCE, exact_pairs, group_components, stats_agree


log = logging.getLogger(__name__)

THUMBNAIL_SIDE = 32
#: Width of the brightness bands near-duplicate candidates are searched in (see near_pairs_by_band): a
#: little more than the tolerance, so that brightnesses within it are never two bands apart, whatever
#: the rounding. (Bands of a second statistic as well cut the candidates by 4 but search 4 blocks per
#: photo: slower.)
BAND_WIDTH = STATS_TOLERANCE * (1 + 1e-6)
#: Processes decoding thumbnails, files per task, and the fewest files worth starting them for. Threads
#: do not help: opening a small JPEG holds the GIL for most of its time (two threads took longer than one).
THUMBNAIL_WORKERS = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
THUMBNAIL_CHUNK = 256
MIN_FILES_FOR_POOL = 2 * THUMBNAIL_CHUNK
#: Members listed in a flag's evidence (a group can be large; the group id finds them all).
MAX_LISTED_MEMBERS = 50


def pixel_thumbnail(path: str | Path) -> Optional[np.ndarray]:
    """A 32x32 RGB thumbnail, uint8 (32, 32, 3), or None when the file cannot be decoded now."""
    try:
        image = open_rgb(path, max_side=4 * THUMBNAIL_SIDE)
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as error:
        log.warning("cannot read %s to compare pixels: %s", path, error)
        return None
    return np.asarray(image.resize((THUMBNAIL_SIDE, THUMBNAIL_SIDE), Image.Resampling.BILINEAR))


def pixel_thumbnails(paths: list[str]) -> list[Optional[np.ndarray]]:
    return [pixel_thumbnail(path) for path in paths]


def read_thumbnails(paths: list[str], progress: Callable[[int], None]) -> list[Optional[np.ndarray]]:
    """pixel_thumbnail of each path, in order, by THUMBNAIL_WORKERS processes (in this one for a few
    files); progress(files done) after each THUMBNAIL_CHUNK files."""
    chunks = [paths[start:start + THUMBNAIL_CHUNK] for start in range(0, len(paths), THUMBNAIL_CHUNK)]
    thumbnails: list[Optional[np.ndarray]] = []
    if THUMBNAIL_WORKERS == 1 or len(paths) < MIN_FILES_FOR_POOL:
        for chunk in map(pixel_thumbnails, chunks):
            thumbnails.extend(chunk)
            progress(len(thumbnails))
        return thumbnails
    # fork where there is fork: the workers need none of this process's state pickled
    context = multiprocessing.get_context("fork" if sys.platform.startswith("linux") else None)
    with context.Pool(min(THUMBNAIL_WORKERS, len(chunks))) as pool:
        for chunk in pool.imap(pixel_thumbnails, chunks):
            thumbnails.extend(chunk)
            progress(len(thumbnails))
    return thumbnails


def pixel_difference(first: Optional[np.ndarray], second: Optional[np.ndarray]) -> float:
    """Mean absolute difference of two thumbnails on 0..255; infinite when either could not be read."""
    if first is None or second is None:
        return np.inf
    return float(np.abs(first.astype(np.float32) - second.astype(np.float32)).mean())


def brightness_bands(brightness: np.ndarray) -> np.ndarray:
    """Band of each brightness (in [0, 1]), BAND_WIDTH wide: int (N,), -1 where it is NaN. Brightnesses
    within STATS_TOLERANCE of each other are in the same or adjacent bands."""
    bands = np.full(len(brightness), -1, dtype=np.int64)
    known = ~np.isnan(brightness)
    bands[known] = np.floor(brightness[known] / BAND_WIDTH).astype(np.int64)
    return bands


def near_pairs_by_band(hashes: np.ndarray, bands: np.ndarray, *, max_distance: int) -> NearPairs:
    """The pairs of near_pairs(hashes, max_distance=...) whose bands (int (N,), -1 for none) are equal or
    adjacent, in the same order; hashes of band -1 pair with nothing.

    Each band is searched together with the next one, and a pair is kept from the search of its lower
    band, so it is found once. With photos of similar scenes most pHash pairs within the distance are
    far apart in brightness: 100,000 generated listing photos have 1.3 million pairs within 12 bits, a
    quarter of them in adjacent bands, and the search takes half the time.
    """
    found: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for band in np.unique(bands[bands >= 0]):
        members = np.flatnonzero((bands == band) | (bands == band + 1))
        pairs = near_pairs(hashes[members], max_distance=max_distance)
        i, j = members[pairs.i], members[pairs.j]
        lower = (bands[i] == band) | (bands[j] == band)
        found.append((i[lower], j[lower], pairs.distance[lower]))
    if not found:
        return NearPairs(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.uint8))
    i, j, distance = (np.concatenate(part) for part in zip(*found))
    order = np.lexsort((j, i))
    return NearPairs(i[order], j[order], distance[order])


@dataclass(frozen=True)
class _GroupColumns:
    """The sample columns a group's description needs, as arrays by position."""

    sample_id: np.ndarray
    path: np.ndarray
    label: np.ndarray
    area: np.ndarray  # width x height, pixels
    file_size: np.ndarray

    @classmethod
    def of(cls, samples: pd.DataFrame) -> "_GroupColumns":
        width = samples["width"].fillna(0).to_numpy(dtype=float)
        height = samples["height"].fillna(0).to_numpy(dtype=float)
        return cls(samples.index.to_numpy(), samples["path"].to_numpy(), samples["label"].to_numpy(),
                   width * height, samples["file_size"].fillna(0).to_numpy(dtype=float))


def _members_by_group(group: np.ndarray) -> list[np.ndarray]:
    """Positions of each group's members (groups 1..G in order), from group ids by position (0 = none)."""
    grouped = np.flatnonzero(group > 0)
    order = grouped[np.argsort(group[grouped], kind="stable")]
    boundaries = np.flatnonzero(np.diff(group[order])) + 1
    return np.split(order, boundaries) if len(order) else []


@register
class DuplicateCheck(Check):
    """Exact and near-duplicate images, grouped; label conflicts within a group are mislabel evidence.

    max_distance: pHash Hamming distance (of 64 bits) for a near-duplicate candidate.
    max_pixel_difference: mean absolute difference of 32x32 RGB thumbnails (0..255) to confirm one;
        None skips the pixel check (pHash alone).
    """

    name = "duplicate"

    def __init__(self, *, max_distance: int = 12, max_pixel_difference: Optional[float] = 2.0):
        self.max_distance = max_distance
        self.max_pixel_difference = max_pixel_difference

    def find_issues(self, context: AuditContext) -> CheckResult:
        samples = context.samples
        n = len(samples)
        exact_a, exact_b = exact_pairs(samples["content_hash"])
        context.progress(0.05, "searching near-duplicate hashes")
        near = self._near_candidates(samples)
        context.progress(0.2, f"comparing pixels of {len(near)} candidate pairs")
        near = self._confirmed(near, samples, context)
        a = np.concatenate([exact_a, near["a"].to_numpy(dtype=np.int64)])
        b = np.concatenate([exact_b, near["b"].to_numpy(dtype=np.int64)])
        group = group_components(n, a, b)
        edges = pd.DataFrame({
            "a": a, "b": b,
            "distance": np.concatenate([np.zeros(len(exact_a), np.int64), near["distance"].to_numpy(dtype=np.int64)]),
            "exact": np.concatenate([np.ones(len(exact_a), bool), np.zeros(len(near), bool)]),
            "pixel_difference": np.concatenate([np.zeros(len(exact_a)), near["pixel_difference"].to_numpy(dtype=float)]),
        })
        issues = self._member_table(samples, group, edges)
        context.progress(1.0, f"{int(issues['is_duplicate_issue'].sum())} files in duplicate groups")
        return self.result(issues, self._summary(issues, group, len(exact_a), near))

    def _near_candidates(self, samples: pd.DataFrame) -> pd.DataFrame:
        """Pairs of positions (a < b) with pHash distance <= max_distance and different content hashes;
        with the pixel check on, only pairs in the same or adjacent brightness bands (the others cannot
        agree on their statistics, so the pixel check would never compare them)."""
        has_hash = np.flatnonzero(samples["phash"].notna().to_numpy())
        hashes = hex_to_uint64(samples["phash"].iloc[has_hash].tolist())
        if self.max_pixel_difference is None:
            pairs = near_pairs(hashes, max_distance=self.max_distance)
        else:
            brightness = samples["brightness"].to_numpy(dtype=float)[has_hash]
            pairs = near_pairs_by_band(hashes, brightness_bands(brightness), max_distance=self.max_distance)
        a, b = has_hash[pairs.i], has_hash[pairs.j]
        content = samples["content_hash"].to_numpy()
        different = content[a] != content[b]
        return pd.DataFrame({"a": a[different], "b": b[different], "distance": pairs.distance[different].astype(np.int64)})

    def _confirmed(self, near: pd.DataFrame, samples: pd.DataFrame, context: AuditContext) -> pd.DataFrame:
        """The candidates whose thumbnails agree, with their pixel difference (NaN when not compared)."""
        if self.max_pixel_difference is None or near.empty:
            return near.assign(pixel_difference=np.nan)
        near = near[stats_agree(samples, near["a"].to_numpy(), near["b"].to_numpy())]
        positions = np.unique(np.concatenate([near["a"], near["b"]]))
        paths = [os.path.join(context.root, path) for path in samples["path"].to_numpy()[positions]]
        read = read_thumbnails(paths, lambda done: context.progress(
            0.2 + 0.75 * done / len(paths), f"compared {done}/{len(paths)} images"))
        thumbnails = dict(zip(positions, read))
        difference = np.array([pixel_difference(thumbnails[a], thumbnails[b]) for a, b in zip(near["a"], near["b"])])
        near = near.assign(pixel_difference=difference)
        return near[near["pixel_difference"] <= self.max_pixel_difference].reset_index(drop=True)

    def _member_table(self, samples: pd.DataFrame, group: np.ndarray, edges: pd.DataFrame) -> pd.DataFrame:
        """The per-sample table: every member of a group is an issue, with its group's evidence."""
        both_ends = pd.concat([edges.rename(columns={"a": "position"}).drop(columns="b"),
                               edges.rename(columns={"b": "position"}).drop(columns="a")])
        nearest = both_ends.groupby("position").agg(distance=("distance", "min"), exact=("exact", "any"),
                                                     pixel_difference=("pixel_difference", "min"))
        columns = _GroupColumns.of(samples)
        score = np.ones(len(samples))
        suggested: list = [None] * len(samples)
        reason: list = [None] * len(samples)
        evidence: list = [{} for _ in range(len(samples))]
        for members in _members_by_group(group):
            described = self._describe_group(columns, members, int(group[members[0]]))
            for position in members:
                edge = nearest.loc[position]
                exact = bool(edge["exact"])
                distance = 0 if exact else int(edge["distance"])
                score[position] = duplicate_score(distance, self.max_distance)
                majority = described["majority_label"]
                label = columns.label[position]
                suggested[position] = majority if described["label_conflict"] and majority != label else None
                reason[position] = _reason(described, exact, distance, label)
                pixels = edge["pixel_difference"]
                evidence[position] = {**described, "exact": exact, "phash_distance": distance,
                                      "pixel_difference": None if np.isnan(pixels) else round(float(pixels), 2)}
        return pd.DataFrame({
            "is_duplicate_issue": group > 0, "duplicate_score": score,
            "suggested_label": pd.Series(suggested, index=samples.index, dtype=object),
            "group": pd.Series([int(g) if g else None for g in group], index=samples.index, dtype=object),
            "reason": pd.Series(reason, index=samples.index, dtype=object), "evidence": evidence,
        }, index=samples.index)

    def _describe_group(self, columns: "_GroupColumns", members: np.ndarray, group_id: int) -> dict:
        labels = columns.label[members]
        counts = Counter(labels.tolist())
        top_label, top_count = counts.most_common(1)[0]
        keep = members[np.lexsort((-columns.file_size[members], -columns.area[members]))[0]]
        listed = members[:MAX_LISTED_MEMBERS]
        return {
            "group": group_id,
            "size": len(members),
            "members": [{"sample_id": int(columns.sample_id[m]), "path": columns.path[m], "label": columns.label[m]}
                        for m in listed],
            "labels": dict(sorted(counts.items())),
            "label_conflict": len(counts) > 1,
            "majority_label": top_label if top_count * 2 > len(members) else None,
            "keep": int(columns.sample_id[keep]),
        }

    def _summary(self, issues: pd.DataFrame, group: np.ndarray, exact_edges: int, near: pd.DataFrame) -> dict:
        flagged = issues[issues["is_duplicate_issue"]]
        conflicts = {e["group"] for e in flagged["evidence"] if e["label_conflict"]}
        return {
            "groups": int(len(np.unique(group[group > 0]))),
            "files_in_groups": int(len(flagged)),
            "label_conflict_groups": len(conflicts),
            "exact_pairs": int(exact_edges),
            "near_pairs_confirmed": int(len(near)),
            "max_distance": self.max_distance,
            "max_pixel_difference": self.max_pixel_difference,
        }


def duplicate_score(distance: int, max_distance: int) -> float:
    """1 - how sure the check is that the file is a copy: 0 for an exact copy, rising with the pHash
    distance of its nearest member to 0.25 near max_distance (pixels confirmed it in either case)."""
    return 0.25 * distance / (max_distance + 1)


def _reason(described: dict, exact: bool, distance: int, label: str) -> str:
    others = described["size"] - 1
    copies = f"{others} other file{'s' if others != 1 else ''}"
    text = f"exact copy of {copies} in its group" if exact else \
        f"near duplicate (pHash distance {distance}) of {copies} in its group"
    if described["label_conflict"]:
        labels = ", ".join(f"{name} x{count}" for name, count in described["labels"].items())
        majority = described["majority_label"]
        text += f"; labels disagree ({labels})"
        text += f", most say {majority}" if majority and majority != label else ""
    return text
