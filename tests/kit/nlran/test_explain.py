"""kit.nlran.explain: resizing, attention maps, CAM and Grad-CAM against independent computations and MONAI,
candidate layers, occlusion sensitivity, and the heat-map scores on hand-made arrays."""

from __future__ import annotations

import copy
import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from monai.visualize import CAM, GradCAM
from torch import nn

from kit.nlran.explain import attention_heatmaps, cam, candidate_layers, grad_cam, heatmaps, upsample_to
from kit.nlran.occlusion import occlusion_sensitivity
from kit.nlran.scores import heat_auroc, pointing_game, score_heatmaps, top_share

torch.set_num_threads(1)


class _Net(nn.Module):
    """A small network with the NL-RAN layout: stem, three sigmoid masks, a last feature map (module "final_act")
    that is globally average-pooled and fed to ``classifier``. Weights from an explicit generator."""

    cam_layer = "final_act"

    def __init__(self, num_classes: int = 3, channels: int = 6, seed: int = 0):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv3d(1, channels, 3, padding=1), nn.BatchNorm3d(channels), nn.ReLU())
        self.mask_convs = nn.ModuleList([nn.Conv3d(channels, channels, 1) for _ in range(3)])
        self.down = nn.Conv3d(channels, channels, 3, stride=2, padding=1)
        self.final_act = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.dropout = nn.Dropout(0.3)
        self.classifier = nn.Linear(channels, num_classes)
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.4)

    def _maps(self, x: torch.Tensor) -> dict:
        h = self.stem(x)
        m1 = torch.sigmoid(self.mask_convs[0](h))
        h = self.down(h * (1 + m1))
        m2 = torch.sigmoid(self.mask_convs[1](h))
        h = h * (1 + m2)
        m3 = torch.sigmoid(self.mask_convs[2](F.max_pool3d(h, 2)))
        f = self.final_act(h)
        logits = self.classifier(self.dropout(self.pool(f).flatten(1)))
        return {"logits": logits, "masks": [m1, m2, m3], "features": f}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._maps(x)["logits"]


class StandIn(_Net):
    """The contract's interface: forward_maps(x) -> {logits, masks, features}."""

    def forward_maps(self, x: torch.Tensor) -> dict:
        return self._maps(x)


class NoMaps(_Net):
    """The same network seen as a baseline: no forward_maps, so CAM must hook cam_layer."""


class BoxSum(nn.Module):
    """logit 0 = sum of the input inside a known box; logits 1, 2 = 0."""

    def __init__(self, box):
        super().__init__()
        self.box = box

    def forward(self, x):
        s = x[:, 0][(slice(None), *self.box)].sum(dim=(1, 2, 3))
        return torch.stack([s, torch.zeros_like(s), torch.zeros_like(s)], dim=1)


def _x(b: int = 2, size: int = 16, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 1, size, size, size, generator=g)


def _hooked(model: nn.Module, x: torch.Tensor, layer: str = "final_act"):
    """Independent capture of a layer's output and the logits (eval mode)."""
    store = {}
    h = dict(model.named_modules())[layer].register_forward_hook(lambda m, i, o: store.update(f=o))
    model.eval()
    logits = model(x)
    h.remove()
    return store["f"], logits


def _minmax(t: torch.Tensor) -> torch.Tensor:
    flat = t.reshape(t.shape[0], -1)
    lo, hi = flat.min(1, keepdim=True).values, flat.max(1, keepdim=True).values
    return ((flat - lo) / (hi - lo)).reshape(t.shape)


# ---------------------------------------------------------------------------------------------------------------
# upsample_to


def test_upsample_to_reduces_resizes_and_scales():
    g = torch.Generator().manual_seed(1)
    maps = torch.rand(2, 4, 4, 4, 4, generator=g) * torch.tensor([1.0, 7.0]).view(2, 1, 1, 1, 1)
    out = upsample_to(maps, (8, 12, 16))
    assert out.shape == (2, 8, 12, 16) and out.dtype == torch.float32
    for b in range(2):  # each volume spans exactly [0, 1]
        assert out[b].min().item() == 0.0 and out[b].max().item() == pytest.approx(1.0)
    expect = _minmax(F.interpolate(maps.mean(1, keepdim=True), size=(8, 12, 16), mode="trilinear",
                                   align_corners=False)[:, 0])
    torch.testing.assert_close(out, expect)
    out_max = upsample_to(maps, (4, 4, 4), reduce="max")
    torch.testing.assert_close(out_max, _minmax(maps.amax(1)))
    four = upsample_to(maps[:, 0].numpy(), (4, 4, 4))  # numpy [B, d, h, w] at the target size: only scaled
    torch.testing.assert_close(four, _minmax(maps[:, 0]))


def test_upsample_to_constant_map_gives_zeros_not_nan():
    out = upsample_to(torch.full((2, 3, 2, 2, 2), 0.7), (4, 4, 4))
    assert torch.isfinite(out).all() and (out == 0).all()
    mixed = torch.stack([torch.full((2, 2, 2), 5.0), torch.arange(8.0).view(2, 2, 2)])
    out = upsample_to(mixed, (2, 2, 2))
    assert (out[0] == 0).all() and out[1].max() == 1.0


@pytest.mark.parametrize(
    ("maps", "size", "kw", "match"),
    [
        (torch.zeros(2, 4, 4), (4, 4, 4), {}, r"\[B, C, d, h, w\] or \[B, d, h, w\]"),
        (torch.zeros(1, 2, 4, 4, 4), (4, 4), {}, "three"),
        (torch.zeros(1, 2, 4, 4, 4), (4, 0, 4), {}, "positive"),
        (torch.zeros(1, 2, 4, 4, 4), (4, 4, 4), {"reduce": "sum"}, "reduce"),
        (torch.full((1, 4, 4, 4), float("nan")), (4, 4, 4), {}, "NaN"),
        ([[1.0]], (4, 4, 4), {}, "torch.Tensor or numpy"),
    ],
)
def test_upsample_to_bad_input(maps, size, kw, match):
    with pytest.raises(ValueError, match=match):
        upsample_to(maps, size, **kw)


# ---------------------------------------------------------------------------------------------------------------
# attention maps, CAM, Grad-CAM on the stand-in


def test_attention_heatmaps_are_the_resized_masks_and_restore_train_mode():
    model, x = StandIn(), _x()
    model.train()
    running = model.stem[1].running_mean.clone()
    am = attention_heatmaps(model, x)
    assert model.training and torch.equal(model.stem[1].running_mean, running)  # eval mode inside, restored
    assert list(am) == ["AM1", "AM2", "AM3"]
    model.eval()
    with torch.no_grad():
        masks = model.forward_maps(x)["masks"]
    for i, m in enumerate(masks):
        assert am[f"AM{i + 1}"].shape == (2, 16, 16, 16)
        expect = _minmax(F.interpolate(m.mean(1, keepdim=True), size=(16, 16, 16), mode="trilinear",
                                       align_corners=False)[:, 0])
        torch.testing.assert_close(am[f"AM{i + 1}"], expect)
    with pytest.raises(ValueError, match="forward_maps"):
        attention_heatmaps(NoMaps(), x)


@pytest.mark.parametrize("net", [StandIn, NoMaps])
def test_cam_equals_classifier_weights_times_hooked_features(net):
    model, x = net(), _x()
    f, logits = _hooked(model, x)
    w, b = model.classifier.weight, model.classifier.bias
    for class_idx in (None, 2, [1, 0]):
        k = logits.argmax(1) if class_idx is None else torch.as_tensor(class_idx).expand(2)
        expect = torch.einsum("bc,bcdhw->bdhw", w[k], f).detach()
        raw = cam(model, x, class_idx, raw=True)
        torch.testing.assert_close(raw, expect)
        # CAM identity: the voxel mean of the map plus the bias is the logit
        torch.testing.assert_close(raw.mean(dim=(1, 2, 3)) + b[k].detach(), logits.gather(1, k[:, None])[:, 0].detach())
        full = cam(model, x, class_idx)
        assert full.shape == (2, 16, 16, 16) and full.min() >= 0 and full.max() <= 1
        up = F.interpolate(F.relu(expect)[:, None], size=(16, 16, 16), mode="trilinear", align_corners=False)[:, 0]
        torch.testing.assert_close(full, _minmax(up))


def test_cam_agrees_with_monai_cam():
    """MONAI's CAM applies the whole classifier (bias included, no ReLU) at every voxel and flips the scaled map;
    its raw map minus the bias must equal ours, and its (linear) upsampling must commute with ours."""
    model, x = StandIn(), _x()
    ref = CAM(nn_module=copy.deepcopy(model), target_layers="final_act", fc_layers="classifier",
              postprocessing=lambda t: t)
    bias = model.classifier.bias.detach()
    for class_idx in (None, 1):
        with torch.no_grad():
            # MONAI's CAM iterates over class_idx, so one class for the batch must be given per volume
            per_volume = None if class_idx is None else [class_idx] * 2
            monai_raw = ref.compute_map(x, class_idx=per_volume)[:, 0]  # [B, d, h, w]
            monai_up = ref(x, class_idx=per_volume)[:, 0]  # default upsampler, identity post-processing
        logits = model.eval()(x)
        k = logits.argmax(1) if class_idx is None else torch.full((2,), class_idx)
        ours = cam(model, x, class_idx, raw=True)
        torch.testing.assert_close(monai_raw - bias[k].view(2, 1, 1, 1), ours)
        ours_up = F.interpolate(ours[:, None], size=(16, 16, 16), mode="trilinear", align_corners=False)[:, 0]
        torch.testing.assert_close(monai_up - bias[k].view(2, 1, 1, 1), ours_up, atol=1e-5, rtol=1e-5)


def test_grad_cam_equals_hand_computation_and_leaves_parameters_alone():
    model, x = StandIn(), _x()
    f, logits = _hooked(model, x)
    k = torch.tensor([2, 0])
    score = logits.gather(1, k[:, None]).sum()
    (g,) = torch.autograd.grad(score, f)
    weights = g.mean(dim=(2, 3, 4))  # spatial mean of the gradients, [B, C]
    expect_raw = (weights[:, :, None, None, None] * f).sum(1).detach()
    model.zero_grad(set_to_none=True)
    raw = grad_cam(model, x, k, raw=True)
    torch.testing.assert_close(raw, expect_raw)
    full = grad_cam(model, x, k)
    up = F.interpolate(F.relu(expect_raw)[:, None], size=(16, 16, 16), mode="trilinear", align_corners=False)[:, 0]
    torch.testing.assert_close(full, _minmax(up))
    assert all(p.grad is None for p in model.parameters())
    # each volume gets its own class only: the batch result equals the single-volume results
    for i in range(2):
        torch.testing.assert_close(grad_cam(model, x[i:i + 1], int(k[i]), raw=True), raw[i:i + 1])


def test_grad_cam_at_the_pooled_layer_is_cam_over_the_voxel_count():
    """With global average pooling + linear, d logit_k / d f_c(v) = w[k, c] / N, so Grad-CAM = CAM / N."""
    model, x = StandIn(), _x()
    n_vox = 8 ** 3
    for class_idx in (0, 1, 2):
        torch.testing.assert_close(grad_cam(model, x, class_idx, raw=True) * n_vox, cam(model, x, class_idx, raw=True),
                                   atol=1e-5, rtol=1e-4)


def test_grad_cam_agrees_with_monai_gradcam():
    model, x = StandIn(), _x(b=1)
    ref = GradCAM(nn_module=copy.deepcopy(model), target_layers="final_act", postprocessing=lambda t: t)
    monai_raw = ref.compute_map(x)[:, 0]
    torch.testing.assert_close(monai_raw, F.relu(grad_cam(model, x, raw=True)))
    monai_up = ref(x)[:, 0]
    torch.testing.assert_close(_minmax(monai_up), grad_cam(model, x), atol=1e-5, rtol=1e-5)
    flipped = GradCAM(nn_module=copy.deepcopy(model), target_layers="final_act")(x)[:, 0]  # MONAI's default
    torch.testing.assert_close(flipped, 1 - grad_cam(model, x), atol=1e-5, rtol=1e-5)
    x2 = _x(b=2, seed=3)  # with one int class for the batch MONAI's sum of scores is per volume too
    ref2 = GradCAM(nn_module=copy.deepcopy(model), target_layers="stem.2", postprocessing=lambda t: t)
    torch.testing.assert_close(ref2.compute_map(x2, class_idx=1)[:, 0],
                               F.relu(grad_cam(model, x2, 1, layer="stem.2", raw=True)))


def test_grad_cam_works_under_no_grad_and_with_frozen_parameters():
    model, x = StandIn(), _x(b=1)
    expect = grad_cam(model, x, 0)
    for p in model.parameters():
        p.requires_grad_(False)
    with torch.no_grad():
        torch.testing.assert_close(grad_cam(model, x, 0), expect)


def test_grad_cam_other_layer_and_bad_layers():
    model, x = StandIn(), _x(b=1)
    out = grad_cam(model, x, 0, layer="stem.2")
    assert out.shape == (1, 16, 16, 16)
    with pytest.raises(ValueError, match="final_act") as err:
        grad_cam(model, x, 0, layer="final_actt")
    assert "Candidate layers" in str(err.value) and "Did you mean" in str(err.value)
    with pytest.raises(ValueError, match=r"feature map \[B, C, d, h, w\]"):
        grad_cam(model, x, 0, layer="classifier")


def test_class_idx_validation():
    model, x = StandIn(), _x()
    with pytest.raises(ValueError, match=r"\[0, 2\]"):
        cam(model, x, 3)
    with pytest.raises(ValueError, match=r"\[0, 2\]"):
        grad_cam(model, x, [0, -1])
    with pytest.raises(ValueError, match="3 entries but the batch has 2"):
        cam(model, x, [0, 1, 2])
    with pytest.raises(ValueError, match=r"\[B, C, D, H, W\]"):
        cam(model, x[0])


def test_candidate_layers_include_cam_layer_and_filter_by_output_shape():
    model, x = StandIn(), _x(b=1)
    names = candidate_layers(model)
    assert "final_act" in names and "stem.0" in names
    assert "classifier" not in names and "mask_convs" not in names and "" not in names
    probed = candidate_layers(model, x)
    assert "final_act" in probed and "stem.2" in probed and "down" in probed
    assert "pool" not in probed and "dropout" not in probed
    assert all(n in names for n in probed)


def test_heatmaps_dict_matches_the_single_functions():
    model, x = StandIn(), _x()
    model.train()
    h = heatmaps(model, x)
    assert model.training
    assert list(h) == ["AM1", "AM2", "AM3", "CAM", "Grad-CAM"]
    for v in h.values():
        assert v.shape == (2, 16, 16, 16) and v.device.type == "cpu" and float(v.min()) >= 0 and float(v.max()) <= 1
    torch.testing.assert_close(h["CAM"], cam(model, x))
    torch.testing.assert_close(h["Grad-CAM"], grad_cam(model, x))
    torch.testing.assert_close(h["AM2"], attention_heatmaps(model, x)["AM2"])
    base = heatmaps(NoMaps(), x, class_idx=1)
    assert list(base) == ["CAM", "Grad-CAM"]
    torch.testing.assert_close(base["CAM"], cam(model, x, 1))


# ---------------------------------------------------------------------------------------------------------------
# occlusion sensitivity


def _occlusion_by_hand(x, box, patch, stride, fill):
    """Naive loop: per voxel, the mean logit drop of the cubes that cover it."""
    size = x.shape[2:]
    starts = []
    for n, p, s in zip(size, patch, stride):
        st = list(range(0, n - p + 1, s))
        if st[-1] + p < n:
            st.append(n - p)
        starts.append(st)
    model = BoxSum(box)
    base = model(x)[:, 0]
    total = torch.zeros(x.shape[0], *size, dtype=torch.float64)
    count = torch.zeros(size, dtype=torch.float64)
    for a, b, c in itertools.product(*starts):
        xo = x.clone()
        xo[:, :, a:a + patch[0], b:b + patch[1], c:c + patch[2]] = fill
        drop = (base - model(xo)[:, 0]).double()
        total[:, a:a + patch[0], b:b + patch[1], c:c + patch[2]] += drop.view(-1, 1, 1, 1)
        count[a:a + patch[0], b:b + patch[1], c:c + patch[2]] += 1
    return (total / count).float()


@pytest.mark.parametrize(("patch", "stride"), [(4, 4), (8, 4), (6, 5), ((4, 8, 4), (4, 8, 2))])
def test_occlusion_matches_a_naive_loop(patch, stride):
    box = (slice(3, 9), slice(5, 13), slice(8, 14))  # not aligned with the grid
    x = _x(b=2, seed=5) + 0.5
    p = (patch,) * 3 if isinstance(patch, int) else patch
    s = (stride,) * 3 if isinstance(stride, int) else stride
    raw = occlusion_sensitivity(BoxSum(box), x, 0, patch=patch, stride=stride, fill=0.0, batch_size=5, raw=True)
    assert raw.shape == (2, 16, 16, 16)
    torch.testing.assert_close(raw, _occlusion_by_hand(x, box, p, s, 0.0), atol=1e-4, rtol=1e-5)


@pytest.mark.parametrize("patch", [4, 8])
def test_occlusion_is_hottest_over_the_box(patch):
    box = (slice(8, 16), slice(0, 8), slice(8, 16))  # aligned with both grids
    x = _x(b=2, seed=7) + 0.5
    scaled = occlusion_sensitivity(BoxSum(box), x, 0, patch=patch, stride=patch, fill=0.0)
    assert scaled.shape == (2, 16, 16, 16)
    inside = torch.zeros(16, 16, 16, dtype=torch.bool)
    inside[box] = True
    for b in range(2):
        assert scaled[b].max() == 1.0 and scaled[b].min() == 0.0
        assert bool(inside.flatten()[scaled[b].flatten().argmax()])
        assert (scaled[b][~inside].abs() < 1e-5).all() and (scaled[b][inside] > 0.1).all()
        assert scaled[b][inside].mean() > 0.5


def test_occlusion_default_fill_batching_and_bad_input():
    box = (slice(4, 8), slice(4, 8), slice(4, 8))
    x = _x(b=2, seed=6)
    a = occlusion_sensitivity(BoxSum(box), x, 0, patch=4, stride=4, batch_size=1, raw=True)
    b = occlusion_sensitivity(BoxSum(box), x, 0, patch=4, stride=4, batch_size=64, raw=True)
    torch.testing.assert_close(a, b)
    hand = torch.stack([_occlusion_by_hand(x[i:i + 1], box, (4,) * 3, (4,) * 3, x[i].mean().item())[0]
                        for i in range(2)])
    torch.testing.assert_close(a, hand, atol=1e-4, rtol=1e-5)
    model = StandIn()
    out = occlusion_sensitivity(model, _x(b=1), None, patch=8, stride=8)
    assert out.shape == (1, 16, 16, 16) and torch.isfinite(out).all()
    with pytest.raises(ValueError, match="larger than the volume"):
        occlusion_sensitivity(model, _x(b=1), 0, patch=32)
    with pytest.raises(ValueError, match="stride"):
        occlusion_sensitivity(model, _x(b=1), 0, stride=0)


# ---------------------------------------------------------------------------------------------------------------
# scores on hand-made arrays


def _vol(values, shape=(1, 2, 5)):
    return np.asarray(values, dtype=float).reshape(shape)


def test_pointing_game_hits_misses_and_ties():
    heat = _vol(range(10))
    mask = np.zeros((1, 2, 5), bool)
    mask.flat[9] = True
    assert pointing_game(heat, mask) is True
    mask2 = np.zeros_like(mask)
    mask2.flat[8] = True
    assert pointing_game(heat, mask2) is False
    tied = _vol([0, 9, 0, 0, 0, 0, 0, 0, 0, 9])  # two hottest voxels, one inside
    assert pointing_game(tied, mask) is False  # default "all": every tied maximum must be inside
    assert pointing_game(tied, mask, ties="any") is True
    assert pointing_game(tied, mask, ties="first") is False  # argmax = flat index 1
    assert pointing_game(np.ones((1, 2, 5)), mask) is False  # a flat map cannot score by luck
    assert pointing_game(torch.tensor(heat), torch.tensor(mask)) is True
    with pytest.raises(ValueError, match="ties"):
        pointing_game(heat, mask, ties="random")


def test_top_share_hand_values_and_ties():
    heat = _vol(range(10))
    mask = np.zeros((1, 2, 5), bool)
    mask.flat[[9, 7]] = True
    assert top_share(heat, mask) == 1.0  # k = 1: voxel 9
    assert top_share(heat, mask, fraction=0.2) == 0.5  # voxels 9, 8
    assert top_share(heat, mask, fraction=0.3) == pytest.approx(2 / 3)  # 9, 8, 7
    assert top_share(heat, mask, fraction=1.0) == pytest.approx(0.2)
    # constant map: chance level = lesion fraction
    assert top_share(np.zeros((1, 2, 5)), mask, fraction=0.3) == pytest.approx(0.2)
    # ties at the threshold: three voxels at 5, two places; the expected share under a random tie-break
    tied = _vol([5, 5, 5, 1, 1, 1, 1, 1, 1, 1])
    m = np.zeros((1, 2, 5), bool)
    m.flat[0] = True
    outcomes = [m.flat[list(pick)].mean() for pick in itertools.combinations([0, 1, 2], 2)]
    assert top_share(tied, m, fraction=0.2) == pytest.approx(np.mean(outcomes)) == pytest.approx(1 / 3)
    # fraction * N not an integer: k = ceil
    assert top_share(heat, mask, fraction=0.15) == 0.5
    with pytest.raises(ValueError, match="fraction"):
        top_share(heat, mask, fraction=0.0)


def test_heat_auroc_hand_value_with_ties():
    heat = _vol([3, 2, 2, 1, 0, 0, 0, 0, 0, 0])
    mask = np.zeros((1, 2, 5), bool)
    mask.flat[[0, 1]] = True
    pos, neg = heat.flat[[0, 1]], np.delete(heat.ravel(), [0, 1])
    pairs = [(1.0 if p > q else 0.5 if p == q else 0.0) for p in pos for q in neg]
    assert heat_auroc(heat, mask) == pytest.approx(np.mean(pairs))
    assert heat_auroc(heat, mask) == pytest.approx((8 + 7.5) / 16)
    assert heat_auroc(-heat, mask) == pytest.approx(1 - (8 + 7.5) / 16)
    with pytest.raises(ValueError, match="whole volume"):
        heat_auroc(heat, np.ones((1, 2, 5), bool))


@pytest.mark.parametrize("fn", [pointing_game, top_share, heat_auroc])
def test_scores_reject_empty_masks_and_bad_shapes(fn):
    heat = _vol(range(10))
    with pytest.raises(ValueError, match="empty"):
        fn(heat, np.zeros((1, 2, 5), bool))
    with pytest.raises(ValueError, match="does not match"):
        fn(heat, np.ones((2, 5, 1), bool))
    with pytest.raises(ValueError, match="one volume"):
        fn(heat[0], np.ones((2, 5), bool))
    with pytest.raises(ValueError, match="NaN"):
        fn(_vol([np.nan] + [0] * 9), np.eye(10, dtype=bool)[0].reshape(1, 2, 5))
    with pytest.raises(ValueError, match="boolean"):
        fn(heat, np.full((1, 2, 5), 2))


def test_score_heatmaps_averages_only_volumes_with_a_lesion():
    rng = np.random.default_rng(0)
    masks = np.zeros((3, 4, 4, 4), bool)
    masks[0, 1:3, 1:3, 1:3] = True
    masks[2, 0, 0, :2] = True  # volume 1 has no lesion
    heats = {"A": rng.random((3, 4, 4, 4)), "B": torch.tensor(masks * 1.0 + 0.1 * rng.random((3, 4, 4, 4)))}
    out = score_heatmaps(heats, masks)
    assert list(out) == ["A", "B"]
    for name, h in heats.items():
        h = np.asarray(h)
        expect = {"pointing": np.mean([pointing_game(h[i], masks[i]) for i in (0, 2)]),
                  "top10": np.mean([top_share(h[i], masks[i]) for i in (0, 2)]),
                  "auroc": np.mean([heat_auroc(h[i], masks[i]) for i in (0, 2)])}
        assert out[name] == pytest.approx(expect)
        assert all(type(v) is float for v in out[name].values())
    # B: lesion voxels in [1, 1.1], the rest in [0, 0.1]; k = ceil(0.1 * 64) = 7 hottest voxels
    assert out["B"] == pytest.approx({"pointing": 1.0, "top10": (7 / 7 + 2 / 7) / 2, "auroc": 1.0})
    with pytest.raises(ValueError, match="no volume"):
        score_heatmaps(heats, np.zeros((3, 4, 4, 4), bool))
    with pytest.raises(ValueError, match=r"heats\['A'\] has shape"):
        score_heatmaps({"A": heats["A"][:2]}, masks)
    with pytest.raises(ValueError, match=r"\[B, D, H, W\]"):
        score_heatmaps(heats, masks[0])


# ---------------------------------------------------------------------------------------------------------------
# the real networks: NL-RAN tiny and the MONAI ResNet-18 baseline


def _build(fn, seed: int = 0):
    """Build a network with a fixed seed without touching the global random state."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = fn()
    return model.eval()


def _twin(model):
    """A fresh NL-RAN tiny with the weights of ``model``, for MONAI to wrap (MONAI's hooks are never removed).
    copy.deepcopy would fail once the attention modules hold their last mask (a non-leaf tensor)."""
    from kit.nlran.models import nlran3d

    twin = _build(lambda: nlran3d("tiny"))
    twin.load_state_dict(model.state_dict())
    return twin.eval()


@pytest.fixture(scope="module")
def nlran():
    from kit.nlran.models import nlran3d

    model = _build(lambda: nlran3d("tiny"))
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():  # non-trivial non-local block and norms (they start as identity / unit scale)
        for name, p in model.named_parameters():
            if "norm" in name or "bn" in name or p.ndim == 1:
                p.add_(0.2 * torch.randn(p.shape, generator=g))
    return model


def test_nlran_heatmaps_shapes_and_ranges(nlran):
    x = _x(b=2, size=32, seed=11)
    h = heatmaps(nlran, x)
    assert list(h) == ["AM1", "AM2", "AM3", "CAM", "Grad-CAM"]
    for v in h.values():
        assert v.shape == (2, 32, 32, 32) and torch.isfinite(v).all()
        assert float(v.min()) == 0.0 and float(v.max()) == pytest.approx(1.0)
    with torch.no_grad():
        masks = nlran.forward_maps(x)["masks"]
    for i, m in enumerate(masks):
        expect = _minmax(F.interpolate(m.mean(1, keepdim=True), size=(32,) * 3, mode="trilinear",
                                       align_corners=False)[:, 0])
        torch.testing.assert_close(h[f"AM{i + 1}"], expect)


def test_nlran_cam_and_grad_cam_against_hooks_and_monai(nlran):
    x = _x(b=2, size=32, seed=12)
    f, logits = _hooked(nlran, x, "final_act")
    k = logits.argmax(1)
    w, b = nlran.classifier.weight, nlran.classifier.bias
    raw = cam(nlran, x, raw=True)
    torch.testing.assert_close(raw, torch.einsum("bc,bcdhw->bdhw", w[k], f).detach(), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(raw.mean(dim=(1, 2, 3)) + b[k].detach(), logits.gather(1, k[:, None])[:, 0].detach(),
                               atol=1e-5, rtol=1e-4)
    ref = CAM(nn_module=_twin(nlran), target_layers="final_act", fc_layers="classifier",
              postprocessing=lambda t: t)
    with torch.no_grad():
        torch.testing.assert_close(ref.compute_map(x)[:, 0] - b[k].detach().view(2, 1, 1, 1), raw, atol=1e-5,
                                   rtol=1e-4)
    (g,) = torch.autograd.grad(logits.gather(1, k[:, None]).sum(), f)
    hand = torch.einsum("bc,bcdhw->bdhw", g.mean(dim=(2, 3, 4)), f).detach()
    graw = grad_cam(nlran, x, raw=True)
    torch.testing.assert_close(graw, hand, atol=1e-6, rtol=1e-4)
    torch.testing.assert_close(graw * f[0, 0].numel(), raw, atol=1e-5, rtol=1e-4)  # pooled layer: Grad-CAM = CAM/N
    x1 = x[:1]
    gref = GradCAM(nn_module=_twin(nlran), target_layers="final_act", postprocessing=lambda t: t)
    torch.testing.assert_close(_minmax(gref(x1)[:, 0]), grad_cam(nlran, x1), atol=1e-5, rtol=1e-4)
    assert all(p.grad is None for p in nlran.parameters())


def test_nlran_candidate_layers_and_grad_cam_on_an_attention_module(nlran):
    x = _x(b=1, size=32, seed=13)
    probed = candidate_layers(nlran, x)
    assert "final_act" in probed and "attention_modules.0.post" in probed and "classifier" not in probed
    # NLRAN3d runs its attention modules through forward_with_mask, which a forward hook cannot see
    assert "attention_modules.0" in candidate_layers(nlran) and "attention_modules.0" not in probed
    with pytest.raises(ValueError, match="was not called as module"):
        grad_cam(nlran, x, 0, layer="attention_modules.0")
    out = grad_cam(nlran, x, 0, layer="attention_modules.0.post")
    assert out.shape == (1, 32, 32, 32) and torch.isfinite(out).all()
    with pytest.raises(ValueError, match="attention_modules.0.post"):
        grad_cam(nlran, x, 0, layer="attention_modules.0.pots")


def test_resnet18_baseline_cam_uses_a_hook_on_cam_layer():
    baselines = pytest.importorskip("kit.nlran.baselines")
    model = _build(lambda: baselines.resnet18_3d(widths=(8, 16, 32, 64)))
    assert not callable(getattr(model, "forward_maps", None))
    x = _x(b=2, size=32, seed=14)
    f, logits = _hooked(model, x, model.cam_layer)
    k = logits.argmax(1)
    raw = cam(model, x, raw=True)
    torch.testing.assert_close(raw, torch.einsum("bc,bcdhw->bdhw", model.classifier.weight[k], f).detach(),
                               atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(raw.mean(dim=(1, 2, 3)) + model.classifier.bias[k].detach(),
                               logits.gather(1, k[:, None])[:, 0].detach(), atol=1e-5, rtol=1e-4)
    ref = CAM(nn_module=copy.deepcopy(model), target_layers=model.cam_layer, fc_layers=lambda m: m.classifier,
              postprocessing=lambda t: t)
    with torch.no_grad():
        monai_raw = ref.compute_map(x)[:, 0] - model.classifier.bias[k].detach().view(2, 1, 1, 1)
    torch.testing.assert_close(monai_raw, raw, atol=1e-5, rtol=1e-4)
    h = heatmaps(model, x, class_idx=1)
    assert list(h) == ["CAM", "Grad-CAM"] and all(v.shape == (2, 32, 32, 32) for v in h.values())
    gref = GradCAM(nn_module=copy.deepcopy(model), target_layers=model.cam_layer, postprocessing=lambda t: t)
    torch.testing.assert_close(gref.compute_map(x, class_idx=1)[:, 0], F.relu(grad_cam(model, x, 1, raw=True)),
                               atol=1e-6, rtol=1e-4)
    assert model.cam_layer in candidate_layers(model, x[:1])
