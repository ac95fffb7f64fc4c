"""diffusers bridge: tiny in-code UNets (no downloads) against the direct DDPM formulas."""

import math

import numpy as np
import pytest
import torch

diffusers = pytest.importorskip("diffusers")

from kit.diffusion.hf import (  # noqa: E402
    from_diffusers,
    scheduler_sigmas,
    sigma_to_timestep,
    timestep_to_sigma,
)

torch.set_num_threads(1)

_BLOCKS = dict(sample_size=8, in_channels=3, out_channels=3, block_out_channels=(8, 16), layers_per_block=1,
               norm_num_groups=4)


def _unet():
    torch.manual_seed(0)
    unet = diffusers.UNet2DModel(**_BLOCKS, down_block_types=("DownBlock2D", "DownBlock2D"),
                                 up_block_types=("UpBlock2D", "UpBlock2D")).double().eval()
    with torch.no_grad():  # make the (otherwise tiny) output depend visibly on the input
        unet.conv_out.weight.mul_(10.0)
    return unet


def _scheduler(prediction_type="epsilon"):
    return diffusers.DDPMScheduler(num_train_timesteps=1000, prediction_type=prediction_type)


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_integer_timesteps_match_ddpm_formula(prediction_type):
    unet, sched = _unet(), _scheduler(prediction_type)
    den = from_diffusers(unet, sched)
    steps = [0, 250, 999]
    abar = sched.alphas_cumprod.to(torch.float64)[steps]
    sigma = torch.sqrt((1 - abar) / abar)
    x0 = torch.randn(3, 3, 8, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x = x0 + sigma.view(-1, 1, 1, 1) * torch.randn(x0.shape, generator=torch.Generator().manual_seed(1),
                                                     dtype=torch.float64)
    with torch.no_grad():
        got = den(x, sigma)
        a, b = abar.sqrt().view(-1, 1, 1, 1), (1 - abar).sqrt().view(-1, 1, 1, 1)
        x_t = a * x  # the VP model's input at integer timestep t
        out = unet(x_t, torch.tensor(steps)).sample
        assert out.abs().max() > 1e-3
        if prediction_type == "epsilon":
            want = (x_t - b * out) / a
        else:
            want = a * x_t - b * out
    assert got.shape == x.shape and got.dtype == torch.float64
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9)


def test_sigma_timestep_conversions():
    sched = _scheduler()
    abar = sched.alphas_cumprod.to(torch.float64).numpy()
    table = np.sqrt((1 - abar) / abar)
    np.testing.assert_allclose(scheduler_sigmas(sched), table, rtol=1e-14)
    # exact at integers
    np.testing.assert_allclose(sigma_to_timestep(torch.tensor(table[[0, 17, 999]]), sched).numpy(), [0, 17, 999])
    np.testing.assert_allclose(timestep_to_sigma(torch.tensor([0.0, 17.0, 999.0]), sched).numpy(),
                               table[[0, 17, 999]], rtol=1e-12)
    # between two steps: t is linear in log sigma
    s = math.sqrt(table[40] * table[41]) * 1.01
    t_want = 40 + (math.log(s) - math.log(table[40])) / (math.log(table[41]) - math.log(table[40]))
    assert sigma_to_timestep(s, sched).item() == pytest.approx(t_want, rel=1e-12)
    assert timestep_to_sigma(t_want, sched).item() == pytest.approx(s, rel=1e-12)
    sig = torch.tensor([0.05, 1.0, 30.0], dtype=torch.float64)
    torch.testing.assert_close(timestep_to_sigma(sigma_to_timestep(sig, sched), sched), sig)


def test_fractional_timestep_passed_to_unet():
    unet, sched = _unet(), _scheduler()
    den = from_diffusers(unet, sched)
    sigma = 2.0
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    abar = sched.alphas_cumprod.to(torch.float64).numpy()
    t = np.interp(math.log(sigma), np.log(np.sqrt((1 - abar) / abar)), np.arange(1000))
    assert t != round(t)
    with torch.no_grad():
        eps = unet(x / math.sqrt(1 + sigma**2), torch.full((2,), t)).sample
        torch.testing.assert_close(den(x, sigma), x - sigma * eps, rtol=1e-6, atol=1e-6)


def test_out_of_range_sigma_raises_with_range():
    den = from_diffusers(_unet(), _scheduler())
    x = torch.zeros(1, 3, 8, 8, dtype=torch.float64)
    lo, hi = den.sigma_min, den.sigma_max
    assert 0.009 < lo < 0.011 and 150 < hi < 160  # linear betas 1e-4 .. 0.02
    for bad in (lo * 0.5, hi * 2.0, 1000.0):
        with pytest.raises(ValueError, match=r"model's range \[0\.0100\d*, 15\d\.\d*\]"):
            den(x, bad)
    with pytest.raises(ValueError, match="sigma must be > 0"):
        den(x, 0.0)


def test_bad_prediction_type():
    sched = _scheduler()
    sched.register_to_config(prediction_type="flow")
    with pytest.raises(ValueError, match="prediction_type must be one of"):
        from_diffusers(_unet(), sched)


def test_condition_model_with_encoder_hidden_states():
    torch.manual_seed(0)
    unet = diffusers.UNet2DConditionModel(
        **_BLOCKS, down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=8, attention_head_dim=2,
    ).double().eval()
    sched = _scheduler()
    cond = torch.randn(2, 5, 8, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    den = from_diffusers(unet, sched, encoder_hidden_states=cond)
    abar = sched.alphas_cumprod.to(torch.float64)[[100, 600]]
    sigma = torch.sqrt((1 - abar) / abar)
    x = 3 * torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    with torch.no_grad():
        got = den(x, sigma)
        eps = unet(abar.sqrt().view(-1, 1, 1, 1) * x, torch.tensor([100, 600]), encoder_hidden_states=cond).sample
        other = from_diffusers(unet, sched, encoder_hidden_states=-cond)(x, sigma)
    torch.testing.assert_close(got, x - sigma.view(-1, 1, 1, 1) * eps, rtol=1e-9, atol=1e-9)
    assert (got - other).abs().max() > 1e-6  # the stored conditioning is actually used


def test_float32_model_float64_input_returns_float64():
    unet = _unet().float()
    den = from_diffusers(unet, _scheduler())
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    with torch.no_grad():
        out = den(x, 1.0)
    assert out.dtype == torch.float64 and out.shape == x.shape and torch.isfinite(out).all()
