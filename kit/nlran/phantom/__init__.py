"""Procedural 3D chest-CT phantoms with lesion masks: the offline stand-in for CC-CCII (spec §6) [C] our choice.

The idea: build a small CT-like volume directly in Hounsfield units (HU), so that the three classes of the paper
(COVID-19 "NCP", common pneumonia "CP", "Normal") differ only in their lesions and every lesion voxel is known.
The heat maps of the networks can then be scored against a true lesion mask, which real CC-CCII scans lack.

Geometry [C] (all our choice, see spec §6). Axis order is ``[D, H, W] = (z: slice, y: anterior -> posterior,
x: image left -> image right)``; positions are given in *normalised coordinates* in [-1, 1] per axis (voxel ``i``
of ``n`` has its centre at ``(i + 0.5) * 2 / n - 1``).

- air -1000 HU; body: an elliptic cylinder along z at +40 HU;
- two lung ellipsoids at -850 HU, centres at x ~ -0.4 ("left" = the image's left half, x < 0) and x ~ +0.4
  ("right"), radii ~ (0.9, 0.5, 0.3) of the half-size along (z, y, x), slightly jittered per phantom;
- vessel specks: small Gaussian blobs inside the lungs pulled towards +40 HU;
- Gaussian noise of standard deviation ``noise_hu`` (default 25 HU), drawn from ``spec.noise_seed``.

Lesions [C]:

- NCP (COVID-like): 4-8 soft Gaussian ground-glass (GGO) blobs with peak -600..-400 HU, peripheral (normalised
  ellipsoid radius 0.55-0.95 inside the lung), posterior-leaning (larger y), always in both lungs. A blob's
  ``radius`` is its half-maximum radius in voxels: the lesion mask is the ball where the blob weight exceeds 0.5
  (intersected with the lungs). Blob weight ``w = 2 ** -(r / radius) ** 2``, cut to 0 beyond ``3 * radius``.
- CP (common-pneumonia-like): one consolidation at -80..+40 HU filling one lung beyond a random oblique plane
  (lobar-like), with a soft edge ``w = sigmoid(d / edge)`` (``d``: signed distance to the plane in voxels); the
  lesion mask is ``w > 0.5`` inside that lung.
- Normal: no lesion.

The ``layout`` knob [C]. ``"texture"`` (the default above) lets the two pneumonias differ in *local* appearance
(ground glass vs consolidation), so a detector of local texture suffices. ``"arrangement"`` makes their lesions
look the same up close and lets only the arrangement differ, as in real CT: both classes get the same number of
the same GGO blobs (same HU range, same radii, same peripheral depth); NCP scatters them over both lungs
(bilateral, multifocal, as above), CP puts all of them in one lung, clustered around one peripheral direction
(unilateral, lobar-like). Telling them apart then needs context across the volume, which is what the non-local
block is for.

Lesions only ever *raise* the HU of lung voxels (``hu = max(hu, lung_hu + w * (lesion_hu - lung_hu))``), so they are
confined to the lungs, and a vessel inside a GGO stays visible.

The package: :mod:`~kit.nlran.phantom.spec` (constants, specs, coordinates, lesion editing),
:mod:`~kit.nlran.phantom.sample` (knobs and random specs), :mod:`~kit.nlran.phantom.render` (volumes and masks).
The torch dataset of phantoms and the CT window are :class:`kit.nlran.data.PhantomDataset` and
:func:`kit.nlran.data.window`.

Everything is vectorised numpy: a 32^3 phantom renders in a few milliseconds. Randomness only comes from the
``numpy.random.Generator`` passed to :func:`sample_spec`, and the noise from the integer ``spec.noise_seed``, so a
spec renders to the same volume every time and lesions can be edited (:func:`add_lesion`, :func:`move_lesion`,
:func:`remove_lesion`) with the noise held fixed.
"""

from __future__ import annotations

from kit.nlran.phantom.render import render
from kit.nlran.phantom.sample import check_knobs, make_phantom, sample_spec
from kit.nlran.phantom.spec import (
    AIR_HU,
    BODY_HU,
    CLASS_TITLES,
    CLASSES,
    CLUSTER_EXTRA,
    CLUSTER_SPREAD,
    CONSOLIDATION_HU,
    GGO_HU,
    KNOB_DEFAULTS,
    LAYOUTS,
    LESION_KINDS,
    LUNG_HU,
    SIDES,
    VESSEL_HU,
    Lesion,
    Lung,
    Phantom,
    PhantomSpec,
    add_lesion,
    move_lesion,
    normalised_to_voxel,
    remove_lesion,
    voxel_to_normalised,
)

__all__ = [
    "AIR_HU", "BODY_HU", "CLASSES", "CLASS_TITLES", "CLUSTER_EXTRA", "CLUSTER_SPREAD", "CONSOLIDATION_HU", "GGO_HU",
    "KNOB_DEFAULTS", "LAYOUTS", "LESION_KINDS", "LUNG_HU", "SIDES", "VESSEL_HU", "Lesion", "Lung", "Phantom",
    "PhantomSpec", "add_lesion", "check_knobs", "make_phantom", "move_lesion", "normalised_to_voxel", "remove_lesion",
    "render", "sample_spec", "voxel_to_normalised",
]
