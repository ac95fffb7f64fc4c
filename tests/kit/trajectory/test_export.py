"""Tests for kit.trajectory.export: custom VE schedules in diffusers schedulers, run with a tiny random UNet."""

import numpy as np
import pytest
import torch

diffusers = pytest.importorskip("diffusers")

from kit.trajectory.export import (  # noqa: E402
    apply_schedule,
    scheduler_sigma_range,
    to_diffusers_sigmas,
    to_diffusers_timesteps,
)

torch.set_num_threads(1)

# A 6-step GITS schedule (CIFAR-10): indices [0, 19, 27, 33, 39, 45, 60] of the 61-point EDM rho=7 grid.
GITS6 = torch.tensor([80.0, 10.98, 3.88, 1.58, 0.567, 0.170, 0.002], dtype=torch.float64)


@pytest.fixture(scope="module")
def unet():
    torch.manual_seed(0)
    return diffusers.UNet2DModel(
        sample_size=8,
        in_channels=1,
        out_channels=1,
        layers_per_block=1,
        block_out_channels=(8, 16),
        down_block_types=("DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D"),
        norm_num_groups=4,
    ).eval()


def _table(scheduler) -> np.ndarray:
    abar = scheduler.alphas_cumprod.double().numpy()
    return np.sqrt((1 - abar) / abar)


def _run(unet, scheduler, scale_input: bool, seed: int = 1):
    """Denoising loop; returns (final sample, timesteps passed to the model, model outputs, states)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 1, 8, 8, generator=g) * scheduler.init_noise_sigma
    seen, outs, states = [], [], [x]
    with torch.no_grad():
        for t in scheduler.timesteps:
            inp = scheduler.scale_model_input(x, t) if scale_input else x
            out = unet(inp, t).sample
            seen.append(float(t))
            outs.append(out)
            x = scheduler.step(out, t, x).prev_sample
            states.append(x)
    return x, seen, outs, states


def test_dpmsolver_uses_our_integer_timesteps(unet):
    sch = diffusers.DPMSolverMultistepScheduler(num_train_timesteps=1000)
    table = _table(sch)
    t = to_diffusers_timesteps(GITS6, sch)
    # independent: the nearest train step in log sigma, for every sigma but the last
    want = [int(np.argmin(np.abs(np.log(table) - np.log(s)))) for s in GITS6[:-1].tolist()]
    assert t.dtype == torch.int64 and t.tolist() == want
    used = apply_schedule(sch, GITS6)
    np.testing.assert_allclose(used.numpy(), table[want], rtol=1e-12)
    np.testing.assert_allclose(sch.sigmas[:-1].double().numpy(), table[want], rtol=1e-6)
    assert sch.sigmas[-1].item() == 0.0  # the scheduler's own end replaces our 0.002
    x, seen, _, _ = _run(unet, sch, scale_input=False)
    assert seen == [float(v) for v in want]
    assert x.shape == (2, 1, 8, 8) and torch.isfinite(x).all()


def test_euler_steps_through_exactly_our_sigmas(unet):
    sch = diffusers.EulerDiscreteScheduler(num_train_timesteps=1000)
    sig = to_diffusers_sigmas(GITS6, sch)
    assert torch.equal(sig, GITS6)
    used = apply_schedule(sch, GITS6)
    torch.testing.assert_close(used, GITS6[:-1], rtol=1e-6, atol=0)
    x, seen, outs, states = _run(unet, sch, scale_input=True)
    table = _table(sch)
    t_want = np.interp(np.log(GITS6[:-1].numpy()), np.log(table), np.arange(table.size))
    np.testing.assert_allclose(seen, t_want, rtol=1e-5)
    # each step is the VE Euler step x + (sigma_{i+1} - sigma_i) * eps with our sigmas
    s = GITS6.float()
    for i, out in enumerate(outs):
        torch.testing.assert_close(states[i + 1], states[i] + (s[i + 1] - s[i]) * out, rtol=1e-5, atol=1e-4)
    assert x.shape == (2, 1, 8, 8) and torch.isfinite(x).all()


def test_edm_euler_ramp_reproduces_our_sigmas(unet):
    sch = diffusers.EDMEulerScheduler(sigma_min=0.002, sigma_max=80.0, rho=7.0)
    ramp = to_diffusers_sigmas(GITS6, sch)
    assert ramp.shape == (GITS6.numel() - 1,) and ramp[0].item() == pytest.approx(0.0, abs=1e-12)
    # the scheduler's Karras map applied to the ramp gives our sigmas back
    rho_formula = (80 ** (1 / 7) + ramp * (0.002 ** (1 / 7) - 80 ** (1 / 7))) ** 7
    torch.testing.assert_close(rho_formula, GITS6[:-1], rtol=1e-12, atol=0)
    used = apply_schedule(sch, GITS6)
    torch.testing.assert_close(used, GITS6[:-1], rtol=1e-5, atol=0)
    torch.testing.assert_close(sch.timesteps.double(), 0.25 * GITS6[:-1].log(), rtol=1e-5, atol=1e-6)
    x, seen, _, _ = _run(unet, sch, scale_input=True)
    assert len(seen) == GITS6.numel() - 1 and torch.isfinite(x).all()


def test_heun_keeps_our_timesteps():
    sch = diffusers.HeunDiscreteScheduler(num_train_timesteps=1000, beta_start=0.0001, beta_end=0.02)
    apply_schedule(sch, GITS6)
    t = to_diffusers_timesteps(GITS6, sch)
    assert torch.unique_consecutive(sch.timesteps.round().long()).tolist() == t.tolist()


def test_scheduler_range_and_bad_input():
    sch = diffusers.DPMSolverMultistepScheduler(num_train_timesteps=1000)
    lo, hi = scheduler_sigma_range(sch)
    table = _table(sch)
    assert lo == pytest.approx(table[0]) and hi == pytest.approx(table[-1])
    with pytest.raises(ValueError, match="range"):
        to_diffusers_timesteps(torch.tensor([hi * 2, 1.0, 0.0]), sch)
    with pytest.raises(ValueError, match="decreasing"):
        to_diffusers_timesteps(GITS6.flip(0), sch)
    with pytest.raises(ValueError, match="merges"):
        to_diffusers_timesteps(torch.tensor([10.0, 9.999, 0.0]), sch)
    with pytest.raises(ValueError, match="custom sigma"):
        to_diffusers_sigmas(GITS6, sch)
    with pytest.raises(ValueError, match="DDIM"):
        apply_schedule(diffusers.DDIMScheduler(), GITS6)
    with pytest.raises(ValueError, match="karras"):
        to_diffusers_sigmas(GITS6, diffusers.EDMEulerScheduler(sigma_schedule="exponential"))
    with pytest.raises(ValueError, match="1-D"):
        to_diffusers_timesteps(torch.tensor([1.0]), sch)
