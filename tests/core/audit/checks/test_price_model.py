"""The expected-price model on listings whose prices vary by item inside a class, as real listings do."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.audit.checks.base import AuditContext
from core.audit.checks.price import (PriceCheck, class_price_stats, expected_price_text, price_suggestion,
                                     valid_log_prices)
from core.audit.checks.price_model import (class_sample, expected_prices, nearest_neighbours, photo_projection,
                                           title_features, title_search_vectors)

#: class -> (item words, median price) of its kinds of item: one class spans a 100-fold range of prices.
ITEMS = {
    "laptop": [("dell xps 13 laptop", 1200.0), ("laptop sleeve neoprene", 15.0), ("laptop charger usb-c", 35.0)],
    "phone": [("iphone 12 pro", 550.0), ("phone case silicone", 8.0), ("screen protector glass", 5.0)],
    "bike": [("road bike carbon frame", 900.0), ("bike helmet", 30.0), ("bike lights set", 12.0)],
}
PER_ITEM = 24
SIGMA = 0.3
EXTRA_WORDS = ["used", "good condition", "like new", "boxed", "quick sale", "", "pick up only", "barely used"]


def item_listings(seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """PER_ITEM honest listings of every item (log-normal prices around the item's median, titles naming the
    item), indexed by sample id, and photo vectors (N, 64) clustered by item."""
    rng = np.random.default_rng(seed)
    centres = {words: rng.standard_normal(64) for items in ITEMS.values() for words, _ in items}
    rows, vectors = [], []
    for label, items in ITEMS.items():
        for words, median in items:
            for _ in range(PER_ITEM):
                price = median * float(np.exp(np.clip(SIGMA * rng.standard_normal(), -2.5 * SIGMA, 2.5 * SIGMA)))
                title = f"{words} {EXTRA_WORDS[rng.integers(len(EXTRA_WORDS))]}".strip()
                rows.append({"label": label, "price": round(price, 2), "title": title.capitalize(), "item": words})
                vectors.append(centres[words] + 0.3 * rng.standard_normal(64))
    frame = pd.DataFrame(rows)
    frame.index = pd.RangeIndex(1, len(frame) + 1, name="id")
    frame["path"] = [f"{label}/{i}.jpg" for i, label in zip(frame.index, frame["label"])]
    frame["readable"] = True
    return frame, np.array(vectors, dtype=np.float32)


def retype(samples: pd.DataFrame, item: str, factor: float, number: int = 0) -> int:
    """Multiply the price of the `number`-th listing of `item` by `factor` (a typo); returns its sample id."""
    sample_id = int(samples.index[samples["item"] == item][number])
    samples.loc[sample_id, "price"] = round(float(samples.at[sample_id, "price"]) * factor, 2)
    return sample_id


def class_rows(samples: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Each row's class median and scale of log price, (N,) each."""
    classes = sorted(ITEMS)
    labels = samples["label"].map({name: k for k, name in enumerate(classes)}).to_numpy()
    stats = class_price_stats(valid_log_prices(samples["price"]), labels, classes, min_count=8, min_scale=0.05)
    return stats.median[labels], stats.scale[labels]


def sources(samples: pd.DataFrame, vectors: np.ndarray, groups: np.ndarray | None = None) -> list:
    """Photo neighbours by `vectors` and the class-sample control, as the price check passes them."""
    log_price = valid_log_prices(samples["price"])
    groups = np.arange(len(samples)) if groups is None else groups
    labels = samples["label"].map({name: k for k, name in enumerate(sorted(ITEMS))}).to_numpy()
    return [nearest_neighbours("photo", photo_projection(vectors)(vectors), np.isfinite(log_price), groups),
            class_sample(labels, np.isfinite(log_price), groups)]


def test_item_prices_inside_a_class_are_expected_and_only_the_typos_are_flagged():
    samples, vectors = item_listings()
    typos = [retype(samples, "laptop sleeve neoprene", 100.0), retype(samples, "dell xps 13 laptop", 0.01),
             retype(samples, "bike helmet", 10.0), retype(samples, "iphone 12 pro", 10.0)]
    log_price = valid_log_prices(samples["price"])
    median, scale = class_rows(samples)
    fitted = expected_prices(log_price, sources(samples, vectors), median, scale)
    flagged = set(samples.index[fitted.assessment.p_value < 0.003])
    assert flagged == set(typos)
    assert fitted.model.weights["photo"] > 0.8  # the photos predict price here, and the fit says so
    # class statistics alone cannot see a sleeve typed at a laptop's price: it is typical of its class
    sleeve = samples.index.get_loc(typos[0])
    assert abs(log_price[sleeve] - median[sleeve]) / scale[sleeve] < 4
    assert 5 < np.exp(fitted.assessment.low[sleeve]) < 15 < np.exp(fitted.assessment.high[sleeve]) < 40


def test_neighbours_are_out_of_fold_never_the_listing_or_its_copies():
    samples, vectors = item_listings()
    log_price = valid_log_prices(samples["price"])
    groups = np.arange(len(samples))
    groups[1] = groups[0]  # rows 0 and 1 are copies of one photo
    found, control = sources(samples, vectors, groups)
    rows = np.arange(len(samples))[:, None]
    for each in (found, control):
        assert not (each.index == rows).any()
        assert 1 not in each.index[0] and 0 not in each.index[1]
    # a listing's own price never moves its expected price: changing it leaves the first fit's prediction
    median, scale = class_rows(samples)
    before = expected_prices(log_price, [found, control], median, scale).assessment.expected[5]
    changed = log_price.copy()
    changed[5] += np.log(3.0)
    after = expected_prices(changed, [found, control], median, scale).assessment.expected[5]
    assert after == pytest.approx(before, abs=0.05)


def test_a_copy_carrying_the_same_wrong_price_does_not_vouch_for_it():
    samples, vectors = item_listings()
    typo = retype(samples, "road bike carbon frame", 100.0)
    copy = retype(samples, "road bike carbon frame", 100.0, number=1)
    row, copy_row = samples.index.get_loc(typo), samples.index.get_loc(copy)
    vectors[copy_row] = vectors[row]
    log_price = valid_log_prices(samples["price"])
    groups = np.arange(len(samples))
    groups[copy_row] = groups[row]
    median, scale = class_rows(samples)
    fitted = expected_prices(log_price, sources(samples, vectors, groups), median, scale)
    assert fitted.assessment.p_value[[row, copy_row]].max() < 0.003


def test_a_decimal_slip_is_suggested_inside_the_expected_range():
    samples, vectors = item_listings()
    typo = retype(samples, "dell xps 13 laptop", 100.0)
    log_price = valid_log_prices(samples["price"])
    median, scale = class_rows(samples)
    fitted = expected_prices(log_price, sources(samples, vectors), median, scale)
    row = samples.index.get_loc(typo)
    powers, p = fitted.slip_fixes(np.array([row]))
    assert powers.tolist() == [2] and p[0] > 0.05
    honest = samples.index.get_loc(int(samples.index[samples["item"] == "bike helmet"][3]))
    assert fitted.slip_fixes(np.array([honest]))[0].tolist() == [0]  # no power of ten fits better than itself


def test_vectors_that_do_not_predict_price_get_no_weight():
    samples, _ = item_listings()
    noise = np.random.default_rng(3).standard_normal((len(samples), 64)).astype(np.float32)
    log_price = valid_log_prices(samples["price"])
    median, scale = class_rows(samples)
    fitted = expected_prices(log_price, sources(samples, noise), median, scale)
    assert fitted.model.neighbour_weight() < 0.1


def test_titles_without_photos_find_the_item_and_the_check_says_what_it_used():
    samples, _ = item_listings()
    typos = [retype(samples, "laptop sleeve neoprene", 100.0), retype(samples, "road bike carbon frame", 0.01)]
    result = PriceCheck().find_issues(AuditContext(samples=samples, classes=sorted(ITEMS), root=Path(".")))
    assert set(result.flagged().index) == set(typos)
    model = result.summary["expected_price"]
    assert model["used"] and model["weights"]["title"] > 0.5 and model["fallback"] is None
    assert "mislabel check did not run" in model["unavailable"]["photo"]
    evidence = result.issues.at[typos[0], "evidence"]
    assert evidence["suggested_price"] == pytest.approx(samples.at[typos[0], "price"] / 100)
    assert price_suggestion(evidence, float(samples.at[typos[0], "price"])) == evidence["suggested_price"]
    assert evidence["similar_source"] == "title" and len(evidence["similar"]) == 5
    assert all(entry["price"] < 40 for entry in evidence["similar"])  # other sleeves, not laptops
    reason = result.issues.at[typos[0], "reason"]
    assert reason.startswith(f"price {samples.at[typos[0], 'price']:,.2f} is outside the expected ")
    assert "similar titles: " in reason and f"it looks like {evidence['suggested_price']:,.2f}" in reason


def test_without_titles_or_photos_the_check_falls_back_to_class_statistics_and_says_so():
    samples, _ = item_listings()
    samples["title"] = None
    typo = retype(samples, "iphone 12 pro", 100.0)
    result = PriceCheck().find_issues(AuditContext(samples=samples, classes=sorted(ITEMS), root=Path(".")))
    model = result.summary["expected_price"]
    assert not model["used"] and model["fallback"].startswith("no similar photos or titles")
    assert model["unavailable"]["title"] == "fewer than 10 titles"
    assert typo in result.flagged().index
    assert "phone median" in result.issues.at[typo, "reason"]  # the class-statistics wording
    assert "expected_low" not in result.issues.at[typo, "evidence"]


def test_titles_that_say_nothing_about_the_item_fall_back_to_class_statistics():
    samples, _ = item_listings()
    samples["title"] = [f"Bargain {EXTRA_WORDS[i % len(EXTRA_WORDS)]}" for i in range(len(samples))]
    result = PriceCheck().find_issues(AuditContext(samples=samples, classes=sorted(ITEMS), root=Path(".")))
    model = result.summary["expected_price"]
    assert not model["used"] and "do not predict price on this dataset" in model["fallback"]


def test_a_title_vocabulary_of_one_word_is_no_title_source():
    assert title_search_vectors(title_features(np.array(["bike"] * 20, dtype=object))) is None
    assert title_features(np.array(["123", "!!"], dtype=object)).shape == (2, 0)


def test_the_summary_line_names_what_judged_the_prices_and_what_was_not_used():
    samples, _ = item_listings()
    result = PriceCheck().find_issues(AuditContext(samples=samples, classes=sorted(ITEMS), root=Path(".")))
    text = expected_price_text(result.summary)
    assert text.startswith("expected prices from similar titles ")
    assert text.endswith("; not used: similar photos (the mislabel check did not run in this audit (similar photos "
                         "are found by its embeddings))")
    samples["title"] = None
    text = expected_price_text(PriceCheck().find_issues(
        AuditContext(samples=samples, classes=sorted(ITEMS), root=Path("."))).summary)
    assert text.startswith("class statistics: no similar photos or titles to compare prices with; not used: ")


def test_a_class_too_small_for_statistics_is_judged_by_similar_titles():
    samples, _ = item_listings()
    for number, price in enumerate((14.0, 16.0, 1500.0)):  # three scarves: no class statistics, titles alone
        samples.loc[1000 + number] = {"label": "scarf", "price": price, "title": "Laptop sleeve neoprene",
                                      "item": "laptop sleeve neoprene", "path": f"scarf/{number}.jpg", "readable": True}
    result = PriceCheck().find_issues(AuditContext(samples=samples, classes=sorted([*ITEMS, "scarf"]), root=Path(".")))
    assert 1002 in result.flagged().index and not result.issues.loc[[1000, 1001], "is_price_issue"].any()
    assert "median" not in result.issues.at[1002, "reason"]
    assert result.summary["classes"]["scarf"]["median"] is None


def test_the_odd_prices_are_counted_with_an_interval_that_holds_the_planted_typos():
    samples, vectors = item_listings()
    rng = np.random.default_rng(3)
    planted = rng.choice(samples.index.to_numpy(), size=12, replace=False)
    for sample_id in planted:
        samples.loc[sample_id, "price"] = round(float(samples.at[sample_id, "price"]) * 100.0, 2)
    log_price = valid_log_prices(samples["price"])
    median, scale = class_rows(samples)
    odd = expected_prices(log_price, sources(samples, vectors), median, scale).stray_estimate()
    assert odd.rows == len(samples) and odd.low <= 12 <= odd.high and 8 <= odd.count <= 16
    honest = item_listings(seed=1)[0]
    log_price = valid_log_prices(honest["price"])
    median, scale = class_rows(honest)
    none = expected_prices(log_price, sources(honest, vectors), median, scale).stray_estimate()
    assert none.low == 0.0 and none.count < 2


def test_the_summary_line_gives_the_odd_prices_beside_the_flags():
    samples, _ = item_listings()
    retype(samples, "iphone 12 pro", 0.001)
    result = PriceCheck().find_issues(AuditContext(samples=samples, classes=sorted(ITEMS), root=Path(".")))
    odd = result.summary["expected_price"]["odd_prices"]
    assert odd["of"] == len(samples) and odd["low"] <= 1 <= odd["high"]
    assert re.search(rf"; about \d+ of the {len(samples)} prices fit no similar listing \(95%: \d+-\d+\), 1 flagged",
                     expected_price_text(result.summary))
