"""ParallelEdits' editor (arXiv:2406.00985): :func:`edit` edits every aspect of an image in one multi-branch
denoising pass; :func:`sequential_edit` (one aspect at a time) and :func:`single_branch_edit` (all aspects in one
branch) are the baselines it is compared with.

:func:`edit`: (1) the source image is encoded to a clean latent; (2) edit actions and aspects come from the
PIE-Bench++ annotations (``edit_action``, ``aspect_mapping``) or, without them, from the word difference of the two
captions (objects from the ShapesWorld grammar when the words are ShapesWorld's); (3) a grouping pass
(``group_steps`` DDCM steps, branches source -> source and source -> target) records cross-attention and
:func:`kit.multiedits.grouping.group_aspects` sorts the aspects into rigid / non-rigid / global groups; (4) the
branches run together (:func:`run_branches`: DDCM sampling, :mod:`kit.multiedits.control`'s attention control and
local blending), branch k editing branch k - 1's result with the cumulative prompt p_k; (5) the last branch's final
clean estimate is decoded.

The options (:class:`EditOptions`) default to the authors' demo (15 steps, grouping pass 5, guidance 3 for target
branches and 1 for the source, replace windows 0.7, thresh_e 0.5, thresh_m 0.8, temperature 0.15, reference switch
at step 7) except where the spec marks a choice ``[PROPOSED]``; each such choice is an option naming the code's
behaviour beside it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

import torch
from torch import Tensor

from kit.multiedits.aspects import (
    Aspect,
    apply_edits,
    aspects,
    branch_prompts,
    edit_actions_from_captions,
    parse_edit_action,
    resolve_positions,
    shapes_aspect_mapping,
)
from kit.multiedits.control import LocalBlend, branch_attention_edit, branch_mappers, row_layout
from kit.multiedits.grouping import BLEND_GLOBAL, NORMALIZATIONS, Grouping, group_aspects, token_maps
from kit.multiedits.sampler import REFERENCE_EPS, REFERENCES, DDCMResult, ddcm_sample, eps_from_output

__all__ = ["EditOptions", "EditResult", "BranchRun", "edit_grid", "run_branches", "group", "edit", "sequential_edit",
           "single_branch_edit", "prepare_aspects"]

SELF_CONTROLS = ("rigid", "all", "none")
MUTUAL_GUIDANCE = ("reference", "source")


@dataclass(frozen=True)
class EditOptions:
    """Options of :func:`edit` (defaults: the authors' demo, except the ``[PROPOSED]`` ones)."""

    num_inference_steps: int = 15
    group_steps: int = 5
    guidance_scale: float = 3.0          # target branches
    source_guidance_scale: float = 1.0   # the source row (and, in the code, every mutual row)
    cross_replace: float = 0.7
    self_replace: float = 0.7
    thresh_e: float = 0.5
    thresh_m: float = 0.8
    temperature: float = 0.15
    switch_step: int = 7
    reference: str = "previous"          # [PROPOSED] branch k builds on branch k-1; "code_order": the code's concat
    reference_eps: str = "reference"     # [PROPOSED] eps_r of the referenced row; "source": the code's source eps;
                                         # "reference_source_scale" [PROPOSED]: the referenced row at the source scale
    mutual_guidance: str = "reference"   # [PROPOSED] a mutual row guided like its reference; "source": the code's 1
    self_control: str = "rigid"          # the code's final pass; "all" or "none"
    gap_fill: str = "cosine"             # ParallelEdits' refinement mapper; "none": prompt-to-prompt's
    tau: int = 100
    global_fraction: float = 0.8
    rigid_overlap: float = 0.9
    min_overlap: float = 0.1             # [PROPOSED]; the code absorbs on any overlap (0)
    map_resolution: int = 256
    map_normalization: str = "max"       # the code's; "minmax" [PROPOSED] for maps with a high floor (ShapesWorld)
    blend: bool = True
    blend_global: str = "none"           # the code's: the global branch is not blended; "objects" [PROPOSED]
    max_map_pixels: int = 32 * 32        # layers recorded for the maps and the blend (<= 32 x 32 queries)
    keep_heads: bool = False             # keep every head's maps (the explorer's head slider), not their mean

    def __post_init__(self) -> None:
        checks = {"map_normalization": NORMALIZATIONS, "blend_global": BLEND_GLOBAL, "reference": REFERENCES,
                  "reference_eps": REFERENCE_EPS, "mutual_guidance": MUTUAL_GUIDANCE, "self_control": SELF_CONTROLS}
        for name, allowed in checks.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        for name in ("num_inference_steps", "group_steps"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        for name in ("cross_replace", "self_replace", "global_fraction", "rigid_overlap"):
            if not 0.0 <= float(getattr(self, name)) <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {getattr(self, name)!r}")

    @classmethod
    def code(cls, **overrides: Any) -> EditOptions:
        """Return the options that reproduce the authors' code where the spec proposes otherwise."""
        return cls(**{"reference": "code_order", "reference_eps": "source", "mutual_guidance": "source",
                      "min_overlap": 0.0, **overrides})


def _options(options: EditOptions | None, opts: Mapping[str, Any]) -> EditOptions:
    base = options or EditOptions()
    unknown = set(opts) - {f.name for f in fields(EditOptions)}
    if unknown:
        raise ValueError(f"unknown edit options {sorted(unknown)}; see EditOptions")
    return replace(base, **opts) if opts else base


@dataclass
class BranchRun:
    """One multi-branch pass: the ``sample`` (DDCM result over the branch rows [t_0, m_0, ...]), the attention
    ``store``, the ``blend`` (None when not blended) and the row ``layout``."""

    sample: DDCMResult
    store: Any
    blend: LocalBlend | None
    layout: dict[str, list[int]]

    @property
    def edits(self) -> Tensor:
        """Return the final clean estimate of every target row [K, c, h, w] (the last is the edit)."""
        return self.sample.x0[0::2]

    @property
    def x0_steps(self) -> Tensor:
        """Return the target rows' clean estimates at every step [n, K, c, h, w]."""
        return self.sample.x0_steps[:, 0::2]


def edit_grid(pipe, num_inference_steps: int, original_inference_steps: int = 50):
    """Return the step grid (timesteps [n], abar [n + 1]) the editor walks: an ``LCMScheduler``'s own timesteps
    (``original_inference_steps`` 50, as the authors' demo sets) when the pipeline has one, as with the paper's LCM
    Dreamshaper v7; otherwise the DDIM grid of the pipeline's noise schedule."""
    from kit.diffusion.editing import DDIMGrid, ddim_grid

    sched = pipe.scheduler
    if type(sched).__name__ != "LCMScheduler":
        return ddim_grid(pipe, num_inference_steps)
    from diffusers import LCMScheduler

    lcm = LCMScheduler.from_config(sched.config)
    lcm.set_timesteps(num_inference_steps, original_inference_steps=original_inference_steps)
    ts = lcm.timesteps.clone()
    abar_all = lcm.alphas_cumprod.to(torch.float64)
    levels = [abar_all[int(t)] for t in ts] + [torch.as_tensor(lcm.final_alpha_cumprod, dtype=torch.float64)]
    return DDIMGrid(ts, torch.stack(levels))


def _references(k: int, switch_step: int, reference: str):
    """Return references(step) for the branch rows [t_0, m_0, ...] (indices into those rows, -1 the source)."""
    def refs(step: int) -> list[int]:
        out = []
        for b in range(k):
            if step < switch_step:
                out += [-1, -1]
            elif reference == "previous":  # t_b and m_b both build on t_{b-1}
                j = -1 if b == 0 else 2 * (b - 1)
                out += [j, j]
            else:  # the code's concatenation: t_b on t_{b+1}, m_b on m_{b+1}, the last on the source
                out += ([2 * (b + 1), 2 * (b + 1) + 1] if b + 1 < k else [-1, -1])
        return out
    return refs


@torch.no_grad()
def run_branches(pipe, source: Tensor, prompts: Sequence[str], *, rigid: Sequence[bool],
                 blend_words: Sequence[Sequence[str]] | None = None, self_control: Sequence[bool] | None = None,
                 num_inference_steps: int, options: EditOptions, generator: torch.Generator | None = None
                 ) -> BranchRun:
    """Run ParallelEdits' multi-branch pass on the clean ``source`` latent [1, c, h, w] for branch prompts
    ``prompts`` = [p_0 (the source prompt), p_1, ..., p_K]: branch k edits p_k into p_{k+1}, rigidly (word-swap
    mapper, self-attention control under ``self_control="rigid"``) where ``rigid[k]``, blending the words
    ``blend_words[k]`` locally."""
    from kit.diffusion.attention import AttentionStore, attention_control
    from kit.diffusion.t2i import _GuidedModel

    k = len(prompts) - 1
    if k < 1:
        raise ValueError("prompts must hold the source prompt and at least one branch prompt")
    if any(not isinstance(p, str) or not p.strip() for p in prompts):
        raise ValueError(f"every prompt must be a non-empty string, got {list(prompts)!r}")
    blend_words = [[] for _ in range(k)] if blend_words is None else [list(w) for w in blend_words]
    if self_control is None:
        self_control = {"rigid": list(rigid), "all": [True] * k, "none": [False] * k}[options.self_control]
    layout = row_layout(k)
    o = options
    w_t, w_s = float(o.guidance_scale), float(o.source_guidance_scale)
    row_prompts, row_w = [prompts[0]], [w_s]
    for b in range(k):
        row_prompts += [prompts[b + 1], prompts[b]]
        mutual_w = w_s if (o.mutual_guidance == "source" or b == 0) else w_t
        row_w += [w_t, mutual_w]
    cond = pipe.encode_prompt(row_prompts)
    guided = any(w != 1.0 for w in row_w)
    uncond = pipe.encode_prompt([""] * len(row_prompts)) if guided else None
    model = _GuidedModel(pipe.unet, cond, uncond, torch.tensor(row_w))
    grid = edit_grid(pipe, num_inference_steps)
    pred_type = pipe.scheduler.config.prediction_type
    mappers = branch_mappers(pipe.tokenizer, prompts, rigid, gap_fill=o.gap_fill, text_encoder=pipe.text_encoder)
    edit = branch_attention_edit(mappers, self_control, len(grid), cross_replace=o.cross_replace,
                                 self_replace=o.self_replace)
    store = AttentionStore(max_query_pixels=o.max_map_pixels, average_heads=not o.keep_heads)
    blend = LocalBlend(store, pipe.tokenizer, prompts, mappers, grid.abar, blend_words, thresh_e=o.thresh_e,
                       thresh_m=o.thresh_m, temperature=o.temperature) if o.blend else None

    def predict(x: Tensor, t: Tensor, step: int) -> Tensor | tuple[Tensor, Tensor]:
        abar = grid.abar[step].to(x.device)
        eps = eps_from_output(model(x, t.to(x.device)).sample, x, abar, pred_type)
        if o.reference_eps != "reference_source_scale":
            return eps
        if model.parts is None:  # unguided: every row is already at the source's scale (1)
            return eps, eps
        out_u, out_c = model.parts
        return eps, eps_from_output(out_u + w_s * (out_c - out_u), x, abar, pred_type)

    def blend_or_record(step: int, x_prev: Tensor, src_prev: Tensor) -> Tensor:
        return blend(step, x_prev, src_prev) if blend is not None else x_prev

    with attention_control(pipe.unet, store, edit):
        store.begin(batch_size=len(row_prompts), guided=guided, latent_size=tuple(source.shape[-2:]))
        sample = ddcm_sample(predict, source.float(), grid.timesteps.to(source.device),
                             grid.abar.to(source.device, torch.float32), 2 * k, switch_step=o.switch_step,
                             generator=generator, blend=blend_or_record,
                             references=_references(k, o.switch_step, o.reference), reference_eps=o.reference_eps)
    return BranchRun(sample, store, blend, layout)


@dataclass
class EditResult:
    """What :func:`edit` (and the baselines) return: the edited ``image`` (PIL), the aspect phrases of each branch
    (``groups``) and their ``group_kinds``, the cumulative ``branch_prompts`` [p_0, ..., p_K], the local-blend
    ``masks`` of each branch (bool [steps, h, w], latent resolution; None where not blended), ``seconds`` (wall
    time of the grouping and editing passes), the ``grouping``, the branches' x0 estimates per step
    ``x0_steps`` [n, K, c, h, w] and the final ``latent`` [1, c, h, w]."""

    image: Any
    groups: list[list[str]]
    group_kinds: list[str]
    branch_prompts: list[str]
    masks: list[Tensor | None]
    seconds: float
    grouping: Grouping | None = None
    x0_steps: Tensor | None = None
    latent: Tensor | None = None
    runs: list[BranchRun] = field(default_factory=list, repr=False)


def prepare_aspects(source_prompt: str, target_prompt: str, edit_action=None, aspect_mapping=None) -> list[Aspect]:
    """Return the aspects of an edit: from PIE-Bench++'s ``edit_action`` / ``aspect_mapping`` when given, else from
    the captions' word difference with ShapesWorld objects (every aspect is global when no object is known)."""
    for name, p in (("source_prompt", source_prompt), ("target_prompt", target_prompt)):
        if not isinstance(p, str) or not p.strip():
            raise ValueError(f"{name} must be a non-empty string, got {p!r}")
    actions = resolve_positions(source_prompt, parse_edit_action(edit_action)) if edit_action is not None else \
        edit_actions_from_captions(source_prompt, target_prompt)
    if edit_action is not None and apply_edits(source_prompt, actions).split() != target_prompt.split():
        raise ValueError(f"edit_action turns the source prompt into {apply_edits(source_prompt, actions)!r}, not the "
                         f"target prompt {target_prompt!r}")
    if aspect_mapping is None:
        aspect_mapping = shapes_aspect_mapping(source_prompt, target_prompt)
    return aspects(actions, aspect_mapping)


def _source_latent(pipe, image) -> Tensor:
    from kit.diffusion.editing import encode_image

    if image is None:
        raise ValueError("image is required: a PIL image or an H x W x 3 uint8 array")
    return encode_image(pipe, image, resize=True)


def _generator(pipe, seed: int) -> torch.Generator:
    return torch.Generator(device="cpu").manual_seed(int(seed))


def _decode(pipe, latent: Tensor):
    return pipe._decode(latent, "pil")[0]


def _grouping_pass(pipe, source: Tensor, source_prompt: str, target_prompt: str, items: list[Aspect],
                   o: EditOptions, seed: int) -> Grouping:
    """Run the grouping pass (branches source -> source, rigid and self-controlled, and source -> target) and
    group the aspects on its token maps."""
    from kit.diffusion.align import word_positions

    run = run_branches(pipe, source, [source_prompt, source_prompt, target_prompt], rigid=[True, False],
                       self_control=[True, False], num_inference_steps=o.group_steps,
                       options=replace(o, blend=False), generator=_generator(pipe, seed))
    layout = run.layout
    src_maps = token_maps(run.store, word_positions(pipe.tokenizer, source_prompt), layout["t"][0],
                          resolution=o.map_resolution, normalize=o.map_normalization)
    tgt_maps = token_maps(run.store, word_positions(pipe.tokenizer, target_prompt), layout["t"][1],
                          resolution=o.map_resolution, normalize=o.map_normalization)
    return group_aspects(items, source_prompt.split(), target_prompt.split(), src_maps, tgt_maps, tau=o.tau,
                         global_fraction=o.global_fraction, rigid_overlap=o.rigid_overlap,
                         min_overlap=o.min_overlap)


def group(pipe, image, source_prompt: str, target_prompt: str, *, edit_action=None, aspect_mapping=None,
          seed: int = 0, options: EditOptions | None = None, **opts: Any) -> Grouping:
    """Return the :class:`kit.multiedits.grouping.Grouping` of an edit: the grouping pass alone (what :func:`edit`
    does before its branches run)."""
    o = _options(options, opts)
    items = prepare_aspects(source_prompt, target_prompt, edit_action, aspect_mapping)
    return _grouping_pass(pipe, _source_latent(pipe, image), source_prompt, target_prompt, items, o, seed)


def _result(pipe, run: BranchRun, prompts: list[str], grouping: Grouping | None, groups: list[list[str]],
            kinds: list[str], seconds: float, runs: list[BranchRun]) -> EditResult:
    latent = run.edits[-1:]
    masks = [None if run.blend is None or not run.blend.edit_ind[k].any() else torch.stack(run.blend.masks[k])
             for k in range(len(prompts) - 1)]
    return EditResult(_decode(pipe, latent), groups, kinds, prompts, masks, seconds, grouping, run.x0_steps,
                      latent, runs)


def edit(pipe, image, source_prompt: str, target_prompt: str, *, edit_action=None, aspect_mapping=None,
         seed: int = 0, options: EditOptions | None = None, **opts: Any) -> EditResult:
    """Edit every aspect of ``image`` (PIL or H x W x 3 uint8; resized to the model's size) that turns
    ``source_prompt`` into ``target_prompt``, in one multi-branch pass (see the module docstring). ``opts``
    override fields of ``options`` (:class:`EditOptions`). An identity edit (no word differs) runs one branch on
    the source prompt at the source guidance scale: a reconstruction."""
    o = _options(options, opts)
    source = _source_latent(pipe, image)
    t0 = time.perf_counter()
    if source_prompt.split() == target_prompt.split() and edit_action is None:
        run = run_branches(pipe, source, [source_prompt, source_prompt], rigid=[True],
                           num_inference_steps=o.num_inference_steps,
                           options=replace(o, guidance_scale=o.source_guidance_scale, blend=False),
                           generator=_generator(pipe, seed))
        return _result(pipe, run, [source_prompt, source_prompt], None, [[]], ["identity"],
                       time.perf_counter() - t0, [run])
    items = prepare_aspects(source_prompt, target_prompt, edit_action, aspect_mapping)
    grouping = _grouping_pass(pipe, source, source_prompt, target_prompt, items, o, seed)
    prompts = branch_prompts(source_prompt, grouping.group_actions(), target_prompt)
    rigid = [kind == "rigid" for kind in grouping.group_kinds]
    run = run_branches(pipe, source, prompts, rigid=rigid, blend_words=grouping.blend_words(o.blend_global),
                       num_inference_steps=o.num_inference_steps, options=o, generator=_generator(pipe, seed))
    groups = [[items[i].action.phrase for i in g] for g in grouping.groups]
    return _result(pipe, run, prompts, grouping, groups, grouping.group_kinds, time.perf_counter() - t0, [run])


def single_branch_edit(pipe, image, source_prompt: str, target_prompt: str, *, edit_action=None,
                       aspect_mapping=None, seed: int = 0, options: EditOptions | None = None,
                       **opts: Any) -> EditResult:
    """Baseline: all aspects in one branch (source -> target), rigid only when every aspect is, blending the
    objects of all non-global aspects (InfEdit's single edit with ParallelEdits' grouping pass for the kinds)."""
    o = _options(options, opts)
    source = _source_latent(pipe, image)
    t0 = time.perf_counter()
    items = prepare_aspects(source_prompt, target_prompt, edit_action, aspect_mapping)
    grouping = _grouping_pass(pipe, source, source_prompt, target_prompt, items, o, seed)
    words = list(dict.fromkeys(w for ws in grouping.blend_words(o.blend_global) for w in ws))
    rigid = all(kind == "rigid" for kind in grouping.kinds)
    prompts = [source_prompt, target_prompt]
    run = run_branches(pipe, source, prompts, rigid=[rigid], blend_words=[words],
                       num_inference_steps=o.num_inference_steps, options=o, generator=_generator(pipe, seed))
    groups = [[a.action.phrase for a in items]]
    return _result(pipe, run, prompts, grouping, groups, ["rigid" if rigid else "non-rigid"],
                   time.perf_counter() - t0, [run])


def sequential_edit(pipe, image, source_prompt: str, target_prompt: str, *, edit_action=None, aspect_mapping=None,
                    seed: int = 0, options: EditOptions | None = None, **opts: Any) -> EditResult:
    """Baseline: one aspect at a time, each a full :func:`edit` (grouping pass and one branch) of the previous
    result, decoded and encoded again between aspects; ``seconds`` is the sum. ``branch_prompts`` are the prompts
    after each aspect, ``masks`` one per aspect."""
    o = _options(options, opts)
    items = prepare_aspects(source_prompt, target_prompt, edit_action, aspect_mapping)
    mapping = aspect_mapping if aspect_mapping is not None else shapes_aspect_mapping(source_prompt, target_prompt)
    done, prompts, masks, runs, seconds = [], [source_prompt], [], [], 0.0
    current, kinds, steps = image, [], []
    for asp in items:
        done.append(asp.action)
        nxt = apply_edits(source_prompt, done)
        res = edit(pipe, current, prompts[-1], nxt, aspect_mapping=mapping, seed=seed, options=o)
        current, seconds = res.image, seconds + res.seconds
        prompts.append(nxt)
        masks += res.masks
        kinds += res.group_kinds
        runs += res.runs
        steps.append(res.x0_steps[:, -1:])
    if prompts[-1].split() != target_prompt.split():
        raise ValueError(f"the edit actions give {prompts[-1]!r}, not the target prompt {target_prompt!r}")
    latent = runs[-1].edits[-1:]
    return EditResult(current, [[a.action.phrase] for a in items], kinds, prompts, masks, seconds, None,
                      torch.cat(steps, dim=1), latent, runs)
