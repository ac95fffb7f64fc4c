"""Tests for kit.rld.models: CIFAR nets equal to the mdistiller/CRD definitions, checkpoint loading, ImageNet nets."""

from __future__ import annotations

import argparse
import functools
import math

import pytest
import torch
import torch.nn.functional as F

from kit.rld.models import (
    ALIASES,
    MODELS,
    CifarMobileNetV2,
    MobileNetV1,
    build_model,
    imagenet_features,
    imagenet_model,
    load_mdistiller_checkpoint,
)

torch.set_num_threads(1)

# Parameter counts (trainable, num_classes=100) of the megvii-research/mdistiller models of the same name
# (mdistiller/models/cifar/{resnet,resnetv2,wrn,vgg,mobilenetv2,ShuffleNetv2}.py). Obtained by transcribing those
# definitions into a throwaway script (not in the repo) and summing p.numel(); the same script loaded a shared
# random state_dict into both and found equal logits (max diff < 3e-7). Five of them are re-derived below, layer
# by layer, from the (key, shape) lists; they match the published sizes (e.g. resnet32x4 7.43M, wrn_40_2 2.26M).
PARAM_COUNTS = {
    "resnet20": 278_324,
    "resnet32": 472_756,
    "resnet56": 861_620,
    "resnet110": 1_736_564,
    "resnet8x4": 1_233_540,
    "resnet32x4": 7_433_860,
    "resnet50": 23_705_252,
    "wrn_16_2": 703_284,
    "wrn_40_1": 569_780,
    "wrn_40_2": 2_255_156,
    "vgg8": 3_965_028,
    "vgg13": 9_462_180,
    "mobile_half": 812_836,
    "shufflenet_v2": 1_355_528,
}
FEATURE_DIMS = {
    "resnet20": 64, "resnet32": 64, "resnet56": 64, "resnet110": 64, "resnet8x4": 256, "resnet32x4": 256,
    "resnet50": 2048, "wrn_16_2": 128, "wrn_40_1": 64, "wrn_40_2": 128, "vgg8": 512, "vgg13": 512,
    "mobile_half": 1280, "shufflenet_v2": 1024,
}  # fmt: skip
HEADS = {
    "resnet50": "linear", "vgg8": "classifier", "vgg13": "classifier", "mobile_half": "classifier",
    "shufflenet_v2": "linear",
}  # fmt: skip


@functools.cache
def _model(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return MODELS[name](num_classes=100).eval()


# -- (key, shape) lists written from mdistiller's module names, independently of kit's code --------------------


def _bn(prefix: str, c: int) -> list[tuple[str, tuple]]:
    return [(f"{prefix}.{s}", (c,)) for s in ("weight", "bias", "running_mean", "running_var")] + [
        (f"{prefix}.num_batches_tracked", ())
    ]


def mdistiller_resnet_keys(depth: int, filters: tuple, classes: int = 100) -> list[tuple[str, tuple]]:
    n, inplanes = (depth - 2) // 6, filters[0]
    keys = [("conv1.weight", (filters[0], 3, 3, 3)), *_bn("bn1", filters[0])]
    for stage, (planes, stride) in enumerate(zip(filters[1:], (1, 2, 2)), start=1):
        for i in range(n):
            p, cin = f"layer{stage}.{i}", inplanes if i == 0 else planes
            keys += [(f"{p}.conv1.weight", (planes, cin, 3, 3)), *_bn(f"{p}.bn1", planes)]
            keys += [(f"{p}.conv2.weight", (planes, planes, 3, 3)), *_bn(f"{p}.bn2", planes)]
            if i == 0 and (stride != 1 or inplanes != planes):
                keys += [
                    (f"{p}.downsample.0.weight", (planes, inplanes, 1, 1)),
                    *_bn(f"{p}.downsample.1", planes),
                ]
        inplanes = planes
    return keys + [("fc.weight", (classes, filters[3])), ("fc.bias", (classes,))]


def mdistiller_wrn_keys(depth: int, k: int, classes: int = 100) -> list[tuple[str, tuple]]:
    n, ch = (depth - 4) // 6, [16, 16 * k, 32 * k, 64 * k]
    keys = [("conv1.weight", (16, 3, 3, 3))]
    for stage in (1, 2, 3):
        for i in range(n):
            p, cin, cout = f"block{stage}.layer.{i}", ch[stage - 1] if i == 0 else ch[stage], ch[stage]
            keys += [*_bn(f"{p}.bn1", cin), (f"{p}.conv1.weight", (cout, cin, 3, 3))]
            keys += [*_bn(f"{p}.bn2", cout), (f"{p}.conv2.weight", (cout, cout, 3, 3))]
            if cin != cout:
                keys.append((f"{p}.convShortcut.weight", (cout, cin, 1, 1)))
    return keys + [*_bn("bn1", ch[3]), ("fc.weight", (classes, ch[3])), ("fc.bias", (classes,))]


def mdistiller_vgg_keys(groups: list[list[int]], classes: int = 100) -> list[tuple[str, tuple]]:
    keys, cin = [], 3
    for g, widths in enumerate(groups):
        for j, w in enumerate(widths):  # Sequential indices: conv 3j, BN 3j+1, ReLU 3j+2
            keys += [(f"block{g}.{3 * j}.weight", (w, cin, 3, 3)), (f"block{g}.{3 * j}.bias", (w,))]
            keys += _bn(f"block{g}.{3 * j + 1}", w)
            cin = w
    return keys + [("classifier.weight", (classes, 512)), ("classifier.bias", (classes,))]


KEY_LISTS = {
    "resnet8x4": mdistiller_resnet_keys(8, (32, 64, 128, 256)),
    "resnet32x4": mdistiller_resnet_keys(32, (32, 64, 128, 256)),
    "resnet56": mdistiller_resnet_keys(56, (16, 16, 32, 64)),
    "wrn_40_2": mdistiller_wrn_keys(40, 2),
    "vgg13": mdistiller_vgg_keys([[64, 64], [128, 128], [256, 256], [512, 512], [512, 512]]),
}
BUFFERS = ("running_mean", "running_var", "num_batches_tracked")


def _random_state(keys: list[tuple[str, tuple]], seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights that keep the signal alive through depth: He-scaled convs, BN affine near identity."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for k, shape in keys:
        noise = torch.randn(shape, generator=g)
        if k.endswith("num_batches_tracked"):
            out[k] = torch.tensor(64_000)
        elif k.endswith("running_var"):
            out[k] = torch.rand(shape, generator=g) + 0.5
        elif len(shape) > 1:  # conv / linear weight
            out[k] = noise * math.sqrt(2.0 / math.prod(shape[1:]))
        elif k.endswith(".weight"):  # BN scale
            out[k] = 1.0 + 0.1 * noise
        else:  # biases and running means
            out[k] = 0.1 * noise
    return out


# -- architecture -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(KEY_LISTS))
def test_key_lists_match_model_and_param_count(name):
    keys = KEY_LISTS[name]
    own = {k: tuple(v.shape) for k, v in _model(name).state_dict().items()}
    assert own == dict(keys)
    assert sum(math.prod(s) for k, s in keys if not k.endswith(BUFFERS)) == PARAM_COUNTS[name]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_param_count_forward_and_feature_shapes(name):
    model = _model(name)
    assert sum(p.numel() for p in model.parameters()) == PARAM_COUNTS[name]
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        logits, feats = model(x, return_features=True)
        assert torch.equal(model(x), logits)
        assert torch.equal(model.features(x), feats)
    assert logits.shape == (2, 100) and feats.shape == (2, FEATURE_DIMS[name])
    assert model.feature_dim == FEATURE_DIMS[name]
    head = getattr(model, HEADS.get(name, "fc"))
    head = head[-1] if isinstance(head, torch.nn.Sequential) else head
    torch.testing.assert_close(logits, feats @ head.weight.T + head.bias)  # features are the classifier input
    assert torch.isfinite(logits).all()


def _bn_eval(x, sd, p):
    return F.batch_norm(
        x, sd[f"{p}.running_mean"], sd[f"{p}.running_var"], sd[f"{p}.weight"], sd[f"{p}.bias"]
    )


def test_resnet8x4_matches_a_functional_forward():
    # Post-activation blocks, projection shortcut on the raw input, 3 stages with strides 1/2/2, global mean.
    sd = _random_state(KEY_LISTS["resnet8x4"], seed=4)
    model = build_model("resnet8x4").eval()
    model.load_state_dict(sd)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    h = F.relu(_bn_eval(F.conv2d(x, sd["conv1.weight"], padding=1), sd, "bn1"))
    for stage, stride in ((1, 1), (2, 2), (3, 2)):
        p = f"layer{stage}.0"
        out = F.relu(_bn_eval(F.conv2d(h, sd[f"{p}.conv1.weight"], stride=stride, padding=1), sd, f"{p}.bn1"))
        out = _bn_eval(F.conv2d(out, sd[f"{p}.conv2.weight"], padding=1), sd, f"{p}.bn2")
        skip = _bn_eval(F.conv2d(h, sd[f"{p}.downsample.0.weight"], stride=stride), sd, f"{p}.downsample.1")
        h = F.relu(out + skip)
    logits = h.mean((2, 3)) @ sd["fc.weight"].T + sd["fc.bias"]
    assert (logits[0] - logits[1]).abs().max() > 0.1  # the input matters, so the check has teeth
    with torch.no_grad():
        torch.testing.assert_close(model(x), logits, rtol=1e-4, atol=1e-5)


def test_wrn_16_2_matches_a_functional_forward():
    # Pre-activation blocks: the 1x1 projection sees relu(bn1(x)); the identity path adds the raw x.
    keys = mdistiller_wrn_keys(16, 2)
    sd = _random_state(keys, seed=6)
    model = build_model("wrn_16_2").eval()
    model.load_state_dict(sd)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(7))
    h = F.conv2d(x, sd["conv1.weight"], padding=1)
    for stage, stride in ((1, 1), (2, 2), (3, 2)):
        for i in range(2):
            p, s = f"block{stage}.layer.{i}", stride if i == 0 else 1
            act = F.relu(_bn_eval(h, sd, f"{p}.bn1"))
            out = F.relu(
                _bn_eval(F.conv2d(act, sd[f"{p}.conv1.weight"], stride=s, padding=1), sd, f"{p}.bn2")
            )
            out = F.conv2d(out, sd[f"{p}.conv2.weight"], padding=1)
            proj = f"{p}.convShortcut.weight"
            h = out + (F.conv2d(act, sd[proj], stride=s) if proj in sd else h)
    feats = F.relu(_bn_eval(h, sd, "bn1")).mean((2, 3))
    assert (feats[0] - feats[1]).abs().max() > 0.1
    with torch.no_grad():
        torch.testing.assert_close(model.features(x), feats, rtol=1e-4, atol=1e-5)


def test_models_cover_the_series_and_aliases():
    expected = set(PARAM_COUNTS)
    assert set(MODELS) == expected
    assert isinstance(build_model("MobileNetV2", 10), CifarMobileNetV2)
    assert all(a in ALIASES for a in ("ResNet50", "ShuffleV2", "vgg8_bn", "vgg13_bn"))
    assert build_model("vgg13_bn").state_dict().keys() == _model("vgg13").state_dict().keys()


def test_build_model_bad_input():
    with pytest.raises(ValueError, match="valid names: resnet20"):
        build_model("resnet18")
    with pytest.raises(ValueError, match="num_classes"):
        build_model("resnet20", num_classes=0)
    with pytest.raises(ValueError, match=r"\[B, 3, H, W\]"):
        _model("resnet20")(torch.zeros(2, 1, 32, 32))


def test_seeded_construction_is_deterministic_and_init_follows_mdistiller():
    torch.manual_seed(3)
    a = build_model("wrn_16_2")
    torch.manual_seed(3)
    b = build_model("wrn_16_2")
    assert all(torch.equal(a.state_dict()[k], v) for k, v in b.state_dict().items())
    w = a.block2.layer[0].conv1.weight  # He fan-out init: std = sqrt(2 / (3*3*64))
    assert abs(w.std().item() - math.sqrt(2 / (9 * 64))) < 0.01
    assert torch.all(a.fc.bias == 0) and torch.all(a.bn1.weight == 1)


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    model = build_model("resnet8x4", 10).train()
    x, y = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 3])
    torch.nn.functional.cross_entropy(model(x), y).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


# -- checkpoints --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(KEY_LISTS))
def test_release_layout_loads_strict(name, tmp_path):
    state = _random_state(KEY_LISTS[name])
    path = tmp_path / "ckpt_epoch_240.pth"
    torch.save({"model": state, "acc": 0.5, "epoch": 240}, path)
    model = MODELS[name](num_classes=100)
    rest = load_mdistiller_checkpoint(model, path)
    assert rest == {"acc": 0.5, "epoch": 240}
    loaded = model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in state.items())


def test_crd_style_legacy_file_with_optimizer_state_loads(tmp_path):
    # RepDistiller's train_teacher.py saves {'epoch', 'model', 'accuracy' (a tensor), 'optimizer'}; the 2019
    # files predate the zip format, so write the legacy format too.
    torch.manual_seed(0)
    source = build_model("resnet8x4")
    opt = torch.optim.SGD(source.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    torch.nn.functional.cross_entropy(source(torch.randn(2, 3, 32, 32)), torch.tensor([1, 2])).backward()
    opt.step()
    blob = {
        "epoch": 240,
        "model": source.state_dict(),
        "accuracy": torch.tensor(72.5),
        "optimizer": opt.state_dict(),
    }
    torch.save(blob, tmp_path / "ckpt_epoch_240.pth", _use_new_zipfile_serialization=False)
    target = build_model("resnet8x4")
    rest = load_mdistiller_checkpoint(target, tmp_path / "ckpt_epoch_240.pth")
    assert rest["epoch"] == 240 and rest["accuracy"].item() == 72.5
    assert all(torch.equal(target.state_dict()[k], v) for k, v in source.state_dict().items())


def test_module_prefix_and_bare_state_dict_and_old_bn(tmp_path):
    state = _random_state(KEY_LISTS["resnet8x4"], seed=1)
    torch.save({"model": {f"module.{k}": v for k, v in state.items()}}, tmp_path / "dp.pth")
    model = build_model("resnet8x4")
    load_mdistiller_checkpoint(model, tmp_path / "dp.pth")
    assert torch.equal(model.fc.weight, state["fc.weight"])
    torch.save(state, tmp_path / "bare.pth")
    assert load_mdistiller_checkpoint(build_model("resnet8x4"), tmp_path / "bare.pth") == {}
    old = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}  # pre-0.4.1 files
    torch.save({"model": old}, tmp_path / "old.pth")
    fresh = build_model("resnet8x4")
    load_mdistiller_checkpoint(fresh, tmp_path / "old.pth")
    assert torch.equal(fresh.layer3[0].bn2.running_var, state["layer3.0.bn2.running_var"])
    assert fresh.bn1.num_batches_tracked.item() == 0  # BatchNorm keeps its own counter


def test_mismatched_checkpoints_raise(tmp_path):
    state = _random_state(KEY_LISTS["resnet8x4"], seed=2)
    renamed = dict(state)
    renamed["linear.weight"] = renamed.pop("fc.weight")
    torch.save({"model": renamed}, tmp_path / "renamed.pth")
    model = build_model("resnet8x4")
    before = model.fc.weight.clone()
    with pytest.raises(ValueError, match=r"missing keys: fc\.weight.*unexpected keys: linear\.weight"):
        load_mdistiller_checkpoint(model, tmp_path / "renamed.pth")
    assert torch.equal(model.fc.weight, before)  # nothing was loaded
    with pytest.raises(ValueError, match=r"shape mismatches.*fc\.weight \(100, 256\) vs \(10, 256\)"):
        torch.save({"model": state}, tmp_path / "c100.pth")
        load_mdistiller_checkpoint(build_model("resnet8x4", 10), tmp_path / "c100.pth")
    with pytest.raises(ValueError, match="missing keys"):  # a resnet8x4 teacher is not a resnet32x4
        load_mdistiller_checkpoint(build_model("resnet32x4"), tmp_path / "c100.pth")
    torch.save({"net": state, "epoch": 3}, tmp_path / "nomodel.pth")
    with pytest.raises(ValueError, match="no 'model' entry"):
        load_mdistiller_checkpoint(model, tmp_path / "nomodel.pth")
    torch.save({"model": state, "opt": argparse.Namespace(lr=0.05)}, tmp_path / "unsafe.pth")
    with pytest.raises(ValueError, match="refusing"):
        load_mdistiller_checkpoint(model, tmp_path / "unsafe.pth")
    with pytest.raises(FileNotFoundError):
        load_mdistiller_checkpoint(model, tmp_path / "absent.pth")


# -- ImageNet -----------------------------------------------------------------------------------------------------


def test_mobilenet_v1_structure_and_param_count():
    # mdistiller/models/imagenet/mobilenetv1.py: stem conv3x3(3->32, /2)+BN, 13 (dw3x3+BN, pw1x1+BN), fc 1024->1000.
    blocks = [(32, 64), (64, 128), (128, 128), (128, 256), (256, 256), (256, 512)] + [(512, 512)] * 5
    blocks += [(512, 1024), (1024, 1024)]
    count = 3 * 32 * 9 + 2 * 32 + sum(cin * 9 + 2 * cin + cin * cout + 2 * cout for cin, cout in blocks)
    count += 1024 * 1000 + 1000
    torch.manual_seed(0)
    model = imagenet_model("mobilenet_v1").eval()
    assert isinstance(model, MobileNetV1)
    assert sum(p.numel() for p in model.parameters()) == count == 4_231_976
    keys = model.state_dict().keys()
    assert {"model.0.0.weight", "model.13.3.weight", "model.13.4.running_var", "fc.weight"} <= set(keys)
    assert model.model[13][3].weight.shape == (1024, 1024, 1, 1) and model.model[1][0].groups == 32
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        logits, feats = model(x, return_features=True)
        assert torch.equal(imagenet_features(model, x), feats)
    assert logits.shape == (1, 1000) and feats.shape == (1, 1024)


@pytest.mark.parametrize(("name", "dim"), [("resnet18", 512), ("resnet34", 512), ("resnet50", 2048)])
def test_torchvision_resnets_without_download(name, dim):
    torch.manual_seed(0)
    model = imagenet_model(name).eval()  # weights=None: nothing is downloaded
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        feats = imagenet_features(model, x)
        torch.testing.assert_close(model.fc(feats), model(x))
    assert feats.shape == (1, dim)


def test_imagenet_bad_input():
    with pytest.raises(ValueError, match="valid names"):
        imagenet_model("vgg16")
    with pytest.raises(ValueError, match="no pretrained weights"):
        imagenet_model("mobilenet_v1", pretrained=True)
    with pytest.raises(ValueError, match="1000 classes"):
        imagenet_model("resnet18", pretrained=True, num_classes=10)
