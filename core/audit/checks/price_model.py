"""The expected price of each listing: the prices of its most similar photos and titles and its class's prices,
mixed with weights that each dataset's own prices decide.

Model. A listing's log price comes from a mixture of sources: "photo" (a kernel density, scale `sigma`, over
the log prices of its K most similar photos), "title" (the same over its K most similar titles) and "class"
(its class's robust log-normal: core.audit.checks.price.class_price_stats). Neighbours never include the listing
itself or its copies (duplicate groups), so every density is a leave-one-out prediction and a re-upload that
carries the same wrong price cannot vouch for it. `sigma` (a grid) and the sources' weights (EM) maximise the
likelihood of the dataset's own prices, with a flat stray share for the typos being looked for. The fit is
done twice: the second time without neighbours whose own price the first fit found implausible, so that a
typo next to its item does not lend it its price.

Surprise. A price's p-value is the model's probability of a price less likely than it: the mass outside the
highest-density region the price lies on the edge of, computed on a grid of log prices per listing. The same
grid gives each listing's expected range (central 95%) and median, and tells whether the price moved by a
power of ten (a decimal slip, an extra zero) would be inside that range.

Pure numpy and scikit-learn: arrays in and out; positions are rows of the caller's table.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
from scipy import sparse
from sklearn.decomposition import PCA, TruncatedSVD

from core.models.neighbours import unit_rows

#: Neighbours per listing and source.
NEIGHBOURS = 20
#: Neighbours are searched among at most this many listings (a fixed random sample), so that the cost grows
#: linearly with the dataset: 100,000 listings x 20,000 candidates x 128 dimensions.
MAX_CANDIDATES = 20_000
#: Photo and title vectors are reduced to this many dimensions (PCA / truncated SVD) before the search.
SEARCH_DIMENSIONS = 128
#: Kernel scales of log price tried; the likeliest is used. Not below 0.3 (about +-35%): the likelihood
#: prefers narrower kernels on some datasets (0.15 on the Fashion demo), but 20 neighbours under a narrow
#: kernel give tails too light, and honest prices twice their item's median came out as typos; from 0.3 up
#: precision rose or held on all eight datasets of docs/checks.md, recall held.
SIGMAS = (0.3, 0.45, 0.6, 0.8)
#: Share of the flat density in the likelihood: prices no source explains (the typos themselves).
STRAY_SHARE = 0.05
#: The drop in log-likelihood that bounds a 95% profile-likelihood interval (chi-squared, 1 df: 3.84 / 2).
PROFILE_DROP = 1.92
EM_ROUNDS = 80
#: A neighbour whose own price has a p-value below this in the first fit does not count in the second. Above
#: the flag threshold on purpose: two typos of one kind of item (two dresses at 100x) vouch for each other
#: in the first fit, each getting about one neighbour's share of the mass (0.01-0.02 on the Fashion demo).
IMPLAUSIBLE_P = 0.03
#: Points of each listing's grid of log prices, and the margin (in sigmas and class scales) beyond its sources.
GRID_POINTS = 256
GRID_MARGIN = 4.0
#: The expected range shown: the central 95% of a listing's predictive distribution.
RANGE_MASS = 0.95
#: Powers of ten tried as slips (x0.001 ... x1000).
SLIP_POWERS = (-3, -2, -1, 1, 2, 3)
#: A slip is suggested when the corrected price has at least this p-value (inside the 95% range).
SLIP_MIN_P = 0.05
#: Listings of its class a row's "class sample" source holds: the control the similar listings must beat.
CLASS_SAMPLE = 40
#: Sources made of similar listings; the other two are the row's class, as a kernel density over a random
#: sample of its listings ("class sample") and as a robust log-normal ("class").
SOURCES = ("photo", "title")
CLASS_SAMPLE_SOURCE = "class sample"
CLASS_SOURCE = "class"
ROW_CHUNK = 512


@dataclass(frozen=True)
class Neighbours:
    """The K most similar listings of every listing under one source.

    index: (N, K) int64 positions, most similar first, -1 where there are fewer.
    """

    source: str
    index: np.ndarray


@dataclass(frozen=True)
class PriceModel:
    """A fitted mixture: the kernel scale of log price and the weight of each source (sum 1)."""

    sigma: float
    weights: dict[str, float]
    log_likelihood: float

    def neighbour_weight(self) -> float:
        """Weight of the similar-listing sources (photo, title) together: how much better than listings of the
        same class picked at random they predict price on this dataset."""
        return float(sum(weight for source, weight in self.weights.items() if source in SOURCES))


@dataclass(frozen=True)
class Assessment:
    """Per listing, shape (N,): p-value of its price, expected median and central-95% range (prices, NaN where
    the model has nothing to say)."""

    p_value: np.ndarray
    expected: np.ndarray
    low: np.ndarray
    high: np.ndarray


def photo_projection(sample: np.ndarray, *, seed: int = 0) -> Callable[[np.ndarray], np.ndarray]:
    """A map from photo embeddings (n, D) to unit vectors of at most SEARCH_DIMENSIONS dimensions: PCA fitted
    on the unit rows of `sample` (m, D), a few thousand photos of the dataset; unit rows alone when D is
    small or the sample too."""
    unit = unit_rows(sample)
    dimensions = min(SEARCH_DIMENSIONS, unit.shape[0] - 1, unit.shape[1])
    if unit.shape[1] <= SEARCH_DIMENSIONS or dimensions < 2:
        return unit_rows
    pca = PCA(dimensions, svd_solver="randomized", random_state=seed).fit(unit)
    return lambda vectors: unit_rows(pca.transform(unit_rows(vectors)))


def title_features(titles: np.ndarray):
    """TF-IDF of the titles' words and word pairs (the title member's word features,
    core.audit.evidence.title.TitleFeatures), sparse (n, V); titles: non-empty strings, (n,)."""
    from core.audit.evidence.title import TitleFeatures

    try:
        return TitleFeatures().words.fit_transform(titles)
    except ValueError:  # no words at all (titles of digits and punctuation)
        return sparse.csr_matrix((len(titles), 0))


def title_search_vectors(features, *, seed: int = 0) -> Optional[np.ndarray]:
    """TF-IDF rows (sparse, N x V) as unit vectors of at most SEARCH_DIMENSIONS dimensions (truncated SVD);
    None when the vocabulary is too small to compare titles."""
    dimensions = min(SEARCH_DIMENSIONS, features.shape[1] - 1, features.shape[0] - 1)
    if dimensions < 2:
        return None
    return unit_rows(TruncatedSVD(dimensions, random_state=seed).fit_transform(features))


def nearest_neighbours(source: str, vectors: np.ndarray, usable: np.ndarray, groups: np.ndarray, *,
                       k: int = NEIGHBOURS, max_candidates: int = MAX_CANDIDATES, seed: int = 0) -> Neighbours:
    """The k most similar usable rows of every usable row, by cosine of `vectors` (N, D, unit rows).

    usable: (N,) bool, rows that have this source and a price; groups: (N,) int duplicate-group ids, a row's
    own group is never its neighbour. Candidates are the usable rows, at most `max_candidates` of them (a
    fixed random sample). Rows that are not usable get no neighbours.
    """
    n = len(vectors)
    index = np.full((n, k), -1, dtype=np.int64)
    candidates = np.flatnonzero(usable)
    if len(candidates) > max_candidates:
        candidates = np.sort(np.random.default_rng(seed).choice(candidates, max_candidates, replace=False))
    if len(candidates) < 2:
        return Neighbours(source, index)
    reference, reference_groups = vectors[candidates], groups[candidates]
    queries = np.flatnonzero(usable)
    take = min(k, len(candidates) - 1)
    for start in range(0, len(queries), ROW_CHUNK):
        rows = queries[start:start + ROW_CHUNK]
        scores = vectors[rows] @ reference.T
        scores[groups[rows][:, None] == reference_groups[None, :]] = -np.inf
        top = np.argpartition(-scores, take - 1, axis=1)[:, :take]
        top_scores = np.take_along_axis(scores, top, axis=1)
        order = np.argsort(-top_scores, axis=1, kind="stable")
        top, top_scores = np.take_along_axis(top, order, 1), np.take_along_axis(top_scores, order, 1)
        found = np.isfinite(top_scores)
        index[rows, :take] = np.where(found, candidates[top], -1)
    return Neighbours(source, index)


def class_sample(labels: np.ndarray, usable: np.ndarray, groups: np.ndarray, *, size: int = CLASS_SAMPLE,
                 seed: int = 0) -> Neighbours:
    """For every usable row, up to `size` usable rows of its class (labels (N,) int) drawn at random once per
    class, never itself or its copies (groups (N,)): a kernel density of the class's prices that makes no
    assumption about their shape, the control that similar photos and titles are weighed against."""
    n = len(labels)
    index = np.full((n, size), -1, dtype=np.int64)
    rng = np.random.default_rng(seed)
    for label in np.unique(labels[usable]):
        members = np.flatnonzero(usable & (labels == label))
        drawn = rng.permutation(members)[:size + 1]
        chosen = np.broadcast_to(drawn, (len(members), len(drawn))).copy()
        chosen[groups[chosen] == groups[members][:, None]] = -1
        kept = np.argsort(chosen < 0, axis=1, kind="stable")[:, :size]  # drop the row itself, keep `size`
        chosen = np.take_along_axis(chosen, kept, axis=1)
        index[members, :chosen.shape[1]] = chosen
    return Neighbours(CLASS_SAMPLE_SOURCE, index)


def neighbour_weights(neighbours: Neighbours, log_price: np.ndarray,
                      dropped: Optional[np.ndarray] = None) -> np.ndarray:
    """Kernel weight of each neighbour, (N, K): equal over the neighbours with a price that are not
    `dropped` ((N,) bool over rows), rows summing to 1 or 0 when none is left."""
    valid = neighbours.index >= 0
    safe = np.where(valid, neighbours.index, 0)
    valid &= np.isfinite(log_price[safe])
    if dropped is not None:
        valid &= ~dropped[safe]
    counts = valid.sum(axis=1, keepdims=True)
    return np.where(valid, 1.0 / np.maximum(counts, 1), 0.0)


class _Sources:
    """The sources' centres and weights for a block of rows, evaluated on points of log price."""

    def __init__(self, log_price: np.ndarray, neighbours: list[Neighbours], kernel_weights: list[np.ndarray],
                 class_median: np.ndarray, class_scale: np.ndarray):
        self.names = [n.source for n in neighbours] + [CLASS_SOURCE]
        self.centres = [log_price[np.where(n.index >= 0, n.index, 0)] for n in neighbours]
        self.kernel_weights = kernel_weights
        self.class_median, self.class_scale = class_median, class_scale

    def available(self, rows: np.ndarray) -> np.ndarray:
        """(n, C) bool: which sources row has."""
        have = [weights[rows].sum(axis=1) > 0 for weights in self.kernel_weights]
        have.append(np.isfinite(self.class_median[rows]))
        return np.stack(have, axis=1)

    def densities(self, rows: np.ndarray, points: np.ndarray, sigma: float) -> np.ndarray:
        """(n, m, C) density of each source at `points` (n, m) of log price (0 where a source is missing).
        float32: the kernels are the price check's cost (N x 256 points x 80 centres, twice)."""
        points = points.astype(np.float32)
        norm = np.float32(1.0 / (sigma * np.sqrt(2 * np.pi)))
        out = []
        for centres, weights in zip(self.centres, self.kernel_weights):
            z = (points[:, :, None] - centres[rows].astype(np.float32)[:, None, :]) * np.float32(1.0 / sigma)
            kernels = np.exp(np.float32(-0.5) * z * z)
            out.append(np.matmul(kernels, weights[rows].astype(np.float32)[:, :, None])[:, :, 0] * norm)
        median, scale = self.class_median[rows], self.class_scale[rows]
        known = np.isfinite(median)
        z = (points - np.where(known, median, 0.0)[:, None]) / np.where(known, scale, 1.0)[:, None]
        out.append(np.where(known[:, None], np.exp(-0.5 * z * z) / (np.where(known, scale, 1.0)[:, None]
                                                                     * np.sqrt(2 * np.pi)), 0.0))
        return np.stack(out, axis=2)


def _mix(densities: np.ndarray, available: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(n, m) mixture density: the sources a row has, with their weights renormalised over them."""
    row_weights = available * weights[None, :]
    total = row_weights.sum(axis=1, keepdims=True)
    return (densities * (row_weights / np.where(total > 0, total, 1.0))[:, None, :]).sum(axis=2)


def _fit_weights(own: np.ndarray, available: np.ndarray, flat: float) -> tuple[np.ndarray, float]:
    """EM for the sources' weights given each row's density under each source at its own price, (n, C)."""
    weights = np.full(own.shape[1], 1.0 / own.shape[1])
    for _ in range(EM_ROUNDS):
        row_weights = available * weights
        row_weights /= np.maximum(row_weights.sum(axis=1, keepdims=True), 1e-300)
        mixture = (own * row_weights).sum(axis=1)
        responsibility = (1 - STRAY_SHARE) * own * row_weights / ((1 - STRAY_SHARE) * mixture + STRAY_SHARE * flat)[:, None]
        weights = responsibility.sum(axis=0) / max(responsibility.sum(), 1e-300)
    row_weights = available * weights
    row_weights /= np.maximum(row_weights.sum(axis=1, keepdims=True), 1e-300)
    likelihood = np.log((1 - STRAY_SHARE) * (own * row_weights).sum(axis=1) + STRAY_SHARE * flat).sum()
    return weights, float(likelihood)


def _fit(log_price: np.ndarray, sources: _Sources, rows: np.ndarray) -> PriceModel:
    span = float(np.ptp(log_price[rows])) if len(rows) else 1.0
    flat = 1.0 / max(span, 1.0)
    available = sources.available(rows)
    best: Optional[PriceModel] = None
    for sigma in SIGMAS:
        own = sources.densities(rows, log_price[rows][:, None], sigma)[:, 0, :]
        weights, likelihood = _fit_weights(own, available, flat)
        if best is None or likelihood > best.log_likelihood:
            best = PriceModel(sigma, {name: round(float(w), 4) for name, w in zip(sources.names, weights)}, likelihood)
    return best


def _grid(log_price: np.ndarray, sources: _Sources, rows: np.ndarray, sigma: float) -> np.ndarray:
    """(n, GRID_POINTS) log prices spanning each row's sources and its own price, with a margin."""
    low, high = log_price[rows].copy(), log_price[rows].copy()
    for centres, weights in zip(sources.centres, sources.kernel_weights):
        used = weights[rows] > 0
        low = np.minimum(low, np.where(used, centres[rows], np.inf).min(axis=1) - GRID_MARGIN * sigma)
        high = np.maximum(high, np.where(used, centres[rows], -np.inf).max(axis=1) + GRID_MARGIN * sigma)
    median, scale = sources.class_median[rows], sources.class_scale[rows]
    known = np.isfinite(median)
    low = np.where(known, np.minimum(low, median - GRID_MARGIN * scale), low)
    high = np.where(known, np.maximum(high, median + GRID_MARGIN * scale), high)
    steps = np.linspace(0.0, 1.0, GRID_POINTS)
    return low[:, None] + (high - low)[:, None] * steps[None, :]


def _tail_mass(grid_density: np.ndarray, query_density: np.ndarray) -> np.ndarray:
    """(n, q) mass of each row's grid density (n, m) where it is no higher than each query density (n, q)."""
    mass = grid_density / np.maximum(grid_density.sum(axis=1, keepdims=True), 1e-300)
    return np.stack([(mass * (grid_density <= query_density[:, [j]])).sum(axis=1)
                     for j in range(query_density.shape[1])], axis=1)


def _assess(log_price: np.ndarray, sources: _Sources, model: PriceModel, rows: np.ndarray,
            queries: Optional[np.ndarray] = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """p-values of `queries` ((n, q) log prices, default each row's own), and each row's median, low and high."""
    weights = np.array([model.weights[name] for name in sources.names])
    queries = log_price[rows][:, None] if queries is None else queries
    p, median, low, high = (np.empty((len(rows), queries.shape[1])), np.empty(len(rows)), np.empty(len(rows)),
                            np.empty(len(rows)))
    for start in range(0, len(rows), ROW_CHUNK):
        part = slice(start, start + ROW_CHUNK)
        block = rows[part]
        available = sources.available(block)
        grid = _grid(log_price, sources, block, model.sigma)
        density = _mix(sources.densities(block, grid, model.sigma), available, weights)
        at_query = _mix(sources.densities(block, queries[part], model.sigma), available, weights)
        p[part] = _tail_mass(density, at_query)
        cumulative = np.cumsum(density, axis=1)
        cumulative /= np.maximum(cumulative[:, -1:], 1e-300)
        position = lambda q: grid[np.arange(len(block)), np.minimum((cumulative < q).sum(axis=1), GRID_POINTS - 1)]
        median[part], low[part], high[part] = (position(0.5), position((1 - RANGE_MASS) / 2),
                                               position((1 + RANGE_MASS) / 2))
    return p, median, low, high


@dataclass(frozen=True)
class StrayEstimate:
    """How many assessed prices no source explains ("odd prices": typos, and honest prices nothing predicts):
    `count` of `rows`, with the 95% interval [low, high]."""

    count: float
    low: float
    high: float
    rows: int


class ExpectedPrices:
    """The fitted mixture of a dataset and its assessment of every price (`model`, `assessment`)."""

    def __init__(self, log_price: np.ndarray, sources: _Sources, model: PriceModel, assessment: Assessment):
        self.log_price, self._sources, self.model, self.assessment = log_price, sources, model, assessment

    def slip_fixes(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For each of `rows` (assessed positions): the power of ten that brings its price furthest inside its
        expected distribution, and that corrected price's p-value; power 0 where no slip reaches SLIP_MIN_P.
        Returns (powers (n,) int64, p-values (n,))."""
        rows = np.asarray(rows, dtype=np.int64)
        if len(rows) == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        queries = self.log_price[rows][:, None] - np.array(SLIP_POWERS)[None, :] * np.log(10.0)
        p = _assess(self.log_price, self._sources, self.model, rows, queries)[0]
        best = p.argmax(axis=1)
        best_p = p[np.arange(len(rows)), best]
        return np.where(best_p >= SLIP_MIN_P, np.array(SLIP_POWERS)[best], 0).astype(np.int64), best_p


    def stray_estimate(self, *, rounds: int = 200) -> Optional[StrayEstimate]:
        """How many of the assessed prices no source explains: the share of the flat density in the mixture,
        fitted by EM on those prices (the sources' weights as fitted; the fit itself keeps STRAY_SHARE fixed),
        times the rows, with a 95% interval from the share's profile likelihood. On nine demos it came within
        0.6-1.25x of the planted typos (docs/checks.md). None when fewer than two prices were assessed."""
        rows = np.flatnonzero(np.isfinite(self.assessment.expected))
        if len(rows) < 2:
            return None
        sources, model, log_price = self._sources, self.model, self.log_price
        weights = np.array([model.weights[name] for name in sources.names])
        own = np.concatenate([
            _mix(sources.densities(block, log_price[block][:, None], model.sigma), sources.available(block),
                 weights)[:, 0]
            for block in (rows[start:start + ROW_CHUNK] for start in range(0, len(rows), ROW_CHUNK))
        ]).astype(np.float64)
        flat = 1.0 / max(float(np.ptp(log_price[rows])), 1.0)
        share = STRAY_SHARE
        for _ in range(rounds):
            share = float(np.mean(share * flat / (share * flat + (1 - share) * own)))
        log_likelihood = lambda s: float(np.log(np.maximum(s * flat + (1 - s) * own, 1e-300)).sum())
        drop = log_likelihood(share) - PROFILE_DROP
        n = len(rows)
        return StrayEstimate(share * n, _crossing(log_likelihood, drop, share, 0.0) * n,
                             _crossing(log_likelihood, drop, share, 1.0) * n, n)


def _crossing(log_likelihood: Callable[[float], float], level: float, inside: float, edge: float) -> float:
    """Where the concave `log_likelihood` falls to `level` between `inside` (above it) and `edge` (bisection);
    `edge` itself when it never falls that low."""
    if log_likelihood(edge) >= level:
        return edge
    for _ in range(50):
        middle = (inside + edge) / 2
        inside, edge = (middle, edge) if log_likelihood(middle) >= level else (inside, middle)
    return (inside + edge) / 2


def expected_prices(log_price: np.ndarray, neighbours: list[Neighbours], class_median: np.ndarray,
                    class_scale: np.ndarray) -> ExpectedPrices:
    """Fit the mixture on the dataset's prices and assess every price.

    log_price: (N,), NaN without a usable price; neighbours: per source (Neighbours of the same N rows);
    class_median, class_scale: (N,) the robust log-price statistics of each row's class (NaN where its class
    has too few prices). Rows without a price, or with no source at all, get p-value 1 and NaN ranges.
    """
    n = len(log_price)
    p_value, expected, low, high = np.ones(n), np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan)
    sources = _Sources(log_price, neighbours, [neighbour_weights(found, log_price) for found in neighbours],
                       class_median, class_scale)
    priced = np.flatnonzero(np.isfinite(log_price))
    rows = priced[sources.available(priced).any(axis=1)]
    if len(rows) < 2:
        model = PriceModel(SIGMAS[0], {name: 0.0 for name in sources.names}, 0.0)
        return ExpectedPrices(log_price, sources, model, Assessment(p_value, expected, low, high))
    first = np.ones(n)
    first[rows] = _assess(log_price, sources, _fit(log_price, sources, rows), rows)[0][:, 0]
    implausible = first < IMPLAUSIBLE_P
    sources = _Sources(log_price, neighbours,
                       [neighbour_weights(found, log_price, implausible) for found in neighbours],
                       class_median, class_scale)
    rows = rows[sources.available(rows).any(axis=1)]
    model = _fit(log_price, sources, rows)
    p, median, row_low, row_high = _assess(log_price, sources, model, rows)
    p_value[rows], expected[rows], low[rows], high[rows] = p[:, 0], median, row_low, row_high
    return ExpectedPrices(log_price, sources, model, Assessment(p_value, expected, low, high))
