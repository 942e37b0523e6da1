"""Photo members: a cross-validated classifier on cached image embeddings (core.models.embeddings).

- "photo": the frozen network (option `backbone`) on the whole photo at `photo_size` px: items on
  cluttered tables and floors, where no crop can be trusted.
- "crop": the same network on the object's crop at `image_size` px: small items on a plain background.
- "pixels": weight-free shape and colour features of the crop (no network, no weights file).
The combiner decides how much each counts on a dataset.
"""
from __future__ import annotations

from typing import ClassVar, Optional, Sequence

import numpy as np

from core.audit.evidence.base import EvidenceInput, Member, MemberOutput, register_member
from core.audit.evidence.folds import AuditFolds
from core.audit.oof import out_of_fold_probabilities

WEIGHT_FREE_BACKBONE = "pixels"
#: Share of a member's progress taken by embedding its photos; the cross-validated fits take the rest and
#: report each fold, so a cancel request is heard between folds, not only after them.
EMBEDDING_SHARE = 0.8


class EmbeddingMember(Member):
    """A classifier on one view of the photos, embedded once per audit through the embedding cache."""

    view: ClassVar[str]

    def __init__(self) -> None:
        self._vectors: Optional[np.ndarray] = None
        self._details: dict = {}
        self.embedded_together = 0  # vectors embed_together put in the cache for this member

    def backbone(self, data: EvidenceInput) -> str:
        return data.options.backbone

    def image_size(self, data: EvidenceInput) -> int:
        return data.options.image_size

    def unavailable_reason(self, data: EvidenceInput) -> Optional[str]:
        if self.backbone(data) == WEIGHT_FREE_BACKBONE:
            return f"backbone {WEIGHT_FREE_BACKBONE!r} chosen: no network"
        return None

    def features(self, data: EvidenceInput) -> np.ndarray:
        """The rows' embeddings, float32 (N, D), computed (or read from the cache) on first use."""
        if self._vectors is None:
            from core.models.embeddings import embed_cached  # loads torch

            embedded = embed_cached(
                [str(data.root / path) for path in data.samples["path"]], list(data.samples["content_hash"]),
                store=data.embeddings, backbone=self.backbone(data), image_size=self.image_size(data),
                view=self.view, device=data.options.device, executor=data.options.executor, root=data.root,
                progress=lambda fraction, message: data.progress(EMBEDDING_SHARE * fraction, message),
            )
            self._vectors = embedded.vectors
            self._details = {"key": embedded.key, "embedded": embedded.computed + self.embedded_together,
                             "from_cache": embedded.reused - self.embedded_together}
        return self._vectors

    def release(self) -> None:
        self._vectors = None

    def out_of_fold(self, data: EvidenceInput, folds: AuditFolds, *,
                    exclude: Optional[np.ndarray] = None) -> MemberOutput:
        from core.models.embeddings import get_backbone

        features = self.features(data)
        classifier = get_backbone(self.backbone(data)).classifier
        oof = out_of_fold_probabilities(
            features, data.labels, n_classes=data.n_classes, classifier=classifier, seed=data.options.seed,
            exclude_from_training=exclude, audit_folds=folds,
            progress=lambda fraction, message: data.progress(EMBEDDING_SHARE + (1 - EMBEDDING_SHARE) * fraction,
                                                             f"fitting, {message}"))
        return MemberOutput(self.name, oof.pred_probs, np.ones(len(features), bool),
                            details={**self._details, "classifier": classifier})


def members_embedded_together(members: Sequence[Member], data: EvidenceInput) -> list[EmbeddingMember]:
    """The network members whose views `embed_together` embeds in one pass: two or more, with a cache to put
    the vectors in, embedded here on the CPU (on a GPU or a Ray cluster each member embeds its own view)."""
    from core.executors import resolve_executor
    from core.models.embeddings import get_backbone, pick_device  # loads torch

    chosen = [member for member in members
              if isinstance(member, EmbeddingMember) and get_backbone(member.backbone(data)).pretrained]
    if len(chosen) < 2 or data.embeddings is None or resolve_executor(data.options.executor) != "local":
        return []
    return chosen if pick_device(data.options.device).type == "cpu" else []


def embed_together(members: Sequence[EmbeddingMember], data: EvidenceInput) -> None:
    """Put the views of `members` that the cache lacks into it in one pass, each photo read and decoded once
    for all of them (core.models.multiview); each member then reads its vectors from the cache."""
    import torch

    from core.models.multiview import ViewRequest, embed_views_cached

    requests = [ViewRequest(member.backbone(data), member.image_size(data), member.view) for member in members]
    computed = embed_views_cached(
        [str(data.root / path) for path in data.samples["path"]], list(data.samples["content_hash"]), requests,
        store=data.embeddings, root=str(data.root), device=torch.device("cpu"), progress=data.progress)
    for member, request in zip(members, requests):
        member.embedded_together = computed[request.key]


@register_member
class PhotoMember(EmbeddingMember):
    name = "photo"
    label = "photo"
    view = "whole"

    def image_size(self, data: EvidenceInput) -> int:
        return data.options.photo_size


@register_member
class CropMember(EmbeddingMember):
    name = "crop"
    label = "photo (object crop)"
    view = "crop"


@register_member
class PixelsMember(EmbeddingMember):
    name = "pixels"
    label = "shape and colour"
    view = "crop"

    def backbone(self, data: EvidenceInput) -> str:
        return WEIGHT_FREE_BACKBONE

    def unavailable_reason(self, data: EvidenceInput) -> Optional[str]:
        return None
