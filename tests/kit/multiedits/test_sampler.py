"""The DDCM sampler: its invariant, identity edits, references per step, bad input."""

from __future__ import annotations

import pytest
import torch

from kit.multiedits import ddcm_sample, ddcm_step, eps_from_output, reference_indices

torch.set_num_threads(1)


def _grid(n=8):
    abar = torch.linspace(0.02, 0.95, n, dtype=torch.float64)  # noisy -> clean
    return torch.arange(n * 100, 0, -100), torch.cat([abar, torch.tensor([1.0], dtype=torch.float64)])


def test_step_invariant_a_branch_predicting_its_reference_lands_on_r0():
    g = torch.Generator().manual_seed(0)
    r, r0, eps, z = (torch.randn(3, 2, 4, 4, generator=g, dtype=torch.float64) for _ in range(4))
    x_prev, r_prev, x0 = ddcm_step(r, r, r0, eps, eps, 0.3, 0.6, z)
    torch.testing.assert_close(x0, r0)
    torch.testing.assert_close(x_prev, r_prev)
    torch.testing.assert_close(r_prev, 0.6 ** 0.5 * r0 + 0.4 ** 0.5 * z)


def test_step_matches_the_hand_formula():
    g = torch.Generator().manual_seed(1)
    x, r, r0, eps, eps_r, z = (torch.randn(2, 3, 2, 2, generator=g, dtype=torch.float64) for _ in range(6))
    a, ap = 0.25, 0.7
    x_prev, _, x0 = ddcm_step(x, r, r0, eps, eps_r, a, ap, z[:1])
    hand = r0 + ((x - r) - (1 - a) ** 0.5 * (eps - eps_r)) / a ** 0.5
    torch.testing.assert_close(x0, hand)
    torch.testing.assert_close(x_prev, ap ** 0.5 * hand + (1 - ap) ** 0.5 * z[:1])
    with pytest.raises(ValueError, match="one shape"):
        ddcm_step(x, r[:1], r0, eps, eps_r, a, ap, z)


def test_eps_from_output_for_each_prediction_type():
    g = torch.Generator().manual_seed(2)
    x0, eps = torch.randn(1, 3, 2, 2, generator=g, dtype=torch.float64), torch.randn(1, 3, 2, 2, generator=g,
                                                                                      dtype=torch.float64)
    a = torch.tensor(0.4, dtype=torch.float64)
    x = a.sqrt() * x0 + (1 - a).sqrt() * eps
    v = a.sqrt() * eps - (1 - a).sqrt() * x0
    for kind, out in (("epsilon", eps), ("v_prediction", v), ("sample", x0)):
        torch.testing.assert_close(eps_from_output(out, x, a, kind), eps)
    with pytest.raises(ValueError, match="prediction_type"):
        eps_from_output(eps, x, a, "flow")


def test_references_switch_from_the_source_to_the_previous_branch():
    assert reference_indices(3, 0, 7) == [-1, -1, -1]
    assert reference_indices(3, 7, 7) == [-1, 0, 1]
    assert reference_indices(3, 9, 7, "code_order") == [1, 2, -1]
    with pytest.raises(ValueError, match="reference must be one of"):
        reference_indices(3, 0, 7, "next")


def _model(x, t, step):
    """A nonlinear stand-in for a UNet whose prediction depends only on the input (same prompt on every row)."""
    return torch.tanh(1.3 * x + 0.01 * t.view(-1, 1, 1, 1).to(x.dtype)) * 0.8


def test_identity_edit_returns_the_source_exactly():
    ts, abar = _grid()
    source = torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    for reference in ("previous", "code_order"):
        out = ddcm_sample(_model, source, ts, abar, 3, switch_step=3, reference=reference,
                          generator=torch.Generator().manual_seed(0))
        torch.testing.assert_close(out.edit, source, rtol=0, atol=1e-12)
        assert out.x0_steps.shape == (8, 3, 3, 8, 8) and out.references[2] == [-1, -1, -1]


def test_an_edit_moves_the_branches_and_later_branches_build_on_earlier_ones():
    ts, abar = _grid()
    source = torch.zeros(1, 1, 4, 4, dtype=torch.float64)
    # rows: source, branch 0 (no edit), branch 1 (edit A), branch 2 (edits A + B): cumulative prompts
    shift = torch.tensor([0.0, 0.0, 0.5, 1.0], dtype=torch.float64)

    def model(x, t, step):  # a branch's "prompt" pushes its eps down by shift[k]: x0_hat moves up each step
        return _model(x, t, step) - shift[: x.shape[0]].view(-1, 1, 1, 1)

    out = ddcm_sample(model, source, ts, abar, 3, switch_step=2, generator=torch.Generator().manual_seed(0))
    means = out.x0.mean(dim=(1, 2, 3))
    assert abs(float(means[0])) < 1e-9  # branch 0 edits nothing
    assert float(means[1]) > 0.1 and float(means[2]) > float(means[1])  # branch 2 = branch 1's edit + its own
    seeded = ddcm_sample(model, source, ts, abar, 3, switch_step=2, generator=torch.Generator().manual_seed(0))
    assert torch.equal(seeded.x0, out.x0)


def test_source_eps_counts_the_referenced_branch_edit_twice_and_custom_references_are_used():
    ts, abar = _grid()
    source = torch.zeros(1, 1, 4, 4, dtype=torch.float64)
    shift = torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64)  # source, branch 0 (edit A), branch 1 (A + B)

    def model(x, t, step):
        return _model(x, t, step) - shift[: x.shape[0]].view(-1, 1, 1, 1)

    def run(**kw):
        return ddcm_sample(model, source, ts, abar, 2, switch_step=2, generator=torch.Generator().manual_seed(0),
                           **kw).x0.mean(dim=(1, 2, 3))

    own, code = run(), run(reference_eps="source")
    torch.testing.assert_close(own[0], code[0])  # branch 0 references the source either way
    assert float(code[1]) > float(own[1]) + 0.1  # eps - eps_source adds A again on top of branch 0's x0
    # a callable wiring: both branches always reference the source -> branch 1 = the A + B edit of the source alone
    alone = run(references=lambda step: [-1, -1])
    assert float(own[1]) != float(alone[1])
    with pytest.raises(ValueError, match=r"references\(0\) must give 2 indices"):
        run(references=lambda step: [-1])
    with pytest.raises(ValueError, match="reference_eps must be one of"):
        run(reference_eps="mutual")


def test_reference_source_scale_takes_eps_r_from_the_referenced_branch_at_the_source_scale():
    """Branch 1 (edits A + B) references branch 0 (edit A) after the switch; guided rows push by 3 x their shift, the
    same rows at the source scale by 1 x. Against a hand-written DDCM loop: eps_r = base - 1 x shift_0, so branch 1's
    own signal is 3 shift_1 - shift_0 (as sequential editing's), not 3 (shift_1 - shift_0)."""
    ts, abar = _grid()
    source = torch.zeros(1, 1, 4, 4, dtype=torch.float64)
    shift = torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64).view(-1, 1, 1, 1)  # source, branch 0, branch 1

    def predict(x, t, step):
        base = _model(x, t, step)
        return base - 3.0 * shift * torch.tensor([1.0 / 3.0, 1.0, 1.0], dtype=x.dtype).view(-1, 1, 1, 1), base - shift

    out = ddcm_sample(predict, source, ts, abar, 2, switch_step=2, generator=torch.Generator().manual_seed(0),
                      reference_eps="reference_source_scale")
    g = torch.Generator().manual_seed(0)
    z = torch.randn(source.shape, generator=g, dtype=source.dtype)
    src_t = abar[0].sqrt() * source + (1 - abar[0]).sqrt() * z
    x, x0 = src_t.expand(2, -1, -1, -1).clone(), source.expand(2, -1, -1, -1).clone()
    for i in range(len(ts)):
        eps, as_ref = predict(torch.cat([src_t, x]), ts[i].expand(3), i)
        a, ap = abar[i], abar[i + 1]
        z = torch.randn(source.shape, generator=g, dtype=source.dtype)
        new_x, new_x0 = [], []
        for k in range(2):
            j = -1 if (i < 2 or k == 0) else 0
            r, r0 = (src_t, source) if j < 0 else (x[j:j + 1], x0[j:j + 1])
            eps_r = eps[:1] if j < 0 else as_ref[1 + j:2 + j]
            hat = r0 + ((x[k:k + 1] - r) - (1 - a).sqrt() * (eps[1 + k:2 + k] - eps_r)) / a.sqrt()
            new_x0.append(hat)
            new_x.append(ap.sqrt() * hat + (1 - ap).sqrt() * z)
        x, x0 = torch.cat(new_x), torch.cat(new_x0)
        src_t = ap.sqrt() * source + (1 - ap).sqrt() * z
    torch.testing.assert_close(out.x0, x0)
    plain = ddcm_sample(predict, source, ts, abar, 2, switch_step=2, generator=torch.Generator().manual_seed(0))
    assert float(out.x0[1].mean()) > float(plain.x0[1].mean()) + 0.1  # the reference's guidance no longer cancels
    torch.testing.assert_close(out.x0[0], plain.x0[0])  # branch 0 references the source either way
    with pytest.raises(ValueError, match="needs predict to return"):
        ddcm_sample(lambda x, t, s: predict(x, t, s)[0], source, ts, abar, 2, reference_eps="reference_source_scale")


def test_bad_inputs_are_named():
    ts, abar = _grid()
    with pytest.raises(ValueError, match="source must be one clean latent"):
        ddcm_sample(_model, torch.zeros(2, 3, 4, 4), ts, abar, 2)
    with pytest.raises(ValueError, match="abar must hold one level per timestep"):
        ddcm_sample(_model, torch.zeros(1, 3, 4, 4), ts, abar[:-1], 2)
    with pytest.raises(ValueError, match="predict must return 3 rows"):
        ddcm_sample(lambda x, t, s: x[:1], torch.zeros(1, 3, 4, 4), ts, abar, 2)
