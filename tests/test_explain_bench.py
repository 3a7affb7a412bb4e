"""The explainer benchmark of ``make bench`` (chapters 04-07), at a size that runs in seconds."""

from __future__ import annotations

import numpy as np

from wrenlib.explain import METHODS, benchmark_explainers


def test_benchmark_explainers_reports_every_method_against_a_forward_pass():
    table = benchmark_explainers((32, 64), n_images=1, lime_samples=16, shap_background=2)
    assert list(table["method"]) == list(METHODS)
    assert list(table.columns) == ["method", "image_height_px", "image_width_px", "batch_size",
                                   "seconds_per_image", "forward_seconds_per_image", "forward_pass_equivalents",
                                   "overhead_share", "budget"]
    assert (table["seconds_per_image"] > 0).all() and (table["forward_seconds_per_image"] > 0).all()
    np.testing.assert_allclose(table["forward_pass_equivalents"],
                               table["seconds_per_image"] / table["forward_seconds_per_image"])
    by_method = table.set_index("method")
    # an explanation costs at least the forward pass it explains
    assert (by_method.loc[["gradcam", "deeplift", "lime"], "forward_pass_equivalents"] > 1).all()
    assert by_method.loc[["gradcam", "deeplift"], "overhead_share"].isna().all()
    assert 0 <= by_method.loc["lime", "overhead_share"] <= 1
    assert np.isfinite(by_method.loc["shap", "overhead_share"]) and by_method.loc["shap", "overhead_share"] < 1
    assert by_method.loc["lime", "budget"] == "16 samples" and by_method.loc["shap", "budget"] == "2 references"
    assert (table["image_height_px"] == 32).all() and (table["image_width_px"] == 64).all()


def test_benchmark_explainers_refuses_counts_below_one_and_unknown_methods():
    """Each count must be at least 1 (repeats included: no run, no best time), and an unknown
    method is named, before any model is built or timed."""
    import pytest

    for setting in ("n_images", "batch_size", "lime_samples", "shap_background", "repeats"):
        with pytest.raises(ValueError, match="must be at least 1"):
            benchmark_explainers((32, 64), **{setting: 0})
    with pytest.raises(ValueError, match="unknown explanation method 'occlusion'"):
        benchmark_explainers((32, 64), methods=("gradcam", "occlusion"))
