"""Faithfulness of examiner explanations against the synthetic writers' true style gaps (arXiv:2407.21788)."""

from __future__ import annotations

import numpy as np
import pytest

from kit.data.handwriting import ATTRIBUTES, Writers, WriterStyle, style_differences, verification_pairs
from kit.hv_vlm.faithfulness import (
    claimed_attributes,
    claims,
    faithfulness,
    faithfulness_summary,
    true_differences,
)
from kit.hv_vlm.features import FEATURES
from kit.hv_vlm.offline_examiner import OfflineExaminer


@pytest.mark.parametrize("text, expected", [
    # wording of the paper's GPT-4o example (its figure): staff of "a", formation of "n", exit stroke of "d"
    ("The staff of the 'a' is continuous in both samples.", {"letter_shapes": "similar"}),
    ("The 'n' is malformed in the questioned sample.", {"letter_shapes": "differ"}),
    ('The exit stroke of "d" is absent in the known sample vs downward in the questioned one.',
     {"letter_shapes": "differ"}),
    # negation
    ("The slant is not consistent between the two samples.", {"slant": "differ"}),
    ("There is no significant difference in letter spacing.", {"spacing": "similar"}),
    ("The baseline does not differ.", {"baseline": "similar"}),
    ("The samples are not the same in stroke thickness.", {"pen_width": "differ"}),
    # two attributes in one sentence, contrast words, comparatives
    ("The slant is similar, but the stroke width differs noticeably.",
     {"slant": "similar", "pen_width": "differ"}),
    ("Both samples show a similar baseline; however, the pen pressure is heavier in the questioned sample.",
     {"baseline": "similar", "pressure": "differ"}),
    ("The questioned sample is shakier than the known sample.", {"tremor": "differ"}),
    ("The letters are connected in the known sample whereas they stand apart in the questioned one.",
     {"spacing": "differ"}),
    ("Overall, the writing is consistent in size and proportions.", {"size": "similar"}),
    ("The height of the 'd' ascender differs.", {"letter_shapes": "differ"}),
    # markdown headings carry the attribute to the sentences below them
    ("**Slant**\nBoth lean to the right at a comparable angle.\n\n**Line quality**\nThe strokes are smooth "
     "and fluent in both, matching.", {"slant": "similar", "tremor": "similar"}),
    ("1. Slant: both samples match.\n2. Size: clearly different.", {"slant": "similar", "size": "differ"}),
    # a decimal point is no sentence end; a claim anywhere that it differs wins
    ("Slant: 12.5 deg vs 13.0 deg, consistent. Later: the slant differs after all.", {"slant": "differ"}),
    # no claims: no polarity, no attribute
    ("The known sample leans right.", {}),
    ("They were written by the same person.", {}),
])
def test_claimed_attributes(text, expected):
    assert claimed_attributes(text) == expected


def test_claims_keep_their_clause():
    c = claims("The slant is similar, but the spacing differs.")
    assert [(x.attributes, x.polarity) for x in c] == [(("slant",), "similar"), (("spacing",), "differ")]
    assert c[1].text.startswith("the spacing")
    with pytest.raises(TypeError):
        claims(None)


def test_true_differences_follow_style_differences():
    w = Writers(3, seed=0)
    a, b = w.style(0), w.style(1)
    gaps = style_differences(a, b)
    assert true_differences(a, b) == {k: g >= 1.0 for k, g in gaps.items()}
    assert true_differences(a, b, 0.5) == {k: g >= 0.5 for k, g in gaps.items()}
    assert not any(true_differences(a, a).values())
    with pytest.raises(ValueError, match="threshold"):
        true_differences(a, b, 0.0)


def _styles() -> tuple[WriterStyle, WriterStyle]:
    """Two writers that differ in slant (by 2 population stds) and nothing else."""
    a = Writers(2, seed=0).style(0)
    v = a.as_vector().copy()
    v[WriterStyle.FIELDS.index("slant")] += 0.4
    return a, WriterStyle.from_vector(v)


def test_faithfulness_scores_claims():
    a, b = _styles()
    assert true_differences(a, b) == {k: k == "slant" for k in ATTRIBUTES}
    r = faithfulness("The slant differs. The spacing is different. The size is consistent.", a, b)
    assert r["n_claims"] == 3 and r["n_differ_claims"] == 2 and r["n_true_differ"] == 1
    assert r["precision"] == 0.5 and r["recall"] == 1.0 and r["accuracy"] == pytest.approx(2 / 3)
    rows = {row["attribute"]: row for row in r["rows"]}
    assert rows["slant"]["correct"] and not rows["spacing"]["correct"] and rows["size"]["correct"]
    assert rows["tremor"]["claim"] is None and rows["tremor"]["correct"] is None
    none = faithfulness("A fine sample of handwriting.", a, b)      # no claims: None, never NaN
    assert none["n_claims"] == 0 and none["precision"] is None and none["accuracy"] is None
    assert none["recall"] == 0.0
    same = faithfulness("The slant is consistent.", a, a)
    assert same["recall"] is None and same["precision"] is None and same["accuracy"] == 1.0


def test_summary_pools_rows():
    a, b = _styles()
    r1 = faithfulness("The slant differs. The spacing is different.", a, b)
    r2 = faithfulness("The slant differs.", a, b)
    s = faithfulness_summary([r1, r2])
    assert s["precision"] == pytest.approx(2 / 3) and s["recall"] == 1.0 and s["n_pairs"] == 2
    assert s["chance_precision"] == pytest.approx(1 / len(ATTRIBUTES))
    assert s["claim_rate"] == pytest.approx(3 / (2 * len(ATTRIBUTES)))
    per = s["per_attribute"]
    assert per["spacing"]["precision"] == 0.0 and per["tremor"]["precision"] is None
    with pytest.raises(ValueError):
        faithfulness_summary([])


@pytest.fixture(scope="module")
def examined() -> list[tuple[str, dict, dict]]:
    """(explanation, the examiner's per-attribute flags, faithfulness) of 120 held-out pairs at noise 1.0."""
    w = Writers(50, seed=3, noise=1.0)

    def pairs(ids):
        images = np.concatenate([w.sample(int(k), 4, np.random.default_rng([3, int(k), 1])) for k in ids])
        writer_of = np.repeat(ids, 4)
        return images, writer_of, verification_pairs(writer_of, 3)

    im, _, p = pairs(np.arange(30))
    ex = OfflineExaminer().fit(im[p[:, 0]], im[p[:, 1]], p[:, 2])
    im, writer_of, p = pairs(np.arange(30, 50))
    attribute = {f.name: f.attribute for f in FEATURES}
    out = []
    for i, j, _ in p:
        text = ex.explain(im[i], im[j])
        flags: dict[str, str] = {}
        for name, differs in ex.assess(im[i], im[j]).differs.items():
            a = attribute[name]
            flags[a] = "differ" if differs or flags.get(a) == "differ" else "similar"
        out.append((text, flags, faithfulness(text, w.style(int(writer_of[i])), w.style(int(writer_of[j])))))
    return out


def test_offline_examiner_explanations_read_back(examined):
    for text, flags, _ in examined:
        assert claimed_attributes(text) == {a: flags[a] for a in ATTRIBUTES if a in flags}


def test_offline_examiner_claims_beat_random_claims(examined):
    """Its differ claims are right more often than the same number of claims put on random attributes.

    Measured over 5 seeds of this setup: precision 0.52-0.58, random claims 0.45-0.51, chance 0.28-0.30."""
    results = [r for _, _, r in examined]
    s = faithfulness_summary(results)
    k = np.array([r["n_differ_claims"] for r in results])
    t = np.array([r["n_true_differ"] for r in results])
    random_precision = float((k * t / len(ATTRIBUTES)).sum() / k.sum())     # expected, claims at random
    assert s["precision"] > random_precision + 0.03 and s["precision"] > s["chance_precision"] + 0.2, (
        s["precision"], random_precision, s["chance_precision"])
    assert s["recall"] > 0.3
