"""Procedural faces for the facesem series: every edit changes the face it should, the threshold decides the label,
generators leave their traces, and the set is seeded."""

from __future__ import annotations

import numpy as np
import pytest

from kit.data.faces import EDIT_LABELS, EDITS, TAU, fingerprint, make_faces, random_identity, render_face


@pytest.fixture(scope="module")
def people():
    rng = np.random.default_rng(3)
    return random_identity(rng), random_identity(rng)


def _changed(a, b, rows=slice(None), cols=slice(None)):
    return np.abs(a[rows, cols].astype(int) - b[rows, cols].astype(int)).sum(-1)


def test_each_edit_grows_with_strength_and_touches_its_region(people):
    a, b = people
    base = render_face(a, size=48)
    assert base.shape == (48, 48, 3) and base.dtype == np.uint8
    np.testing.assert_array_equal(render_face(a, "smile", 0.0, 48), base)  # strength 0 is the face itself
    for edit in EDITS:
        weak = _changed(render_face(a, edit, 0.3, 48, other=b), base).sum()
        strong = _changed(render_face(a, edit, 1.0, 48, other=b), base).sum()
        assert strong > weak > 0, edit
    # the mouth region (lower middle) is what a smile changes; the hair (top rows) stays
    smile = render_face(a, "smile", 1.0, 48)
    assert _changed(smile, base, slice(30, 42), slice(14, 34)).sum() > 5 * _changed(smile, base, slice(0, 12)).sum()
    aged = render_face(a, "age", 1.0, 48)
    assert _changed(aged, base, slice(0, 14)).sum() > 0  # the hair greys
    with pytest.raises(ValueError, match="other="):
        render_face(a, "identity", 0.5)
    with pytest.raises(ValueError, match="edit must be"):
        render_face(a, "beard", 0.5)
    with pytest.raises(ValueError, match="strength"):
        render_face(a, "age", 1.5)


def test_labels_follow_the_threshold_and_ffsc_strings():
    fs = make_faces(400, seed=1)
    fake = fs.strength >= TAU
    edited = fs.generator != ""
    np.testing.assert_array_equal(fs.is_fake.astype(bool), fake & edited)
    for i in np.flatnonzero(fs.is_fake)[:50]:
        assert "".join(map(str, fs.labels[i])) == EDIT_LABELS[fs.edit[i]]
    reals = ~fs.is_fake.astype(bool)
    assert (fs.labels[reals] == 0).all() and (fs.strength[reals] < TAU).all()
    assert 0.35 < fs.is_fake.mean() < 0.65 and (reals & edited).any()  # sub-threshold edits are real
    x, y = fs[0]
    assert x.shape == (3, 48, 48) and 0 <= float(x.min()) and float(x.max()) <= 1 and y.shape == (12,)


def test_seeded_and_restricted_to_the_given_edits_and_generators():
    a, b = make_faces(30, seed=4), make_faces(30, seed=4)
    np.testing.assert_array_equal(a.images, b.images)
    c = make_faces(60, seed=5, edits=("smile",), generators=("C",))
    assert set(c.edit[c.is_fake == 1]) == {"smile"} and set(c.generator) <= {"", "C"}
    with pytest.raises(ValueError, match="subset"):
        make_faces(10, edits=("beard",))


def test_generators_leave_different_traces(people):
    img = render_face(people[0], size=48)
    rng = np.random.default_rng(0)
    traces = {g: fingerprint(img, g, rng) for g in "ABC"}
    lap = {g: np.abs(np.diff(t.astype(int), axis=1)).mean() for g, t in traces.items()}
    assert lap["A"] < np.abs(np.diff(img.astype(int), axis=1)).mean()  # blur smooths
    ramp = np.repeat(np.linspace(0, 255, 48)[None, :, None], 48, 0).repeat(3, 2).astype(np.uint8)
    off = lambda x: np.minimum(x.astype(int) % 24, 24 - x.astype(int) % 24).mean()  # noqa: E731
    assert off(fingerprint(ramp, "B", rng)) < 3.5 < off(ramp)  # B: values pulled to a 24-level grid, plus noise
    assert not np.array_equal(traces["C"], img)
    with pytest.raises(ValueError, match="generator"):
        fingerprint(img, "D", rng)
