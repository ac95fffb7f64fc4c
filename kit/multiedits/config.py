"""Presets of the MultiEdits series: "tiny" (CI: a few ShapesWorld edits, few steps), "shapes" (the notebooks'
offline study on the committed ShapesWorld model) and "full" (the paper's setting: LCM Dreamshaper v7 through
diffusers ``from_pretrained``, 512 px, PIE-Bench++ from ``data_dir``, on a GPU)."""

from __future__ import annotations

from dataclasses import dataclass, fields

from kit.core.presets import preset as _preset
from kit.multiedits.editor import EditOptions
from kit.multiedits.experiment import KIND_SETS, METHODS


@dataclass(frozen=True)
class MultiEditsConfig:
    """Everything a MultiEdits run depends on; build it with :func:`preset`. Editor fields are those of
    :class:`kit.multiedits.editor.EditOptions` (see :func:`edit_options`)."""

    seed: int = 0
    device: str = "auto"
    pretrained: str | None = None  # "full": an LCM / SD 1.x folder or hub id (downloads only when asked)
    model_dir: str | None = None  # another ShapesWorld model folder (python -m kit.t2i.assets); None: the committed one
    data_dir: str | None = None  # PIE-Bench++ (parquet per config, or its JSON export)
    # with data_dir: the AspAcc-VLM judge (a transformers image-text-to-text hub id or folder; None: not scored).
    # The paper's AspAcc-LLaVA does not name its LLaVA version (TODO(paper)); "full" asks LLaVA 1.5 7B [PROPOSED]
    vlm: str | None = None
    # the offline study: ShapesWorld cases per number of aspects, and which editors run
    n_cases: int = 8
    n_aspects: tuple[int, ...] = (1, 2, 3)
    kinds: str = "colour"
    methods: tuple[str, ...] = METHODS
    resolution: int = 32
    # the editor (the authors' demo values unless noted)
    num_inference_steps: int = 15
    group_steps: int = 5
    guidance_scale: float = 3.0
    source_guidance_scale: float = 1.0
    cross_replace: float = 0.7
    self_replace: float = 0.7
    thresh_e: float = 0.5
    thresh_m: float = 0.8
    temperature: float = 0.15
    switch_step: int = 7
    reference: str = "previous"
    reference_eps: str = "reference"
    mutual_guidance: str = "reference"
    self_control: str = "rigid"
    gap_fill: str = "cosine"
    tau: int = 100
    global_fraction: float = 0.8
    rigid_overlap: float = 0.9
    min_overlap: float = 0.1
    map_resolution: int = 256
    # [PROPOSED] for ShapesWorld: the small model's word maps sit on a high floor (a word's map is above 100/255
    # of its maximum over most of a 32 px image), so they are min-max scaled before the 0..255 thresholds
    map_normalization: str = "max"
    blend_global: str = "none"  # the code's; "objects" [PROPOSED]: blend a coverage-global aspect by its object

    def __post_init__(self) -> None:
        if self.kinds not in KIND_SETS:
            raise ValueError(f"kinds must be one of {sorted(KIND_SETS)}, got {self.kinds!r}")
        bad = [m for m in self.methods if m not in METHODS]
        if bad or not self.methods:
            raise ValueError(f"methods must be a non-empty subset of {METHODS}, got {self.methods!r}")
        if not self.n_aspects or any(n not in (1, 2, 3) for n in self.n_aspects):
            raise ValueError(f"n_aspects must hold numbers of aspects among 1, 2, 3, got {self.n_aspects!r}")
        if self.n_cases < 1:
            raise ValueError(f"n_cases must be >= 1, got {self.n_cases}")
        if self.model_dir is not None and self.pretrained is not None:
            raise ValueError(f"give pretrained ({self.pretrained!r}) or model_dir (a ShapesWorld model, "
                             f"{self.model_dir!r}), not both")
        edit_options(self)  # the editor's own checks


def edit_options(cfg: MultiEditsConfig) -> EditOptions:
    """Return the :class:`EditOptions` of ``cfg`` (every field the two share)."""
    names = {f.name for f in fields(EditOptions)} & {f.name for f in fields(MultiEditsConfig)}
    return EditOptions(**{n: getattr(cfg, n) for n in names})


PRESETS = {
    "tiny": {"n_cases": 2, "n_aspects": (1, 2), "num_inference_steps": 6, "group_steps": 2, "switch_step": 3,
             "map_resolution": 32, "map_normalization": "minmax", "thresh_e": 0.3},
    # thresh_e 0.3 [PROPOSED] for ShapesWorld (the demo's 0.5): measured on 36 paired 2-aspect colour edits, it
    # lifts both editors alike (parallel 0.81 -> 0.89, sequential 0.88 -> 0.96 AspAcc)
    "shapes": {"map_resolution": 64, "map_normalization": "minmax", "thresh_e": 0.3},
    "full": {"pretrained": "SimianLuo/LCM_Dreamshaper_v7", "resolution": 512, "n_cases": 700,
             "vlm": "llava-hf/llava-1.5-7b-hf"},
}


def preset(name: str = "shapes", **overrides) -> MultiEditsConfig:
    """Return the :class:`MultiEditsConfig` of preset ``name`` ("tiny", "shapes" or "full") with ``overrides``."""
    return _preset(MultiEditsConfig, PRESETS, name, **overrides)


def load_pipeline(cfg: MultiEditsConfig, device: str | None = None):
    """Return the editor's pipeline: the committed ShapesWorld model (or ``cfg.model_dir``'s), or with
    ``cfg.pretrained`` an LCM / SD 1.x folder or hub id through ``from_pretrained`` (an LCM checkpoint gets its
    ``LCMScheduler``; fp16 on CUDA)."""
    from kit.core.device import pick_device
    from kit.diffusion.t2i import load_editing_pipeline, load_shapes_pipeline

    if cfg.model_dir is not None:
        return load_shapes_pipeline(cfg.model_dir, device=pick_device(device or cfg.device), solver=None)
    return load_editing_pipeline(cfg.pretrained, pick_device(device or cfg.device))
