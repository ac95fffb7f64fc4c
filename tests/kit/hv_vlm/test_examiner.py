"""The examiner contract of arXiv:2407.21788: the decision parser, the two-turn verify, the metrics."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

from kit.hv_vlm.examiner import (
    DECIDE_PROMPT,
    DECISIONS,
    EXPLAIN_PROMPT,
    SYSTEM_PROMPT,
    ChatBackend,
    ScriptedBackend,
    Verdict,
    decision_metrics,
    image_to_png_bytes,
    parse_decision,
    verify,
    verify_pairs,
)


@pytest.mark.parametrize("text, expected", [
    ("Yes", "same"), ("yes.", "same"), ("**Yes**", "same"), ("YES, same writer", "same"),
    ("No", "different"), ("no.", "different"), ("**No**", "different"), ("No, different writers.", "different"),
    ("Unknown", "unknown"), ("Yes, though it is unknown to me", "unknown"), ("UNKNOWN.", "unknown"),
    ("I see no difference in slant, so: Yes", "both"), ("Yes and no.", "both"),
    ("It is not possible to know; none of the letters differ", "unknown"),  # not / know / none are not "no"
    ("Nothing to say; the writing is nonetheless noted", "unknown"), ("", "unknown"),
    ("Same writer: yes", "same"), ("The answer is no", "different"), ("yesterday", "unknown"),
    ("The writer is not the same. No", "different"),
])
def test_parse_decision_follows_the_authors_rule(text, expected):
    assert parse_decision(text) == expected


def test_parse_decision_rejects_non_strings():
    with pytest.raises(TypeError, match="str"):
        parse_decision(None)


def test_prompts_say_what_the_paper_asks():
    assert "forensic document examiner" in EXPLAIN_PROMPT and '"and"' in EXPLAIN_PROMPT
    assert EXPLAIN_PROMPT.index("Known sample:") < EXPLAIN_PROMPT.index("Questioned sample:")
    assert "Yes" in DECIDE_PROMPT and "No" in DECIDE_PROMPT and "Unknown" in DECIDE_PROMPT
    assert "examiner" in SYSTEM_PROMPT


def _pair(rng=None):
    rng = np.random.default_rng(0) if rng is None else rng
    return rng.integers(0, 256, (40, 64), dtype=np.uint8), rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)


def test_verify_runs_two_turns_in_one_conversation():
    backend = ScriptedBackend(["The staff of a differs; the n is malformed.", "**No**, different writers."])
    known, questioned = _pair()
    v = verify(backend, known, questioned)
    assert isinstance(v, Verdict) and v.decision == "different"
    assert v.explanation.startswith("The staff") and v.raw.startswith("**No**")
    first, second = backend.calls
    assert [m["role"] for m in first["messages"]] == ["system", "user"]
    assert first["messages"][1]["content"] == EXPLAIN_PROMPT and first["temperature"] == 0.0
    assert [m["role"] for m in second["messages"]] == ["system", "user", "assistant", "user"]
    assert second["messages"][2]["content"] == v.explanation and second["messages"][3]["content"] == DECIDE_PROMPT
    assert second["temperature"] is None and first["max_tokens"] == second["max_tokens"] == 600
    assert first["n_images"] == second["n_images"] == 2
    assert v.meta["backend"] == "scripted" and v.meta["cached"] is False and v.meta["seconds"] >= 0
    assert v.meta["explain_temperature"] == 0.0 and v.meta["decide_temperature"] is None


def test_verify_accepts_edited_prompts():
    backend = ScriptedBackend(["x", "yes"])
    v = verify(backend, *_pair(), explain_prompt="Compare.", decide_prompt="Same?", explain_temperature=None)
    assert v.decision == "same"
    assert backend.calls[0]["messages"][1]["content"] == "Compare." and backend.calls[0]["temperature"] is None
    assert backend.calls[1]["messages"][-1]["content"] == "Same?"


@pytest.mark.parametrize("bad, match", [
    (np.zeros((8, 8), np.float32), "uint8"), (np.zeros((0, 8), np.uint8), "empty"),
    (np.zeros((8, 8, 4), np.uint8), "shape"), (np.zeros(8, np.uint8), "shape"), ([[0, 1]], "numpy"),
])
def test_verify_names_a_bad_image(bad, match):
    with pytest.raises(ValueError, match=match):
        verify(ScriptedBackend(["a"]), bad, np.zeros((8, 8), np.uint8))
    with pytest.raises(ValueError, match="questioned"):
        verify(ScriptedBackend(["a"]), np.zeros((8, 8), np.uint8), bad)


def test_scripted_backend_cycles_and_checks():
    b = ScriptedBackend(["a", "b"])
    msgs = [{"role": "user", "content": "hi"}]
    assert [b.chat(msgs, []) for _ in range(3)] == ["a", "b", "a"]
    with pytest.raises(ValueError):
        ScriptedBackend([])
    with pytest.raises(ValueError, match="role"):
        b.chat([{"role": "robot", "content": "x"}], [])
    assert isinstance(b, ChatBackend) and "3 calls" in repr(b)


def test_verify_pairs_and_length_check():
    rng = np.random.default_rng(1)
    pairs = [_pair(rng) for _ in range(3)]
    backend = ScriptedBackend(["e1", "Yes", "e2", "No", "e3", "Unknown"])
    out = verify_pairs(backend, [p[0] for p in pairs], [p[1] for p in pairs], progress=False, max_tokens=50)
    assert [v.decision for v in out] == ["same", "different", "unknown"]
    assert all(c["max_tokens"] == 50 for c in backend.calls)
    with pytest.raises(ValueError, match="length"):
        verify_pairs(backend, [pairs[0][0]], [], progress=False)


def test_decision_metrics_match_sklearn_on_covered_pairs():
    rng = np.random.default_rng(3)
    decisions = list(rng.choice(DECISIONS, 200, p=[0.4, 0.4, 0.1, 0.1]))
    labels = rng.integers(0, 2, 200)
    m = decision_metrics(decisions, labels)
    cov = np.isin(decisions, ["same", "different"])
    pred = (np.asarray(decisions)[cov] == "same").astype(int)
    true = labels[cov]
    assert m["n"] == 200 and m["n_covered"] == cov.sum()
    assert m["n_unknown"] == decisions.count("unknown") and m["n_both"] == decisions.count("both")
    assert m["coverage"] == pytest.approx(cov.mean())
    assert m["accuracy"] == pytest.approx(accuracy_score(true, pred))
    assert m["precision"] == pytest.approx(precision_score(true, pred))
    assert m["recall"] == pytest.approx(recall_score(true, pred))
    assert m["f1"] == pytest.approx(f1_score(true, pred))
    assert m["accuracy_all"] == pytest.approx((pred == true).sum() / 200)


def test_decision_metrics_edge_cases():
    m = decision_metrics(["unknown", "both"], [1, 0])
    assert m["coverage"] == 0 and m["accuracy"] == 0 and m["f1"] == 0 and m["accuracy_all"] == 0
    assert all(np.isfinite(v) for v in m.values())
    with pytest.raises(ValueError, match="length"):
        decision_metrics(["same"], [1, 0])
    with pytest.raises(ValueError, match="decisions must be"):
        decision_metrics(["maybe"], [1])
    with pytest.raises(ValueError, match="labels"):
        decision_metrics(["same"], [2])
    with pytest.raises(ValueError, match="at least one"):
        decision_metrics([], [])
    with pytest.raises(ValueError, match="decision"):
        Verdict("perhaps", "", "", {})


def test_image_to_png_bytes_shrinks_the_long_side():
    from io import BytesIO

    from PIL import Image

    img = np.random.default_rng(0).integers(0, 256, (300, 1200), dtype=np.uint8)
    small = Image.open(BytesIO(image_to_png_bytes(img, max_side=800)))
    assert small.size == (800, 200) and small.mode == "L"
    same = Image.open(BytesIO(image_to_png_bytes(img[:64, :64])))
    assert np.array_equal(np.asarray(same), img[:64, :64])
    assert image_to_png_bytes(img) == image_to_png_bytes(img)  # deterministic: safe in a cache key
    rgb = Image.open(BytesIO(image_to_png_bytes(np.zeros((10, 20, 3), np.uint8))))
    assert rgb.mode == "RGB" and rgb.size == (20, 10)
