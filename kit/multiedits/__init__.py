"""MultiEdits / ParallelEdits (arXiv:2406.00985): editing several aspects of one image in one denoising pass.

Built so far: the inversion-free DDCM sampler (:mod:`kit.multiedits.sampler`). The grouping pass, branch prompts,
attention control, local blending, metrics, notebooks and widgets are still to come (issue 11).
"""

from kit.multiedits.sampler import (
    REFERENCES,
    DDCMResult,
    ddcm_sample,
    ddcm_step,
    eps_from_output,
    reference_indices,
)

__status__ = "in progress"  # the DDCM sampler only; grouping, branches, attention control, notebooks to come

__all__ = ["REFERENCES", "DDCMResult", "ddcm_sample", "ddcm_step", "eps_from_output", "reference_indices"]
