"""MultiEdits / ParallelEdits (arXiv:2406.00985): editing several aspects of one image in one denoising pass.

Built so far: the inversion-free DDCM sampler (:mod:`kit.multiedits.sampler`) and edit actions, aspects and
cumulative branch prompts (:mod:`kit.multiedits.aspects`). The grouping pass, attention control, local blending,
metrics, notebooks and widgets are still to come (issue 11).
"""

from kit.multiedits.aspects import (
    Aspect,
    EditAction,
    apply_edits,
    aspects,
    branch_prompts,
    edit_actions_from_captions,
    parse_edit_action,
    shapes_aspect_mapping,
)
from kit.multiedits.sampler import (
    REFERENCES,
    DDCMResult,
    ddcm_sample,
    ddcm_step,
    eps_from_output,
    reference_indices,
)

__status__ = "in progress"  # sampler and aspects only; grouping, attention control, notebooks to come

__all__ = ["Aspect", "EditAction", "apply_edits", "aspects", "branch_prompts", "edit_actions_from_captions",
           "parse_edit_action", "shapes_aspect_mapping", "REFERENCES", "DDCMResult", "ddcm_sample", "ddcm_step", "eps_from_output", "reference_indices"]
