"""Shared fixtures of the diffusion-core tests."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module")
def unet():
    """diffusers' test-style tiny UNet: channels (32, 64), 2 layers per block, cross_attention_dim 32, 2 heads;
    self- and cross-attention at 16x16 (down_blocks.0, up_blocks.1; Q = 256) and 8x8 (down_blocks.1, mid_block,
    up_blocks.0; Q = 64) for 16x16 inputs. The output layer is scaled up so attention edits move the output."""
    diffusers = pytest.importorskip("diffusers")
    torch.manual_seed(0)
    net = diffusers.UNet2DConditionModel(
        sample_size=16, in_channels=4, out_channels=4, block_out_channels=(32, 64), layers_per_block=2,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=32,
        attention_head_dim=2, norm_num_groups=32).eval()
    with torch.no_grad():
        net.conv_out.weight.mul_(10.0)
    return net
