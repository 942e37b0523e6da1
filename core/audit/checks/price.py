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

from core.audit.checks.base import AuditContext, Check, CheckResult, register
from core.audit.checks.price_model import (ExpectedPrices, Neighbours, class_sample, expected_prices, SOURCES,
                                           nearest_neighbours, photo_projection, title_features, title_search_vectors)
from core.audit.evidence.folds import audit_duplicate_groups
from core.audit.evidence.title import titles_of

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


def price_suggestion(evidence: dict, price: Optional[float]) -> Optional[float]:
    """The corrected price a price flag suggests: the expected-price model's slip fix (None when it found
    none), or for flags by class statistics (and audits made before the model) the decimal slip that brings
    the price back to its class median."""
    if price is None:
        return None
    if "expected_low" in evidence:
        suggested = evidence.get("suggested_price")
        return None if suggested is None else float(suggested)
    median = evidence.get("class_median")
    return decimal_slip_fix(price, float(median)) if median else None


def price_score(z: np.ndarray, outlier_z: float) -> np.ndarray:
    """2 ** -(z / outlier_z)^2: 1 at the class median, 0.5 at the outlier threshold, towards 0 beyond; 1 for NaN."""
    return np.where(np.isnan(z), 1.0, np.exp2(-np.square(np.nan_to_num(z) / outlier_z)))


def p_value_score(p_value: np.ndarray, alpha: float) -> np.ndarray:
    """p ** (log 0.5 / log alpha): 1 for a price at the heart of its expected distribution, 0.5 at the flag
    threshold `alpha`, towards 0 beyond."""
    return np.power(np.clip(p_value, 0.0, 1.0), np.log(0.5) / np.log(alpha))


@register
class PriceCheck(Check):
    """Prices far outside what similar listings and the listing's class make likely
    (core.audit.checks.price_model), or, without photo and title evidence, per-class outliers on log price
    (median / MAD); the best-fitting class is evidence for the mislabel check either way.

    alpha: a price is an outlier when the expected-price model gives it a p-value below this (0.003, the
        mass beyond 3 sigmas of a normal; chosen on eight datasets in docs/checks.md).
    outlier_z: without the model, the robust z beyond which a price is an outlier (4: honest prices of a
        log-normal class stay within about 2.5, a lost decimal point is 6.6 away at sigma 0.35).
    fit_z: a class "fits" a price when its robust z is within this.
    min_class_prices: classes with fewer prices are not judged by class statistics (and fit nothing).
    min_scale: floor of the log-price scale (0.05 = 5%), for classes of near-identical prices.
    min_neighbour_weight: the model is used when its photo and title sources together weigh at least this
        on the dataset; below it, similar listings do not predict price there and class statistics decide.
    """

    name = "price"
    needs_readable = False

    def __init__(self, *, alpha: float = 0.003, outlier_z: float = 4.0, fit_z: float = 2.5,
                 min_class_prices: int = 8, min_scale: float = 0.05, min_neighbour_weight: float = 0.1):
        self.alpha = alpha
        self.outlier_z = outlier_z
        self.fit_z = fit_z
        self.min_class_prices = min_class_prices
        self.min_scale = min_scale
        self.min_neighbour_weight = min_neighbour_weight

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
        context.progress(0.1, "finding similar listings")
        groups = _copy_groups(context)
        neighbours, unavailable = similar_listings(context, log_price, groups)
        expected = None
        if neighbours and np.isfinite(log_price).sum() >= 2:
            context.progress(0.5, "fitting expected prices")
            control = class_sample(labels, np.isfinite(log_price), groups)
            expected = expected_prices(log_price, [*neighbours, control], stats.median[labels], stats.scale[labels])
        use_model = expected is not None and expected.model.neighbour_weight() >= self.min_neighbour_weight
        if use_model:
            outlier = expected.assessment.p_value < self.alpha
            score = np.where(np.isfinite(log_price), p_value_score(expected.assessment.p_value, self.alpha), 1.0)
        else:
            outlier = np.abs(np.nan_to_num(given_z)) > self.outlier_z
            score = price_score(given_z, self.outlier_z)
        suggested_index = mislabel.map({name: k for k, name in enumerate(classes)}).fillna(-1).astype(int).to_numpy()
        suggested_z = np.where(suggested_index >= 0, z[rows, np.maximum(suggested_index, 0)], np.nan)
        explained = outlier & (np.abs(np.nan_to_num(suggested_z, nan=np.inf)) <= self.fit_z)
        fits_other = (best != labels) & (np.abs(np.nan_to_num(best_z, nan=np.inf)) <= self.fit_z)
        issue = outlier & ~explained
        slips = _slips(expected, np.flatnonzero(outlier)) if use_model else {}
        evidence, reasons = [], []
        for i in rows:
            if np.isnan(given_z[i]) and not (use_model and np.isfinite(expected.assessment.expected[i])):
                evidence.append({})
                reasons.append(None)
                continue
            item = (self._evidence(samples["price"].iat[i], stats, labels[i], given_z[i], best[i], best_z[i],
                                   fits_other[i]) if np.isfinite(given_z[i])
                    else {"price": float(samples["price"].iat[i]), "fits_other_class": False})  # class too small
            if use_model and np.isfinite(expected.assessment.expected[i]):
                item.update(_expected_evidence(i, expected, neighbours, samples, slips.get(i)))
            if explained[i]:
                item["explained_by_mislabel"] = mislabel.iat[i]
            evidence.append(item)
            reasons.append(_reason(item, classes[labels[i]]) if outlier[i] else None)
        issues = pd.DataFrame({
            "is_price_issue": issue,
            "price_score": score,
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
        summary = self._summary(stats, log_price, issue, explained, used_mislabels)
        summary["expected_price"] = self._model_summary(expected, use_model, unavailable)
        return self.result(issues, summary)

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

    def _model_summary(self, expected: Optional[ExpectedPrices], use_model: bool,
                       unavailable: dict[str, str]) -> dict:
        """Which evidence set the expected prices, with what weights, or why class statistics did."""
        summary: dict = {"used": use_model, "alpha": self.alpha, "unavailable": unavailable, "fallback": None}
        if expected is not None:
            summary.update(sigma=expected.model.sigma, weights=expected.model.weights)
        odd = expected.stray_estimate() if use_model else None
        if odd is not None:
            summary["odd_prices"] = {"count": round(odd.count, 1), "low": round(odd.low, 1),
                                     "high": round(odd.high, 1), "of": odd.rows}
        if not use_model:
            summary["fallback"] = (
                "no similar photos or titles to compare prices with: class statistics" if expected is None else
                f"similar photos and titles do not predict price on this dataset (their weight "
                f"{expected.model.neighbour_weight():.2f} < {self.min_neighbour_weight}): class statistics")
        return summary



def _mislabel_suggestions(context: AuditContext) -> tuple[pd.Series, bool]:
    """Suggested label of each sample the mislabel check flagged in this audit (NaN elsewhere),
    and whether the mislabel check ran in this audit before this one."""
    result = context.earlier.get("mislabel")
    if result is None:
        return pd.Series(np.nan, index=context.samples.index, dtype=object), False
    table = result.issues.reindex(context.samples.index)
    flagged = table["is_mislabel_issue"].fillna(False).astype(bool)
    return table["suggested_label"].where(flagged), True


#: How the expected-price model's sources read in summaries.
SOURCE_TEXT = {"photo": "similar photos", "title": "similar titles", "class sample": "the class's prices",
               "class": "the class's median"}


def expected_price_text(summary: dict) -> str:
    """One line on what judged the prices of an audit (its price summary's "expected_price"), e.g.
    "expected prices from similar photos 96%, the class's prices 3%, similar titles 1%" or "class
    statistics: no similar photos or titles to compare prices with"; names the sources not used and why."""
    model = summary.get("expected_price") or {}
    if not model:
        return ""
    if model.get("used"):
        weights = sorted(model["weights"].items(), key=lambda item: -item[1])
        text = "expected prices from " + ", ".join(f"{SOURCE_TEXT.get(name, name)} {weight:.0%}"
                                                   for name, weight in weights if weight >= 0.005)
        odd = model.get("odd_prices")
        if odd:
            text += (f"; about {odd['count']:,.0f} of the {odd['of']:,} prices fit no similar listing (95%: "
                     f"{odd['low']:,.0f}-{odd['high']:,.0f}), {summary.get('flagged', 0):,} flagged")
    else:
        fallback = model.get("fallback") or ""
        text = "class statistics: " + fallback.removesuffix(": class statistics")
    unavailable = model.get("unavailable") or {}
    if unavailable:
        text += "; not used: " + "; ".join(f"{SOURCE_TEXT.get(name, name)} ({why})" for name, why in unavailable.items())
    return text


#: Similar listings named in a price flag's evidence.
SHOWN_SIMILAR = 5
#: Photos whose vectors are read from the embedding cache at a time.
VECTOR_BATCH = 10_000
#: Photos the search's PCA is fitted on.
PCA_SAMPLE = 2_000
#: Titles needed before titles are compared.
MIN_TITLES = 10
#: The mislabel members whose embeddings find similar photos, in order of preference.
PHOTO_KEY_MEMBERS = ("photo", "crop")


def similar_listings(context: AuditContext, log_price: np.ndarray,
                     groups: np.ndarray) -> tuple[list[Neighbours], dict[str, str]]:
    """Each listing's most similar photos and titles among the priced listings (core.audit.checks.price_model),
    and why a source is missing. Photos are those the mislabel check embedded in this audit (read from the
    embedding cache, never computed here); rows of one duplicate group (groups (N,), _copy_groups) are
    never each other's neighbours."""
    samples = context.samples
    priced = np.isfinite(log_price)
    neighbours: list[Neighbours] = []
    unavailable: dict[str, str] = {}
    vectors, embedded, why = _photo_vectors(context)
    if vectors is None:
        unavailable["photo"] = why
    else:
        neighbours.append(nearest_neighbours("photo", vectors, embedded & priced, groups))
    titles = titles_of(samples)
    titled = titles != ""
    if titled.sum() < MIN_TITLES:
        unavailable["title"] = f"fewer than {MIN_TITLES} titles"
    else:
        found = title_search_vectors(title_features(titles[titled]))
        if found is None:
            unavailable["title"] = "too few distinct words in the titles"
        else:
            vectors = np.zeros((len(samples), found.shape[1]), dtype=np.float32)
            vectors[titled] = found
            neighbours.append(nearest_neighbours("title", vectors, titled & priced, groups))
    return neighbours, unavailable


def _copy_groups(context: AuditContext) -> np.ndarray:
    """Duplicate-group id per row, (N,) int64: the duplicate check's groups when it ran in this audit, else
    equal content hashes and near pHashes (core.scan.copies.duplicate_groups); every row its own group
    for samples without hashes."""
    if "content_hash" not in context.samples:
        return np.arange(len(context.samples), dtype=np.int64)
    return audit_duplicate_groups(context.samples, context.earlier)


def _photo_vectors(context: AuditContext) -> tuple[Optional[np.ndarray], np.ndarray, str]:
    """The search vectors of the audited photos ((N, d) float32, zero rows without one), which rows have one,
    and otherwise why there are none."""
    n = len(context.samples)
    nothing = np.zeros(n, dtype=bool)
    mislabel = context.earlier.get("mislabel")
    if mislabel is None:
        return None, nothing, "the mislabel check did not run in this audit (similar photos are found by its embeddings)"
    members = mislabel.summary.get("members") or {}
    key = next((members[name]["key"] for name in PHOTO_KEY_MEMBERS if (members.get(name) or {}).get("key")), None)
    if key is None or context.embeddings is None:
        return None, nothing, "the mislabel check embedded no photos in this audit"
    hashes = context.samples["content_hash"]
    rows_of = {h: rows for h, rows in pd.Series(np.arange(n)).groupby(hashes.to_numpy()).groups.items()}
    distinct = sorted(rows_of)
    sample = [distinct[i] for i in np.random.default_rng(0).permutation(len(distinct))[:PCA_SAMPLE]]
    fitted = list(context.embeddings.get_many(sample, key).values())
    if len(fitted) < 2:
        return None, nothing, "no embedded photos in the cache"
    project = photo_projection(np.stack(fitted))
    vectors: Optional[np.ndarray] = None
    has = nothing.copy()
    for start in range(0, len(distinct), VECTOR_BATCH):
        found = context.embeddings.get_many(distinct[start:start + VECTOR_BATCH], key)
        if not found:
            continue
        projected = project(np.stack(list(found.values())))
        if vectors is None:
            vectors = np.zeros((n, projected.shape[1]), dtype=np.float32)
        for content_hash, vector in zip(found, projected):
            rows = np.asarray(rows_of[content_hash], dtype=np.int64)
            vectors[rows], has[rows] = vector, True
    return vectors, has, ""


def _slips(expected: ExpectedPrices, rows: np.ndarray) -> dict[int, int]:
    """Row -> power of ten whose removal brings its price inside its expected range (only rows that have one)."""
    powers, _ = expected.slip_fixes(rows)
    return {int(row): int(power) for row, power in zip(rows, powers) if power}


def _expected_evidence(row: int, expected: ExpectedPrices, neighbours: list[Neighbours], samples: pd.DataFrame,
                       slip: Optional[int]) -> dict:
    """What the expected-price model says about one row: its range, the weights of the evidence, the prices
    of its most similar listings under the heaviest source it has, and a decimal slip's corrected price."""
    assessment, weights = expected.assessment, expected.model.weights
    price = float(samples["price"].iat[row])
    item = {
        "expected_price": round(float(np.exp(assessment.expected[row])), 2),
        "expected_low": round(float(np.exp(assessment.low[row])), 2),
        "expected_high": round(float(np.exp(assessment.high[row])), 2),
        "p_value": float(f"{assessment.p_value[row]:.3g}"),
        "weights": weights,
    }
    ranked = sorted((found for found in neighbours if found.source in SOURCES and (found.index[row] >= 0).any()),
                    key=lambda found: -weights.get(found.source, 0.0))
    if ranked and weights.get(ranked[0].source, 0.0) > 0:
        found = ranked[0]
        positions = found.index[row][found.index[row] >= 0]
        item["similar_source"] = found.source
        item["similar_count"] = int(len(positions))
        item["similar"] = [{"path": str(samples["path"].iat[j]), "price": round(float(samples["price"].iat[j]), 2)}
                           for j in positions[:SHOWN_SIMILAR]]
    if slip:
        item["suggested_price"] = round(price / 10.0 ** slip, 2)
    return item


def _reason(evidence: dict, label: str) -> str:
    if "expected_low" in evidence:
        text = _expected_reason(evidence, label)
    else:
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


def _expected_reason(evidence: dict, label: str) -> str:
    """E.g. "price 12,990.00 is outside the expected 900.00-1,400.00 (6 similar photos: 1,050.00, 1,200.00, ...;
    laptops median 1,100.00); it looks like 1,299.00"."""
    basis = [f"{label} median {evidence['class_median']:,.2f}"] if "class_median" in evidence else []
    similar = evidence.get("similar") or []
    if similar:
        prices = ", ".join(f"{entry['price']:,.2f}" for entry in similar)
        more = ", ..." if evidence["similar_count"] > len(similar) else ""
        noun = "photos" if evidence["similar_source"] == "photo" else "titles"
        basis.insert(0, f"{evidence['similar_count']} similar {noun}: {prices}{more}")
    text = (f"price {evidence['price']:,.2f} is outside the expected {evidence['expected_low']:,.2f}-"
            f"{evidence['expected_high']:,.2f}" + (f" ({'; '.join(basis)})" if basis else ""))
    if evidence.get("suggested_price"):
        text += f"; it looks like {evidence['suggested_price']:,.2f}"
    return text
