"""MultiEdits / ParallelEdits (arXiv:2406.00985): editing several aspects of one image in one denoising pass.

- :mod:`kit.multiedits.sampler`: the inversion-free DDCM sampler;
- :mod:`kit.multiedits.aspects`: edit actions (PIE-Bench++ ``edit_action``), aspects and cumulative branch prompts;
- :mod:`kit.multiedits.grouping`: token maps, the overlap coefficient, rigid / non-rigid / global groups;
- :mod:`kit.multiedits.control`: the multi-branch cross- and self-attention control and local blending;
- :mod:`kit.multiedits.editor`: :func:`edit` (ParallelEdits), :func:`sequential_edit` and :func:`single_branch_edit`;
- :mod:`kit.multiedits.experiment`: ShapesWorld multi-aspect cases and the oracle's scores;
- :mod:`kit.multiedits.paired`: parallel against sequential editing on the same edits, case by case (sign test).

Measured and open (issue 11, notebooks/multiedits/README.md): on ShapesWorld, parallel editing is faster than
sequential editing (about 0.6x the time) and beats the single-branch edit, but is less accurate than sequential
editing at 2 and 3 aspects (also on a model fine-tuned on edit-rich scenes); the full preset (LCM Dreamshaper v7,
PIE-Bench++) has not been run: it needs a GPU and the hub's weights.
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
from kit.multiedits.editor import EditOptions, EditResult, edit, group, sequential_edit, single_branch_edit
from kit.multiedits.grouping import Grouping, group_aspects, overlap, token_maps
from kit.multiedits.sampler import (
    REFERENCES,
    DDCMResult,
    ddcm_sample,
    ddcm_step,
    eps_from_output,
    reference_indices,
)

__status__ = "in progress"  # issue 11's bar (parallel >= sequential accuracy on 2-aspect edits) is not met offline

__all__ = ["Aspect", "EditAction", "apply_edits", "aspects", "branch_prompts", "edit_actions_from_captions",
           "parse_edit_action", "shapes_aspect_mapping", "EditOptions", "EditResult", "edit", "group", "sequential_edit",
           "single_branch_edit", "Grouping", "group_aspects", "overlap", "token_maps", "REFERENCES", "DDCMResult", "ddcm_sample", "ddcm_step", "eps_from_output", "reference_indices"]
