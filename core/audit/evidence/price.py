"""The "price" member: how well a listing's price fits each class, out of fold.

Each fold models every class's training prices as log-normal (the price check's robust median
and scale, core.audit.checks.price.class_price_stats) mixed with a flat density over the observed log
prices, so a typo'd price (x100) fits no class and moves nothing. A row's probabilities are the
class shares of the training part times these fits, normalised. A listing without a usable
price gets a uniform row.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from core.audit.checks.price import class_price_stats, price_likelihood, valid_log_prices
from core.audit.evidence.base import EvidenceInput, Member, MemberOutput, register_member, uniform
from core.audit.evidence.folds import AuditFolds

#: A class needs this many prices for a price model, and PRICE_MIN_CLASSES classes must have one.
PRICE_MIN_CLASS_PRICES = 8
PRICE_MIN_CLASSES = 2
#: Floor of a class's log-price scale (5%), for classes of near-identical prices.
PRICE_MIN_SCALE = 0.05
#: Share of the flat density in each class's price model: prices that fit no class.
PRICE_STRAY_SHARE = 0.05


def log_prices_of(data: EvidenceInput) -> np.ndarray:
    """log(price) of each row, float (N,), NaN where there is no usable price."""
    if "price" not in data.samples:
        return np.full(len(data.samples), np.nan)
    return valid_log_prices(data.samples["price"])


@register_member
class PriceMember(Member):
    name = "price"
    label = "price"

    def unavailable_reason(self, data: EvidenceInput) -> Optional[str]:
        if not data.options.use_price:
            return "price evidence turned off"
        priced = np.isfinite(log_prices_of(data))
        per_class = np.bincount(data.labels[priced], minlength=data.n_classes)
        if (per_class >= PRICE_MIN_CLASS_PRICES).sum() < PRICE_MIN_CLASSES:
            return f"fewer than {PRICE_MIN_CLASSES} classes with {PRICE_MIN_CLASS_PRICES} prices"
        return None

    def out_of_fold(self, data: EvidenceInput, folds: AuditFolds, *,
                    exclude: Optional[np.ndarray] = None) -> MemberOutput:
        log_price = log_prices_of(data)
        priced = np.isfinite(log_price)
        n, k = len(log_price), data.n_classes
        pred_probs = uniform(n, k)
        informative = np.zeros(n, bool)
        explanations: list[Optional[dict]] = [None] * n
        prices = np.exp(np.where(priced, log_price, 0.0))
        for train, held_out in folds.splits(exclude):
            held_out = held_out[priced[held_out]]
            stats = class_price_stats(log_price[train], data.labels[train], data.classes,
                                      min_count=PRICE_MIN_CLASS_PRICES, min_scale=PRICE_MIN_SCALE)
            if len(held_out) == 0 or np.isfinite(stats.median).sum() < PRICE_MIN_CLASSES:
                continue
            share = np.bincount(data.labels[train], minlength=k) + 1.0
            fits = price_likelihood(log_price[held_out], stats, stray_share=PRICE_STRAY_SHARE)
            probs = fits * (share / share.sum())
            pred_probs[held_out] = probs / probs.sum(axis=1, keepdims=True)
            informative[held_out] = True
            best = fits.argmax(1)
            for row, price, fit in zip(held_out, prices[held_out], best):
                explanations[row] = {"price": round(float(price), 2), "fits": data.classes[fit]}
        return MemberOutput(self.name, pred_probs, informative, explanations,
                            details={"priced": int(priced.sum())})
