"""The `price` check: listing prices far from their class's typical price, by robust statistics on log price.

Per class (the current label): median and MAD-based scale of log(price). A
price is an outlier when its robust z = (log price - median) / scale is beyond
`outlier_z`. Prices are compared on a log scale because listing prices are
multiplicative (a typo multiplies by 10 or 100) and log-normal-ish. Missing or
non-positive prices are never outliers. The class whose distribution fits the
price best is evidence for a mislabel; when this audit's mislabel check flagged
the sample and the price fits its suggested class, the odd price is explained by
the label and is not flagged as a price problem.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np
import pandas as pd

from core.checks.base import AuditContext, Check, CheckResult, register

MAD_TO_SD = 1.4826
#: The typical range shown in the evidence: median * exp(+-TYPICAL_Z * scale), about 95% of a log-normal class.
TYPICAL_Z = 2.0


@dataclass(frozen=True)
class ClassPriceStats:
    """Robust log-price statistics of each class, arrays of shape (K,) in class order.

    median, scale: of log(price), NaN for classes with too few prices; count: prices used.
    """

    classes: list[str]
    median: np.ndarray
    scale: np.ndarray
    count: np.ndarray

    def z_scores(self, log_price: np.ndarray) -> np.ndarray:
        """Robust z of each log price under each class, shape (N, K); NaN where unknown."""
        return (log_price[:, None] - self.median[None, :]) / self.scale[None, :]


def valid_log_prices(prices: pd.Series) -> np.ndarray:
    """log(price), shape (N,); NaN for missing, zero, negative or infinite prices."""
    values = prices.to_numpy(dtype=float)
    usable = np.isfinite(values) & (values > 0)
    return np.where(usable, np.log(np.where(usable, values, 1.0)), np.nan)


def class_price_stats(log_price: np.ndarray, labels: np.ndarray, classes: list[str], *,
                      min_count: int, min_scale: float) -> ClassPriceStats:
    """Median and scale (1.4826 * MAD, at least min_scale) of log price per class.

    log_price: shape (N,), NaN for no price; labels: class indices, shape (N,).
    Classes with fewer than min_count prices get NaN.
    """
    median = np.full(len(classes), np.nan)
    scale = np.full(len(classes), np.nan)
    count = np.zeros(len(classes), dtype=np.int64)
    for k in range(len(classes)):
        values = log_price[(labels == k) & np.isfinite(log_price)]
        count[k] = len(values)
        if len(values) >= min_count:
            median[k] = np.median(values)
            scale[k] = max(MAD_TO_SD * float(np.median(np.abs(values - median[k]))), min_scale)
    return ClassPriceStats(list(classes), median, scale, count)


def price_likelihood(log_price: np.ndarray, stats: ClassPriceStats, *, stray_share: float) -> np.ndarray:
    """How well each price fits each class: a density of log price per class, shape (N, K), up to a
    factor common to the row.

    Each class is log-normal (its robust median and scale) mixed with a flat density over the
    observed range of log prices, weight `stray_share`, so a typo'd price (x100) fits no class and
    says nothing about the label instead of pointing at whichever class is least far. A row without
    a usable price is all ones; a class without statistics gets the row's mean over the known classes.
    """
    known = np.isfinite(stats.median)
    likelihood = np.ones((len(log_price), len(stats.classes)))
    priced = np.isfinite(log_price)
    if not known.any() or not priced.any():
        return likelihood
    low, high = np.min(log_price[priced]), np.max(log_price[priced])
    flat = 1.0 / max(high - low, 1.0)
    z = stats.z_scores(log_price[priced])[:, known]
    normal = np.exp(-0.5 * np.square(z)) / (np.sqrt(2 * np.pi) * stats.scale[known])
    fits = (1 - stray_share) * normal + stray_share * flat
    likelihood[np.ix_(priced, known)] = fits
    likelihood[np.ix_(priced, ~known)] = fits.mean(axis=1, keepdims=True)
    return likelihood


def decimal_slip_fix(price: float, class_median: float) -> Optional[float]:
    """The price with its decimal point moved back, when it is a power of ten (at least 10x) away from the
    class median: 129900 in a class whose median is 1150 -> 1299.0; None when no such slip explains it."""
    if not (price > 0 and class_median > 0):
        return None
    shift = round(math.log10(price / class_median))
    return round(price / 10 ** shift, 2) if shift else None


def price_score(z: np.ndarray, outlier_z: float) -> np.ndarray:
    """2 ** -(z / outlier_z)^2: 1 at the class median, 0.5 at the outlier threshold, towards 0 beyond; 1 for NaN."""
    return np.where(np.isnan(z), 1.0, np.exp2(-np.square(np.nan_to_num(z) / outlier_z)))


@register
class PriceCheck(Check):
    """Per-class price outliers on log price (median / MAD), with the best-fitting class as evidence.

    outlier_z: robust z beyond which a price is an outlier (4: honest prices of a
        log-normal class stay within about 2.5, a lost decimal point is 6.6 away at sigma 0.35).
    fit_z: a class "fits" a price when its robust z is within this.
    min_class_prices: classes with fewer prices are not judged (and fit nothing).
    min_scale: floor of the log-price scale (0.05 = 5%), for classes of near-identical prices.
    """

    name = "price"
    needs_readable = False

    def __init__(self, *, outlier_z: float = 4.0, fit_z: float = 2.5, min_class_prices: int = 8,
                 min_scale: float = 0.05):
        self.outlier_z = outlier_z
        self.fit_z = fit_z
        self.min_class_prices = min_class_prices
        self.min_scale = min_scale

    def find_issues(self, context: AuditContext) -> CheckResult:
        samples = context.samples
        classes = context.classes
        labels = context.label_indices()
        log_price = valid_log_prices(samples["price"])
        mislabel, used_mislabels = _mislabel_suggestions(context)
        stats = self._class_stats(log_price, labels, classes, suspected=mislabel.notna().to_numpy())
        z = stats.z_scores(log_price)
        rows = np.arange(len(samples))
        given_z = z[rows, labels]
        best = np.nan_to_num(np.abs(z), nan=np.inf).argmin(axis=1)
        best_z = z[rows, best]
        outlier = np.abs(np.nan_to_num(given_z)) > self.outlier_z
        suggested_index = mislabel.map({name: k for k, name in enumerate(classes)}).fillna(-1).astype(int).to_numpy()
        suggested_z = np.where(suggested_index >= 0, z[rows, np.maximum(suggested_index, 0)], np.nan)
        explained = outlier & (np.abs(np.nan_to_num(suggested_z, nan=np.inf)) <= self.fit_z)
        fits_other = (best != labels) & (np.abs(np.nan_to_num(best_z, nan=np.inf)) <= self.fit_z)
        issue = outlier & ~explained
        evidence, reasons = [], []
        for i in rows:
            if np.isnan(given_z[i]):
                evidence.append({})
                reasons.append(None)
                continue
            evidence.append(self._evidence(samples["price"].iat[i], stats, labels[i], given_z[i], best[i], best_z[i],
                                           fits_other[i]))
            if explained[i]:
                evidence[-1]["explained_by_mislabel"] = mislabel.iat[i]
            reasons.append(_reason(evidence[-1], classes[labels[i]]) if outlier[i] else None)
        issues = pd.DataFrame({
            "is_price_issue": issue,
            "price_score": price_score(given_z, self.outlier_z),
            "suggested_label": None,
            "group": None,
            "reason": reasons,
            "evidence": evidence,
            "price_z": given_z,
            "best_class": [classes[k] for k in best],
            "price_fits_other_class": fits_other,
            "explained_by_mislabel": explained,
        }, index=samples.index)
        context.progress(1.0, f"{int(issue.sum())} price outliers")
        return self.result(issues, self._summary(stats, log_price, issue, explained, used_mislabels))

    def _class_stats(self, log_price: np.ndarray, labels: np.ndarray, classes: list[str], *,
                     suspected: np.ndarray) -> ClassPriceStats:
        """Class statistics without the samples this audit thinks are mislabelled (their prices belong to
        another class); a class left with too few prices that way uses all of its prices."""
        options = dict(min_count=self.min_class_prices, min_scale=self.min_scale)
        cleaned = class_price_stats(np.where(suspected, np.nan, log_price), labels, classes, **options)
        every = class_price_stats(log_price, labels, classes, **options)
        fallback = np.isnan(cleaned.median)
        return ClassPriceStats(classes, np.where(fallback, every.median, cleaned.median),
                               np.where(fallback, every.scale, cleaned.scale),
                               np.where(fallback, every.count, cleaned.count))

    def _evidence(self, price: float, stats: ClassPriceStats, label: int, given_z: float, best: int,
                  best_z: float, fits_other: bool) -> dict:
        median, scale = float(np.exp(stats.median[label])), float(stats.scale[label])
        return {
            "price": float(price),
            "class_median": round(median, 2),
            "typical_low": round(median * float(np.exp(-TYPICAL_Z * scale)), 2),
            "typical_high": round(median * float(np.exp(TYPICAL_Z * scale)), 2),
            "z": round(float(given_z), 2),
            "ratio_to_median": round(float(price) / median, 3),
            "best_class": stats.classes[best],
            "best_class_median": round(float(np.exp(stats.median[best])), 2),
            "best_class_z": round(float(best_z), 2),
            "fits_other_class": bool(fits_other),
        }

    def _summary(self, stats: ClassPriceStats, log_price: np.ndarray, issue: np.ndarray, explained: np.ndarray,
                 used_mislabels: bool) -> dict:
        return {
            "priced": int(np.isfinite(log_price).sum()),
            "without_price": int((~np.isfinite(log_price)).sum()),
            "flagged": int(issue.sum()),
            "explained_by_mislabel": int(explained.sum()),
            "used_mislabel_result": used_mislabels,
            "outlier_z": self.outlier_z,
            "classes": {
                name: {"prices": int(stats.count[k]),
                       "median": None if np.isnan(stats.median[k]) else round(float(np.exp(stats.median[k])), 2),
                       "log_scale": None if np.isnan(stats.scale[k]) else round(float(stats.scale[k]), 3)}
                for k, name in enumerate(stats.classes)
            },
        }


def _mislabel_suggestions(context: AuditContext) -> tuple[pd.Series, bool]:
    """Suggested label of each sample the mislabel check flagged in this audit (NaN elsewhere),
    and whether the mislabel check ran in this audit before this one."""
    result = context.earlier.get("mislabel")
    if result is None:
        return pd.Series(np.nan, index=context.samples.index, dtype=object), False
    table = result.issues.reindex(context.samples.index)
    flagged = table["is_mislabel_issue"].fillna(False).astype(bool)
    return table["suggested_label"].where(flagged), True


def _reason(evidence: dict, label: str) -> str:
    # from the prices, not the rounded ratio: 0.01 against a median of 200 rounds to a ratio of 0.0
    ratio = evidence["price"] / max(evidence["class_median"], 0.01)
    factor = f"{ratio:.1f}x" if ratio >= 1 else f"1/{1 / ratio:,.1f}"
    text = (f"price {evidence['price']:,.2f} is {factor} the {label} median {evidence['class_median']:,.2f} "
            f"(typical {evidence['typical_low']:,.2f}-{evidence['typical_high']:,.2f})")
    if evidence.get("explained_by_mislabel"):
        return text + f"; it fits {evidence['explained_by_mislabel']}, the label the mislabel check suggests"
    if evidence["fits_other_class"]:
        return text + f"; it fits {evidence['best_class']} (median {evidence['best_class_median']:,.2f}) much better"
    return text
