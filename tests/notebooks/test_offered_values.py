"""Every value a notebook's parameters cell offers (the quoted options in its comments) must run.

Each offered value is either run here (``RUNS``: a few combined runs cover several values at once, with the
training notebooks shrunk to one short epoch) or exempt with the reason it cannot run offline on a CPU
(``EXEMPT``). A new option in a parameters cell that is in neither table fails ``test_every_offered_value_is_
covered``, so the table cannot silently fall behind the notebooks."""

from __future__ import annotations

import ast
import io
import json
import re
import tokenize
from pathlib import Path

import nbformat
import pytest

from kit.runner import run_notebook

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted(p for p in (ROOT / "notebooks").rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)

# (notebook, {parameter: value}): every non-default offered value appears in at least one run
RUNS = [
    ("nlran/03_explore", {"label": "Normal", "model_name": "resnet18"}),
    ("nlran/03_explore", {"label": "CP", "model_name": "nlran_no_nl"}),
    ("nlran/03_explore", {"model_name": "resnet18_cbam"}),
    ("nlran/01_train", {"model": "nlran_no_nl", "norm": "group", "epochs": 1, "n_train": 24}),
    ("nlran/01_train", {"model": "resnet18", "epochs": 1, "n_train": 24}),
    ("nlran/01_train", {"model": "resnet18_cbam", "epochs": 1, "n_train": 24}),
    ("nlran/01_train", {"phantom_layout": "arrangement", "epochs": 1, "n_train": 24}),
    ("nlran/03_explore", {"layout": "arrangement"}),
    ("t2i/03_explore", {"preset": "shapes"}),
    ("multiedits/01_train", {"kinds": "mixed"}),
    ("multiedits/02_evaluate", {"kinds": "mixed", "n_cases": 1}),
    ("multiedits/03_explore", {"preset": "shapes"}),
    ("dtiil/02_evaluate", {"word_scorer": "oracle", "n_pairs": 2, "n_val": 2}),
    ("dtiil/03_explore", {"word_scorer": "oracle"}),
    ("defi/03_explore", {"fill": "patch", "mask_kind": "strokes", "photo": "china", "per_fill": 2}),
    ("defi/03_explore", {"fill": "biharmonic", "mask_kind": "disc"}),
    ("hv_vlm/01_train", {"label_fractions": "1.0", "steps": 4}),
    ("hv_vlm/02_evaluate", {"examiner": "none"}),
    ("sslhv/01_train", {"method": "vae", "steps": 4, "pretrain_writers": "all"}),
    ("sslhv/03_explore", {"map_method": "tsne"}),
    ("facesem/01_train", {"mode": "binary", "protocol": "protocol2", "steps": 4}),
    ("facesem/01_train", {"mode": "multiclass", "protocol": "protocol1", "steps": 4}),
    ("facesem/01_train", {"mode": "sigmoid", "steps": 4}),
    ("cmdfd/01_train", {"loss": "ce", "train_config": "shift_only", "kind": "js", "epochs": 1}),
    ("cmdfd/01_train", {"loss": "ce_cd", "epochs": 1}),
    ("cmdfd/03_explore", {"loss": "ce", "clip_kind": "shift", "offset": 4}),
    ("cmdfd/03_explore", {"loss": "ce_cd", "clip_kind": "real"}),
    ("cmdfd/03_explore", {"clip_kind": "swap"}),
    ("cmdfd/03_explore", {"clip_kind": "talking_head"}),
]

_GPU = "the paper's setting: needs a GPU and the real dataset (smoke-tested on a GPU by tools/, loaders on fixtures)"
_REAL_DATA = ("a real data set's layout: reads its files under data_dir, which tests never have (the loaders are "
              "tested on fixtures in tests/kit/data/test_inpainting.py)")
_HUB = "a hub id: downloads weights, which tests never do (the same path is tested with a tiny saved model)"
EXEMPT = {
    ("*", "preset", "full"): _GPU,
    ("*", "preset", "full_vit"): _GPU,
    ("*", "pretrained", "full"): _GPU,
    ("*", "pretrained", "google/ddpm-cifar10-32"): _HUB,
    ("*", "pretrained", "stable-diffusion-v1-5/stable-diffusion-v1-5"): _HUB,
    ("t2i/01_train", "preset", "shapes"): "the committed model's 2,800-step recipe (about 40 CPU minutes); the tiny "
                                          "preset runs the same training code",
    ("multiedits/01_train", "preset", "shapes"): "the README's study sets (8 edits per number of aspects); the tiny "
                                                 "preset runs the same code on 2",
    ("multiedits/02_evaluate", "preset", "shapes"): "the README's study (3 editors on 24 edits, about 20 CPU minutes); "
                                                    "the tiny preset runs the same code on 4",
    ("*", "pretrained", "SimianLuo/LCM_Dreamshaper_v7"): _HUB,
    ("multiedits/02_evaluate", "vlm", "llava-hf/llava-1.5-7b-hf"): _HUB,
    ("dtiil/01_train", "preset", "shapes"): "generates the README's 48 pairs instead of 4; the tiny preset runs the "
                                           "same code",
    ("dtiil/03_explore", "preset", "shapes"): "the README's settings (a 40-step alignment instead of 20); the tiny "
                                              "preset runs the same code",
    ("dtiil/02_evaluate", "preset", "shapes"): "the README's study (D-TIIL and 3 baselines on 56 pairs, about 20 CPU "
                                               "minutes); the tiny preset runs the same code on 4",
    ("dtiil/02_evaluate", "word_scorer", "shapes"): "the tiny preset's own scorer: the default run (None) uses it",
    ("dtiil/03_explore", "word_scorer", "shapes"): "the tiny preset's own scorer: the default run (None) uses it",
    ("*", "word_scorer", "clip"): "downloads CLIP ViT-B/32 (the full preset's scorer; ClipScorer is tested on a tiny "
                                  "random CLIP)",
    ("defi/01_train", "preset", "lite"): "the committed model's recipe (2400 crops, 800 steps: 25 min of training measured "
                                         "on 2 shared cores, `python -m kit.defi.assets`); the tiny preset runs the same code",
    ("defi/02_evaluate", "preset", "lite"): "the README's test set (40 crops per fill instead of 8, about a minute); "
                                            "the tiny preset runs the same code",
    ("defi/03_explore", "fill", "ns"): "cv2.inpaint with the Navier-Stokes flag instead of Telea's: the same code "
                                       "path as the default, each fill tested in tests/kit/data/test_inpainting.py",
    **{("*", "data", layout): _REAL_DATA for layout in ("iid", "defacto", "manidataset", "json")},
    ("hv_vlm/01_train", "preset", "lite"): "the committed model's recipe (1600 writers, 1000 steps, `python -m "
                                           "kit.hv_vlm.assets`); the tiny preset runs the same code",
    ("hv_vlm/02_evaluate", "preset", "lite"): "the committed model's 200 test writers (its own evaluation, stored in "
                                              "results.json and shown by the tiny run); the tiny preset runs the same code",
    ("*", "paligemma", "google/paligemma-3b-pt-224"): _HUB,
    ("hv_vlm/02_evaluate", "examiner", "paligemma"): _HUB,
    ("hv_vlm/02_evaluate", "examiner", "openai"): "sends the images to the OpenAI API (a key and the network); the "
                                                  "backend is tested against a fake server on loopback",
    ("sslhv/01_train", "preset", "lite"): "the committed encoders' recipe (300 steps of 256 images on 640 writers, "
                                          "`python -m kit.sslhv.assets`); the tiny preset runs the same code",
    ("sslhv/02_evaluate", "preset", "lite"): "120 test writers instead of 18 (a few CPU minutes); the tiny preset runs "
                                             "the same code",
    ("facesem/01_train", "preset", "lite"): "the committed detectors' recipe (3000 faces, 400 steps, `python -m "
                                            "kit.facesem.assets`); the tiny preset runs the same code",
    ("facesem/02_evaluate", "preset", "lite"): "1000 test faces per protocol instead of 300; the tiny preset runs the "
                                               "same code",
    ("cmdfd/01_train", "preset", "lite"): "the committed students' recipe (500 clips, 6 epochs, `python -m "
                                          "kit.cmdfd.assets`); the tiny preset runs the same code",
    ("cmdfd/02_evaluate", "preset", "lite"): "500 fresh test clips instead of 160; the tiny preset runs the same code",
    ("t2i/02_evaluate", "preset", "shapes"): "the README's counts (30 multi-object and 30 attention prompts, several "
                                             "CPU minutes) on the same committed model as tiny, which runs the same "
                                             "code (t2i/03 runs preset shapes)",
}
# what a comment quotes that is not a value of its parameter (folder names, keys, the preset it goes with)
NOT_VALUES = {("data_dir", "NCP/"), ("data_dir", "CP/"), ("data_dir", "Normal/"), ("data_dir", "full"),
              ("norm", "batch"), ("teacher_checkpoint", "model"), ("train_dir", "/digits")}


def _id(p: Path) -> str:
    return str(p.relative_to(ROOT / "notebooks").with_suffix(""))


def offered_values(path: Path) -> dict[str, tuple[object, list[str]]]:
    """Return {parameter: (default, [quoted options in its comment])} of the notebook's parameters cell."""
    nb = nbformat.read(str(path), as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    out = {}
    for tok in tokenize.generate_tokens(io.StringIO(cell.source).readline):
        if tok.type != tokenize.COMMENT:
            continue
        line = tok.line
        name, _, rest = line.partition("=")
        default = ast.literal_eval(rest.split("#", 1)[0].strip())
        name = name.strip()
        out[name] = (default, [q for q in re.findall(r'"([^"]+)"', tok.string) if (name, q) not in NOT_VALUES])
    return out


def _covered(nb: str, name: str, value: str, default: object) -> bool:
    return value == default or any(n == nb and p.get(name) == value for n, p in RUNS)


def test_every_offered_value_is_covered():
    missing = []
    for path in NOTEBOOKS:
        for name, (default, values) in offered_values(path).items():
            for v in values:
                exempt = (_id(path), name, v) in EXEMPT or ("*", name, v) in EXEMPT
                if not exempt and not _covered(_id(path), name, v, default):
                    missing.append(f"{_id(path)}: {name}={v!r}")
    assert not missing, f"offered in a parameters cell but neither run nor exempt: {missing}"


def test_the_offered_values_parser_reads_options():
    opts = offered_values(ROOT / "notebooks" / "nlran" / "03_explore.ipynb")
    assert opts["label"] == ("NCP", ["NCP", "CP", "Normal"])
    assert opts["model_name"][1] == ["nlran", "nlran_no_nl", "resnet18", "resnet18_cbam"]


@pytest.mark.notebook
@pytest.mark.parametrize("nb,params", RUNS, ids=[f"{n}:{','.join(f'{k}={v}' for k, v in p.items())}" for n, p in RUNS])
def test_offered_value_runs(nb, params, tmp_path):
    path = ROOT / "notebooks" / f"{nb}.ipynb"
    run_notebook(path, params, tmp_path, timeout=600)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    if nb == "nlran/03_explore":
        assert metrics["phantom"]["label"] == params.get("label", "NCP")
        assert metrics["phantom"]["layout"] == params.get("layout", "texture")
        assert abs(sum(metrics["phantom"]["probabilities"].values()) - 1) < 1e-6
        if params.get("label") == "Normal":
            assert metrics["phantom"]["lesions"] == 0
    if nb == "defi/03_explore":
        assert metrics["inpaint_yourself"]["fill"] == params["fill"]
        assert metrics["inpaint_yourself"]["mask_kind"] == params.get("mask_kind", "box")
    if nb == "nlran/01_train":
        assert metrics["config"]["model"] == params.get("model", "nlran")
        assert metrics["config"]["phantom_layout"] == params.get("phantom_layout", "texture")
        assert 0.0 <= metrics["test"]["auc_macro"] <= 1.0
