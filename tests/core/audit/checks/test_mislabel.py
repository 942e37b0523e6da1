"""The mislabel check on real tiny images: colour-coded classes with planted wrong folders."""
from __future__ import annotations

import numpy as np
import pytest

from core.audit.checks.mislabel import MislabelCheck, estimated_noise_per_class
from core.audit.evidence.gather import resolve_options
from core.models.embeddings import MissingWeightsError
from db.embeddings import DbEmbeddingStore
from tests.conftest import make_image
from tests.core.audit.evidence.test_count import planted

COLOURS = {"blue": (20, 40, 220), "green": (30, 200, 40), "red": (220, 30, 30)}
PER_CLASS = 12


def build_colour_dataset(root, *, planted: dict[str, str]):
    """PER_CLASS noisy images per colour class; `planted` maps a file name to the true colour it is drawn in."""
    rng = np.random.default_rng(0)
    for label, colour in COLOURS.items():
        for index in range(PER_CLASS):
            jitter = tuple(int(c) for c in np.clip(np.array(colour) + rng.integers(-25, 25, 3), 0, 255))
            make_image(root / label / f"{label}-{index}.png", size=(24, 24), color=jitter)
    for name, true_colour in planted.items():
        given = name.split("/")[0]
        assert given != true_colour
        make_image(root / name, size=(24, 24), color=COLOURS[true_colour])
    return root


def test_finds_planted_mislabels_and_not_clean_samples(tmp_path, scanned_context):
    planted = {"red/odd-1.png": "blue", "green/odd-2.png": "red"}
    context = scanned_context(build_colour_dataset(tmp_path / "ds", planted=planted),
                              params={"backbone": "pixels", "folds": 3})
    result = MislabelCheck().find_issues(context)
    flagged = result.flagged()
    flagged_paths = set(context.samples.loc[flagged.index, "path"])
    assert flagged_paths == set(planted)
    suggestions = dict(zip(context.samples.loc[flagged.index, "path"], flagged["suggested_label"]))
    assert suggestions == planted
    scores = result.issues["mislabel_score"]
    assert scores.between(0, 1).all()
    assert scores.loc[flagged.index].max() < scores.drop(flagged.index).min()
    evidence = flagged.iloc[0]["evidence"]
    assert {"given_label", "suggested_label", "suggested_probability", "top3"} <= set(evidence)
    assert result.summary["flagged"] == 2
    low, high = result.summary["estimated_interval"]
    assert low <= result.summary["estimated_issues"] == result.summary["review_budget"] <= high
    assert result.summary["count"]["cleanlab"] >= 0 and len(result.summary["score_quantiles"]) == 201


def test_respects_corrections_by_auditing_current_labels(tmp_path, scanned_context):
    context = scanned_context(build_colour_dataset(tmp_path / "ds", planted={"red/odd-1.png": "blue"}),
                              params={"backbone": "pixels", "folds": 3})
    odd = context.samples.index[context.samples["path"] == "red/odd-1.png"][0]
    context.samples.loc[odd, "label"] = "blue"  # as after a relabel decision
    result = MislabelCheck().find_issues(context)
    assert not result.issues["is_mislabel_issue"].any()


def test_the_fits_report_each_fold_so_a_cancel_request_is_heard_between_them(tmp_path, scanned_context):
    """A job's progress reporter raises JobCancelled when a cancel was asked for: the cross-validated fits of
    an image member report after every fold, after its embedding, and its progress never runs backwards."""
    reports = []
    context = scanned_context(build_colour_dataset(tmp_path / "ds", planted={}),
                              params={"backbone": "pixels", "folds": 3},
                              progress=lambda fraction, message: reports.append((fraction, message)))
    MislabelCheck().find_issues(context)
    pixels = [(fraction, message) for fraction, message in reports if message.startswith("round 1, pixels: ")]
    fits = [message for _, message in pixels if "fitting" in message]
    assert fits == [f"round 1, pixels: fitting, fold {k}/3" for k in (1, 2, 3)]
    assert [message for _, message in pixels].index(fits[0]) > 0  # after the embedding's reports
    fractions = [fraction for fraction, _ in pixels]
    assert fractions == sorted(fractions)


def test_pretrained_embeddings_are_cached_by_content_hash(tmp_path, scanned_context, factory):
    context = scanned_context(build_colour_dataset(tmp_path / "ds", planted={}),
                              params={"folds": 2, "image_size": 32}, embeddings=DbEmbeddingStore(factory))
    first = MislabelCheck().find_issues(context)
    second = MislabelCheck().find_issues(context)
    image_members = {"photo": "mobilenet_v2@160/whole1", "crop": "mobilenet_v2@32/crop1"}
    assert first.summary["embedded_together"]["members"] == ["photo", "crop"]  # each photo decoded once for both
    for name, key in image_members.items():
        assert first.summary["members"][name]["key"] == key
        assert first.summary["members"][name]["embedded"] == len(context.samples)
        assert second.summary["members"][name]["embedded"] == 0
        assert second.summary["members"][name]["from_cache"] == len(context.samples)


def test_a_member_keeps_its_vectors_between_rounds_and_releases_them_after_the_last(
        tmp_path, scanned_context, factory):
    from core.audit.evidence.gather import audit_folds
    from core.audit.checks.mislabel import audited_samples
    from core.audit.evidence.base import EvidenceInput
    from core.audit.evidence.image import PixelsMember

    context = scanned_context(build_colour_dataset(tmp_path / "ds", planted={}),
                              params={"backbone": "pixels", "folds": 2, "rounds": 2},
                              embeddings=DbEmbeddingStore(factory))
    two_rounds = MislabelCheck().find_issues(context).summary["members"]["pixels"]
    assert (two_rounds["embedded"], two_rounds["from_cache"]) == (len(context.samples), 0)  # kept for round 2

    samples, labels = audited_samples(context)
    options = resolve_options(context.params, {})
    data = EvidenceInput(samples, labels, context.classes, context.root, options, context.embeddings)
    folds = audit_folds(context, samples, labels, options)
    member = PixelsMember()
    first = member.out_of_fold(data, folds)
    member.release()
    again = member.out_of_fold(data, folds)  # read back from the cache, not kept
    assert again.details["from_cache"] == len(samples)
    np.testing.assert_array_equal(first.pred_probs, again.pred_probs)


def test_missing_weights_give_a_clear_error(tmp_path, scanned_context, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-torch-home"))
    context = scanned_context(build_colour_dataset(tmp_path / "ds", planted={}), params={"folds": 2})
    with pytest.raises(MissingWeightsError, match="pixels"):
        MislabelCheck().find_issues(context)


def test_probabilities_from_a_training_run(tmp_path, scanned_context):
    context = scanned_context(build_colour_dataset(tmp_path / "ds", planted={}), params={})
    classes = context.classes
    pred_probs = np.full((len(context.samples), len(classes)), 0.05)
    for row, label in enumerate(context.samples["label"]):
        pred_probs[row, classes.index(label)] = 0.9
    other = next(c for c in classes if c != context.samples["label"].iloc[0])
    pred_probs[0] = [0.9 if c == other else 0.05 for c in classes]
    pred_probs = pred_probs / pred_probs.sum(axis=1, keepdims=True)
    context.params.update(source="run", pred_probs=pred_probs)
    result = MislabelCheck().find_issues(context)
    assert result.summary["source"] == "run"
    assert list(result.flagged().index) == [context.samples.index[0]]


def run_context_with_prices(scanned_context, tmp_path, *, ambiguous_price: float):
    """Colour classes whose listings are priced around 10 (blue), 100 (green) and 1,000 (red), and
    training-run probabilities that favour the given label of every sample but the first, split between
    its label and one other class; the first sample's price is `ambiguous_price`."""
    context = scanned_context(build_colour_dataset(tmp_path / "ds", planted={}), params={})
    classes = context.classes
    rng = np.random.default_rng(1)
    medians = {"blue": 10.0, "green": 100.0, "red": 1000.0}
    context.samples["price"] = [medians[label] * float(np.exp(0.2 * rng.standard_normal()))
                                for label in context.samples["label"]]
    pred_probs = np.full((len(context.samples), len(classes)), 0.1)
    for row, label in enumerate(context.samples["label"]):
        pred_probs[row, classes.index(label)] = rng.uniform(0.5, 0.95)
    given = context.samples["label"].iloc[0]
    other = next(c for c in classes if c != given)
    pred_probs[0] = [0.49 if c in (given, other) else 0.02 for c in classes]
    context.samples.iloc[0, context.samples.columns.get_loc("price")] = ambiguous_price
    context.params.update(source="run", pred_probs=pred_probs / pred_probs.sum(axis=1, keepdims=True))
    return context, given, other, medians


def test_a_price_that_fits_another_class_tips_a_doubtful_image(tmp_path, scanned_context):
    context, given, other, medians = run_context_with_prices(scanned_context, tmp_path, ambiguous_price=0.0)
    context.samples.iloc[0, context.samples.columns.get_loc("price")] = medians[other]
    result = MislabelCheck().find_issues(context)
    first = context.samples.index[0]
    assert result.summary["price_evidence"] is True
    assert result.issues["mislabel_score"].idxmin() == first
    evidence = result.issues.at[first, "evidence"]
    assert evidence["suggested_label"] == other and evidence["given_probability"] < 0.1
    price_vote = next(vote for vote in evidence["members"] if vote["member"] == "price")
    assert price_vote["top"] == other and price_vote["fits"] == other


def test_a_price_that_fits_the_given_class_keeps_a_doubtful_image(tmp_path, scanned_context):
    context, given, other, medians = run_context_with_prices(scanned_context, tmp_path, ambiguous_price=0.0)
    context.samples.iloc[0, context.samples.columns.get_loc("price")] = medians[given]
    result = MislabelCheck().find_issues(context)
    assert result.flagged().empty
    assert result.issues.at[context.samples.index[0], "evidence"]["given_probability"] > 0.9


def test_price_evidence_can_be_switched_off(tmp_path, scanned_context):
    context, given, other, medians = run_context_with_prices(scanned_context, tmp_path, ambiguous_price=0.0)
    context.samples.iloc[0, context.samples.columns.get_loc("price")] = medians[other]
    result = MislabelCheck(use_price=False).find_issues(context)
    assert result.summary["price_evidence"] is False
    # the combiner rescales the run's confidence; its two classes stay tied
    assert result.issues.at[context.samples.index[0], "evidence"]["given_probability"] == pytest.approx(0.5, abs=0.02)


def test_finetuned_networks_from_scratch_need_no_weights(tmp_path, scanned_context, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-torch-home"))
    context = scanned_context(build_colour_dataset(tmp_path / "ds", planted={}), params={})
    check = MislabelCheck(source="finetune", pretrained=False, epochs=1, image_size=32, folds=2,
                          device="cpu", cache_dir=str(tmp_path / "cache"))
    result = check.find_issues(context)
    assert result.summary["source"] == "finetune"
    assert "from scratch" in result.summary["backbone"]
    assert len(result.issues) == len(context.samples)
    assert result.issues["mislabel_score"].between(0, 1).all()
    top3 = result.issues.iloc[0]["evidence"]["top3"]
    assert sum(entry["probability"] for entry in top3) == pytest.approx(1.0, abs=0.01)


def test_unknown_options_and_sources_are_refused():
    with pytest.raises(ValueError, match="unknown mislabel options: colour"):
        MislabelCheck(colour="red")
    with pytest.raises(ValueError, match="sources are: embeddings, finetune, run"):
        resolve_options({}, {"source": "guess"})
    with pytest.raises(ValueError, match="folds must be at least 2"):
        resolve_options({"folds": 1}, {})


def test_default_members_and_a_chosen_set(tmp_path, scanned_context):
    context = scanned_context(build_colour_dataset(tmp_path / "ds", planted={}), params={"backbone": "pixels"})
    result = MislabelCheck().find_issues(context)
    assert list(result.summary["members"]) == ["pixels"]  # no titles or prices in this dataset
    assert "title" in result.summary["unavailable_members"]["title"]
    chosen = MislabelCheck(members="pixels,price").find_issues(context)
    assert chosen.summary["unavailable_members"]["crop"] == "not chosen"
    with pytest.raises(ValueError, match="unknown evidence member 'colour'"):
        MislabelCheck(members=["colour"]).find_issues(context)


def test_classes_too_small_to_judge_are_not_flagged_and_say_so(tmp_path, scanned_context):
    root = build_colour_dataset(tmp_path / "ds", planted={"red/odd-1.png": "blue"})
    rng = np.random.default_rng(1)
    for index in range(12):  # twelve classes of two photos each: too few to learn from out of fold
        for copy in range(2):
            make_image(root / f"tiny-{index:02d}" / f"{copy}.png", size=(24, 24),
                       color=tuple(int(c) for c in rng.integers(0, 255, 3)))
    context = scanned_context(root, params={"backbone": "pixels", "folds": 3})
    result = MislabelCheck().find_issues(context)
    paths = context.samples.loc[result.flagged().index, "path"]
    assert not paths.str.startswith("tiny-").any()
    assert "red/odd-1.png" in set(paths)
    assert len(result.summary["too_small_classes"]) == 12
    warning, *others = result.summary["warnings"]
    assert all(other.startswith("The evidence here is weak") for other in others)  # 30 listings judged
    assert warning.startswith("12 of 15 classes have fewer than 5 readable listings (tiny-00, ") and "24 listings" in warning
    tiny = context.samples.index[context.samples["path"].str.startswith("tiny-")]
    assert result.issues.loc[tiny, "reason"].str.startswith("not judged: too few readable listings").all()


def test_the_noise_per_class_adds_up_to_the_audits_count_not_more():
    """Where the evidence is weak the count is below cleanlab's, and the classes beside it must not add up to more."""
    labels, probs, _ = planted(900, 3, noise=0.1, clear=0.3, seed=3)
    classes = ["a", "b", "c"]
    cleanlabs = estimated_noise_per_class(labels, probs, classes)
    scaled = estimated_noise_per_class(labels, probs, classes, total=60)
    sizes = np.bincount(labels, minlength=3)
    assert sum(cleanlabs[name] * size for name, size in zip(classes, sizes)) > 120
    assert abs(sum(scaled[name] * size for name, size in zip(classes, sizes)) - 60) < 1
    ratios = [scaled[name] / cleanlabs[name] for name in classes]
    assert max(ratios) - min(ratios) < 1e-3  # the classes keep their order and proportions
