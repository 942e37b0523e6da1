"""Several views of each photo embedded in one pass: each file read, hashed and decoded once for all of them.

The audit's photo members see the whole photo at 160 px and the object's crop at 112 px. Embedded one view
after the other, every photo is read, checked against the scan's hash and decoded twice; for a 12 MP phone
photo the decode (20 ms at 1/8 scale) costs far more than the networks (4 ms for both views). `embed_views_cached` makes every requested
view's vectors from one read and, where the JPEG scale allows, one decode (`core.models.views.load_views`:
the pixels, and so the vectors, are exactly those of one view at a time), and writes them to the embedding
cache a chunk at a time, where each member then finds them.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import torch

from core.models.embeddings import (CACHE_CHUNK_IMAGES, DEFAULT_BATCH_SIZE, UnreadableImageError, batch_loader,
                                    cache_key, get_backbone, network_runner)
from core.models.store import EmbeddingStore
from core.models.views import DECODE_ERRORS, ScannedFiles, load_views
from core.progress import ProgressCallback

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ViewRequest:
    """One view a network embeds: backbone name, input side in pixels, and view ("whole" or "crop")."""

    backbone: str
    image_size: int
    view: str

    @property
    def key(self) -> str:
        return cache_key(self.backbone, image_size=self.image_size, view=self.view)


class ViewsOfFiles(ScannedFiles):
    """Image files as the input of several networks: per file, one uint8 (S_i, S_i, 3) tensor per request,
    and whether it read (zeros when it did not)."""

    def __init__(self, paths: Sequence[str | os.PathLike], requests: Sequence[ViewRequest], *,
                 root: Optional[str] = None, content_hashes: Optional[Sequence[str]] = None) -> None:
        super().__init__(paths, root=root, content_hashes=content_hashes)
        self.sides = [(request.image_size, request.view) for request in requests]

    def __getitem__(self, index: int) -> tuple[tuple[torch.Tensor, ...], bool]:
        try:
            views = load_views(self.paths[index], self.sides, root=self.root, content_hash=self.content_hashes[index])
        except DECODE_ERRORS as error:
            log.warning("cannot decode %s for embedding: %s", self.paths[index], error)
            return tuple(torch.zeros((side, side, 3), dtype=torch.uint8) for side, _ in self.sides), False
        return tuple(torch.from_numpy(np.array(view, dtype=np.uint8)) for view in views), True


def embed_views_cached(paths: Sequence[str | os.PathLike], content_hashes: Sequence[str],
                       requests: Sequence[ViewRequest], *, store: EmbeddingStore, root: Optional[str] = None,
                       device: torch.device = torch.device("cpu"), runtime: Optional[str] = None,
                       progress: Optional[ProgressCallback] = None) -> dict[str, int]:
    """Put into `store` every request's vectors of the distinct files (by content hash) it lacks; returns
    request key -> vectors computed now.

    paths (absolute) and content_hashes are parallel, length N; root: the dataset folder (files are read
    as the scan saw them, core.files.read_scanned). A file missing from any view is embedded in all of
    them (an audit's views are new together but for a changed option), and stored where it was missing. Chunks of CACHE_CHUNK_IMAGES files are written as
    they finish, so a stopped or failed pass keeps them; a file that does not read raises
    UnreadableImageError naming it, after the chunks before it are stored. Each request's networks run
    as core.models.embeddings.network_runner chooses (the vectors are those of embed_images).
    """
    if len(paths) != len(content_hashes):
        raise ValueError(f"{len(paths)} paths but {len(content_hashes)} content hashes")
    report = progress or (lambda fraction, message: None)
    first_path: dict[str, str | os.PathLike] = {}
    for path, content_hash in zip(paths, content_hashes):
        first_path.setdefault(content_hash, path)
    distinct = list(first_path)
    missing = {request.key: _missing(store, distinct, request.key) for request in requests}
    todo = [content_hash for content_hash in distinct if any(content_hash in lacking for lacking in missing.values())]
    computed = {request.key: 0 for request in requests}
    if not todo:
        return computed
    log.info("embedding %d images in %d views at once (%s)", len(todo), len(requests),
             ", ".join(request.key for request in requests))
    runners = [network_runner(get_backbone(request.backbone), device, request.image_size, DEFAULT_BATCH_SIZE,
                              runtime) for request in requests]
    for start in range(0, len(todo), CACHE_CHUNK_IMAGES):
        chunk = todo[start:start + CACHE_CHUNK_IMAGES]
        files = ViewsOfFiles([first_path[h] for h in chunk], requests, root=root, content_hashes=chunk)
        chunk_report = lambda done, s=start: report((s + done) / len(todo), f"embedded {s + done}/{len(todo)} images")
        vectors = _embed_chunk(files, requests, runners, device, chunk_report)
        for request, view_vectors in zip(requests, vectors):
            lacking = missing[request.key]
            new = {h: vector for h, vector in zip(chunk, view_vectors) if h in lacking}
            store.put_many(new, request.key)
            computed[request.key] += len(new)
    return computed


def _missing(store: EmbeddingStore, distinct: list[str], key: str) -> set[str]:
    """The hashes of `distinct` that `store` has no vector for under `key`, asked a chunk at a time."""
    found: set[str] = set()
    for start in range(0, len(distinct), CACHE_CHUNK_IMAGES):
        found.update(store.get_many(distinct[start:start + CACHE_CHUNK_IMAGES], key))
    return set(distinct) - found


def _embed_chunk(files: ViewsOfFiles, requests: Sequence[ViewRequest], runners: list, device: torch.device,
                 report) -> list[np.ndarray]:
    """Each request's vectors of `files`, float32 (len(files), D_i); UnreadableImageError when any file failed."""
    vectors = [np.empty((len(files), get_backbone(request.backbone).dim), dtype=np.float32) for request in requests]
    failed: list[int] = []
    done = 0
    for views, ok in batch_loader(files, DEFAULT_BATCH_SIZE, device=device):
        for view_vectors, run, images in zip(vectors, runners, views):
            view_vectors[done:done + len(images)] = run(images).cpu().numpy()
        failed.extend(done + int(i) for i in np.flatnonzero(~ok.numpy()))
        done += len(ok)
        report(done)
    if failed:
        shown = ", ".join(str(files.paths[i]) for i in failed[:5])
        raise UnreadableImageError(f"{len(failed)} image(s) could not be decoded or changed since the scan "
                                   f"(rescan the dataset): {shown}")
    return vectors
