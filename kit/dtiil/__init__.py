"""D-TIIL (arXiv:2404.18033): text-image inconsistency localisation with a diffusion model as the judge.

- :mod:`kit.dtiil.localize`: Align (text-embedding optimisation, optional UNet tuning, restored afterwards), Diff
  (DiffEdit-style guided noise differences over n seeds), Bin, inpainting toward the caption, the second alignment,
  the final map and mask, the consistency score; :func:`localize` runs them all;
- :mod:`kit.dtiil.words`: caption runs (spaCy or a documented fallback) and the run that names the region;
- :mod:`kit.dtiil.scorer`: the small ShapesWorld image-text scorer that stands in for CLIP offline;
- :mod:`kit.dtiil.baselines`: a random mask of the predicted area, a text-free saliency object, cross-attention;
- :mod:`kit.dtiil.metrics`: IoU / F1 / pixel AUC, word hits, detection AUC and its fitted threshold;
- :mod:`kit.dtiil.experiment`: ShapesWorld-TIIL (or TIIL) pairs, evaluated per subset.
"""

from kit.dtiil.localize import (
    AlignResult,
    DiffResult,
    LocalizeOptions,
    LocalizeResult,
    align,
    binarize,
    consistency_score,
    localize,
    noise_difference,
    unet_restored,
)

__all__ = ["AlignResult", "DiffResult", "LocalizeOptions", "LocalizeResult", "align", "binarize",
           "consistency_score", "localize", "noise_difference", "unet_restored"]
