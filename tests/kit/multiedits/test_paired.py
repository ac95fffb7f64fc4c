"""The paired study (kit.multiedits.paired): the sign test against scipy's binomial test, the case-by-case
comparison on hand-made rows, the CLI on the committed model at a few steps, and a model folder that is not there."""

from __future__ import annotations

import json

import pytest
import torch

from kit.multiedits.paired import compare, main, sign_test

torch.set_num_threads(1)


@pytest.mark.parametrize("ahead,behind", [(0, 8), (2, 6), (5, 5), (1, 0), (0, 0), (3, 17)])
def test_sign_test_is_the_two_sided_exact_binomial_test(ahead, behind):
    scipy_stats = pytest.importorskip("scipy.stats")
    expected = 1.0 if ahead + behind == 0 else scipy_stats.binomtest(ahead, ahead + behind, 0.5).pvalue
    assert sign_test(ahead, behind) == pytest.approx(expected, abs=1e-12)


def test_sign_test_refuses_negative_counts():
    with pytest.raises(ValueError, match="counts must be >= 0"):
        sign_test(-1, 3)


def _row(s, case, method, aspacc, seconds):
    return {"set": s, "case": case, "method": method, "aspacc": aspacc, "seconds": seconds}


def test_compare_counts_cases_ahead_behind_and_tied_per_set_and_case():
    rows = [_row(2, 0, "parallel", 1.0, 1.0), _row(2, 0, "sequential", 0.5, 3.0),   # ahead
            _row(2, 1, "parallel", 0.5, 1.0), _row(2, 1, "sequential", 1.0, 3.0),   # behind
            _row(102, 1, "parallel", 0.0, 2.0), _row(102, 1, "sequential", 1.0, 2.0),  # behind (same case, other set)
            _row(102, 2, "parallel", 1.0, 2.0), _row(102, 2, "sequential", 1.0, 4.0),  # tied
            _row(102, 3, "parallel", 1.0, 2.0)]  # no sequential row: not paired
    c = compare(rows)
    assert (c["n"], c["ahead"], c["behind"], c["tied"]) == (4, 1, 2, 1)
    assert c["parallel_aspacc"] == pytest.approx(2.5 / 4)
    assert c["sequential_aspacc"] == pytest.approx(3.5 / 4)
    assert c["p"] == pytest.approx(sign_test(1, 2))
    assert c["time_ratio"] == pytest.approx(6.0 / 12.0)
    with pytest.raises(ValueError, match="no case was edited by both"):
        compare(rows, "parallel", "single")


def test_cli_runs_both_editors_on_each_set_and_writes_every_row(tmp_path, capsys):
    pytest.importorskip("diffusers")
    out = tmp_path / "rows.json"
    assert main(["--preset", "tiny", "--seeds", "0", "5", "--n", "1", "--threads", "1", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())
    assert sorted((r["set"], r["method"]) for r in rows) == [(0, "parallel"), (0, "sequential"),
                                                             (5, "parallel"), (5, "sequential")]
    assert all(0.0 <= r["aspacc"] <= 1.0 and r["n_aspects"] == 2 for r in rows)
    printed = capsys.readouterr().out
    assert "set 0:" in printed and "set 5:" in printed and "sign test p" in printed


def test_a_missing_model_folder_is_named(tmp_path):
    pytest.importorskip("diffusers")
    from kit.multiedits.config import load_pipeline, preset

    with pytest.raises(FileNotFoundError, match="not found"):
        load_pipeline(preset("tiny", model_dir=str(tmp_path / "nowhere")))
    with pytest.raises(ValueError, match="not both"):
        preset("tiny", model_dir=str(tmp_path), pretrained="runwayml/stable-diffusion-v1-5")


def test_options_are_read_as_their_field_types_and_bad_ones_are_named():
    from kit.multiedits.editor import EditOptions
    from kit.multiedits.paired import parse_option

    o = EditOptions()
    assert parse_option("switch_step=0", o) == ("switch_step", 0)
    assert parse_option("thresh_e=0.25", o) == ("thresh_e", 0.25)
    assert parse_option("blend=false", o) == ("blend", False)
    assert parse_option("reference=code_order", o) == ("reference", "code_order")
    with pytest.raises(ValueError, match="name one of"):
        parse_option("no_such_option=1", o)
    with pytest.raises(ValueError, match="name one of"):
        parse_option("switch_step", o)
    with pytest.raises(ValueError, match="switch_step takes an int"):
        parse_option("switch_step=early", o)
    with pytest.raises(ValueError, match="blend takes true or false"):
        parse_option("blend=maybe", o)
