"""The price check on log-normal class prices with planted typos, mislabelled items and missing prices."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.audit.checks.base import AuditContext, CheckResult
from core.audit.checks.price import PriceCheck, class_price_stats, decimal_slip_fix, price_likelihood, valid_log_prices

MEDIANS = {"coat": 90.0, "shirt": 25.0, "t-shirt": 15.0}
PER_CLASS = 60
SIGMA = 0.35


def listings(seed: int = 0) -> pd.DataFrame:
    """PER_CLASS honest listings per class (log-normal prices, sigma 0.35, within 2.5 sigma), indexed by sample id."""
    rng = np.random.default_rng(seed)
    rows = []
    for label, median in MEDIANS.items():
        z = np.clip(rng.standard_normal(PER_CLASS), -2.5, 2.5)
        rows += [{"label": label, "price": round(median * float(np.exp(SIGMA * value)), 2)} for value in z]
    frame = pd.DataFrame(rows)
    frame.index = pd.RangeIndex(100, 100 + len(frame), name="id")
    frame["path"] = [f"{label}/{i}.jpg" for i, label in zip(frame.index, frame["label"])]
    frame["readable"] = True
    return frame


def context_of(samples: pd.DataFrame, **options) -> AuditContext:
    return AuditContext(samples=samples, classes=sorted(MEDIANS), root=Path("."), **options)


def plant(samples: pd.DataFrame, label: str, price: float) -> int:
    """Add one listing; returns its sample id."""
    sample_id = int(samples.index.max()) + 1
    samples.loc[sample_id] = {"label": label, "price": price, "path": f"{label}/planted-{sample_id}.jpg",
                              "readable": True}
    return sample_id


def test_typos_are_flagged_and_honest_prices_are_not():
    samples = listings()
    typos = [plant(samples, "shirt", 2500.0), plant(samples, "coat", 0.9), plant(samples, "t-shirt", 140.0),
             plant(samples, "coat", 1000.0)]
    result = PriceCheck().find_issues(context_of(samples))
    assert sorted(result.flagged().index) == sorted(typos)
    assert (result.issues.loc[typos, "price_score"] < 0.5).all()
    honest = result.issues.drop(typos)
    assert (honest["price_score"] > 0.5).all() and not honest["is_price_issue"].any()
    assert set(result.flagged().index[:2]) == set(typos[:2])  # x100 and /100 are further out than x10
    evidence = result.issues.at[typos[0], "evidence"]
    assert evidence["price"] == 2500.0 and evidence["class_median"] == pytest.approx(25.0, rel=0.2)
    assert evidence["typical_low"] < evidence["class_median"] < evidence["typical_high"]
    assert "shirt median" in result.issues.at[typos[0], "reason"]


def test_missing_and_non_positive_prices_are_not_outliers():
    samples = listings()
    missing = [plant(samples, "coat", float("nan")), plant(samples, "coat", 0.0), plant(samples, "shirt", -5.0)]
    result = PriceCheck().find_issues(context_of(samples))
    assert not result.issues.loc[missing, "is_price_issue"].any()
    assert (result.issues.loc[missing, "price_score"] == 1.0).all()
    assert result.summary["without_price"] == 3


def test_a_mislabelled_item_fits_its_true_class_and_is_explained_by_the_mislabel_check():
    samples = listings()
    coat_as_tshirt = plant(samples, "t-shirt", 110.0)  # a coat in the t-shirt folder keeps a coat's price
    typo = plant(samples, "t-shirt", 1500.0)
    alone = PriceCheck().find_issues(context_of(samples))
    assert alone.issues.at[coat_as_tshirt, "is_price_issue"]
    evidence = alone.issues.at[coat_as_tshirt, "evidence"]
    assert evidence["best_class"] == "coat" and evidence["fits_other_class"]
    assert "fits coat" in alone.issues.at[coat_as_tshirt, "reason"]
    assert not alone.issues.at[typo, "evidence"]["fits_other_class"]

    mislabel = pd.DataFrame({"is_mislabel_issue": False, "mislabel_score": 1.0, "suggested_label": None},
                            index=samples.index)
    mislabel.loc[[coat_as_tshirt, typo], ["is_mislabel_issue", "suggested_label"]] = [[True, "coat"], [True, "coat"]]
    earlier = {"mislabel": CheckResult("mislabel", mislabel, {})}
    result = PriceCheck().find_issues(context_of(samples, earlier=earlier))
    assert not result.issues.at[coat_as_tshirt, "is_price_issue"]
    assert result.issues.at[coat_as_tshirt, "evidence"]["explained_by_mislabel"] == "coat"
    assert result.issues.at[typo, "is_price_issue"]  # 1500 fits no class, suggested or not
    assert result.summary["explained_by_mislabel"] == 1 and result.summary["used_mislabel_result"]


def test_classes_with_few_prices_are_not_judged():
    samples = listings()
    rare = [plant(samples, "scarf", price) for price in (10.0, 12.0, 5000.0)]
    context = AuditContext(samples=samples, classes=sorted([*MEDIANS, "scarf"]), root=Path("."))
    result = PriceCheck().find_issues(context)
    assert not result.issues.loc[rare, "is_price_issue"].any()
    assert result.summary["classes"]["scarf"] == {"prices": 3, "median": None, "log_scale": None}


def test_class_statistics_are_robust_to_the_outliers_they_look_for():
    rng = np.random.default_rng(1)
    log_price = np.log(50.0) + SIGMA * rng.standard_normal(400)
    log_price[:40] += np.log(100.0)  # 10% typos
    stats = class_price_stats(log_price, np.zeros(400, dtype=int), ["bag"], min_count=8, min_scale=0.05)
    assert np.exp(stats.median[0]) == pytest.approx(50.0, rel=0.1)
    assert stats.scale[0] == pytest.approx(SIGMA, rel=0.25)


def test_identical_prices_get_the_minimum_scale():
    stats = class_price_stats(np.log(np.full(20, 9.99)), np.zeros(20, dtype=int), ["x"], min_count=8, min_scale=0.05)
    assert stats.scale[0] == 0.05
    assert np.isnan(valid_log_prices(pd.Series([None, 0.0, -1.0, np.inf]))).all()


def test_a_class_with_most_prices_suspected_falls_back_to_all_its_prices():
    samples = listings()
    typo = plant(samples, "coat", 9000.0)
    mislabel = pd.DataFrame({"is_mislabel_issue": samples["label"] == "coat", "mislabel_score": 0.5,
                             "suggested_label": "shirt"}, index=samples.index)
    mislabel.loc[samples.index[samples["label"] == "coat"][:5], "is_mislabel_issue"] = False
    result = PriceCheck().find_issues(context_of(samples, earlier={"mislabel": CheckResult("mislabel", mislabel, {})}))
    assert result.summary["classes"]["coat"]["prices"] == PER_CLASS + 1
    assert result.issues.at[typo, "is_price_issue"]


def test_price_likelihood_favours_the_class_a_price_fits_and_ignores_typos():
    samples = listings()
    classes = sorted(MEDIANS)
    labels = samples["label"].map({name: k for k, name in enumerate(classes)}).to_numpy()
    stats = class_price_stats(valid_log_prices(samples["price"]), labels, classes, min_count=8, min_scale=0.05)
    prices = pd.Series([90.0, 15.0, 9000.0, np.nan, -3.0])
    fit = price_likelihood(valid_log_prices(prices), stats, stray_share=0.05)
    assert fit.shape == (5, 3)
    assert classes[int(np.argmax(fit[0]))] == "coat"
    assert classes[int(np.argmax(fit[1]))] == "t-shirt"
    assert fit[0].max() / fit[0].min() > 100
    assert fit[2].max() / fit[2].min() == pytest.approx(1.0, abs=1e-3)  # a typo (x100) fits no class
    assert (fit[3:] == 1.0).all()  # no usable price: no evidence


def test_price_likelihood_gives_a_class_without_prices_the_mean_fit():
    samples = listings()
    classes = sorted(MEDIANS) + ["scarf"]
    labels = samples["label"].map({name: k for k, name in enumerate(classes)}).to_numpy()
    stats = class_price_stats(valid_log_prices(samples["price"]), labels, classes, min_count=8, min_scale=0.05)
    fit = price_likelihood(np.log([25.0]), stats, stray_share=0.05)
    assert fit[0, 3] == pytest.approx(fit[0, :3].mean())


def test_a_price_of_a_cent_in_a_class_of_hundreds_is_flagged_not_a_crash():
    samples = listings()
    cent = plant(samples, "coat", 0.01)
    result = PriceCheck().find_issues(context_of(samples))
    assert cent in result.flagged().index
    assert "is 1/" in result.issues.at[cent, "reason"] and "coat median" in result.issues.at[cent, "reason"]


@pytest.mark.parametrize("price, median, fixed", [(129900.0, 1150.0, 1299.0), (12.5, 1300.0, 1250.0),
                                                  (1400.0, 1150.0, None), (0.0, 1150.0, None)])
def test_a_decimal_slip_is_moved_back_by_a_power_of_ten(price, median, fixed):
    assert decimal_slip_fix(price, median) == fixed
