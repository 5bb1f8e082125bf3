"""Weight-decay exemptions and the EMA update against hand computation."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from reslab.train.config import OptimConfig
from reslab.train.ema import ModelEma
from reslab.train.optim import build_optimizer


def test_no_decay_groups_hold_norm_weights_and_biases():
    model = nn.Sequential(nn.Conv2d(3, 4, 3, bias=False), nn.BatchNorm2d(4), nn.Flatten(), nn.LazyLinear(2))
    model(torch.randn(1, 3, 5, 5))
    opt = build_optimizer(model, OptimConfig(weight_decay=1e-4, no_decay_norm_bias=True), lr=0.1)
    decay, no_decay = opt.param_groups
    assert {id(p) for p in decay["params"]} == {id(model[0].weight), id(model[3].weight)}
    assert {id(p) for p in no_decay["params"]} == {id(model[1].weight), id(model[1].bias), id(model[3].bias)}
    assert decay["weight_decay"] == 1e-4 and no_decay["weight_decay"] == 0.0
    nesterov = build_optimizer(model, OptimConfig(nesterov=True), lr=0.1)
    assert nesterov.param_groups[0]["nesterov"] and nesterov.param_groups[0]["momentum"] == 0.9


def test_ema_update_is_the_exponential_average():
    model = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    ema = ModelEma(model, decay=0.9)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        model[0].weight.fill_(1.0)
        model[1].running_mean.fill_(2.0)
        model[1].num_batches_tracked.fill_(7)
    ema.update(model)
    assert torch.allclose(ema.module[0].weight, 0.9 * start["0.weight"] + 0.1 * torch.ones(2, 2))
    assert torch.allclose(ema.module[1].running_mean, torch.full((2,), 0.2))
    assert ema.module[1].num_batches_tracked.item() == 7  # integer buffers are copied


def test_vit_embeddings_are_exempt_from_weight_decay_with_norms_and_biases():
    from reslab.models import create_model
    from reslab.train.optim import param_groups

    model = create_model("vit_tiny_patch4_32", num_layers=1, hidden_dim=16, num_heads=2, mlp_dim=32)
    decay, no_decay = param_groups(model, 0.05, no_decay_norm_bias=True)
    exempt = {id(p) for p in no_decay["params"]}
    assert id(model.class_token) in exempt and id(model.encoder.pos_embedding) in exempt
    assert id(model.conv_proj.weight) not in exempt and id(model.encoder.layers[0].self_attention.in_proj_weight) not in exempt
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))


def test_norm_lr_scale_group_keeps_the_decay_per_step():
    from reslab.train.optim import set_lr

    model = nn.Sequential(nn.Conv2d(3, 4, 3, bias=True), nn.BatchNorm2d(4))
    opt = build_optimizer(model, OptimConfig(weight_decay=1e-3, norm_lr_scale=64.0), lr=0.1)
    plain, norm = opt.param_groups
    assert {id(p) for p in norm["params"]} == {id(model[1].weight), id(model[1].bias)}
    assert {id(p) for p in plain["params"]} == {id(model[0].weight), id(model[0].bias)}
    assert norm["lr"] == 6.4 and norm["weight_decay"] * norm["lr"] == plain["weight_decay"] * plain["lr"]
    set_lr(opt, 0.5)
    assert plain["lr"] == 0.5 and norm["lr"] == 32.0


def test_optimizer_kernels_agree_with_the_plain_loop():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(), nn.LazyLinear(3))
    x, y = torch.randn(8, 3, 6, 6), torch.randint(0, 3, (8,))
    model(x)
    results = {}
    for kernel in ("loop", "foreach", "auto"):
        m = __import__("copy").deepcopy(model)
        opt = build_optimizer(m, OptimConfig(nesterov=True, weight_decay=1e-3, no_decay_norm_bias=True), lr=0.1)
        for _ in range(5):
            nn.functional.cross_entropy(m(x), y).backward()
            opt.step()
            opt.zero_grad()
        results[kernel] = torch.cat([p.detach().flatten() for p in m.parameters()])
    assert not torch.equal(results["loop"], torch.cat([p.detach().flatten() for p in model.parameters()]))
    torch.testing.assert_close(results["foreach"], results["loop"], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(results["auto"], results["loop"], rtol=1e-5, atol=1e-6)


def test_lookahead_moves_the_weights_to_their_average():
    from reslab.train.ema import Lookahead

    model = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    la = Lookahead(every=5, decay=0.9, power=1.0, total_steps=10, start_step=2)
    la.step(model, 1)
    assert la.average is None  # before start_step
    boundary = Lookahead(every=5, decay=0.9, power=1.0, total_steps=10, start_step=5)
    boundary.step(model, 5)
    assert boundary.average is None  # step 5 is the last of the 5 steps before the start
    with torch.no_grad():
        model[0].weight.fill_(1.0)
    la.step(model, 5)  # the first update takes a copy
    assert torch.equal(la.average["0.weight"], torch.ones(2, 2))
    with torch.no_grad():
        model[0].weight.fill_(3.0)
        model[1].num_batches_tracked.fill_(9)
    la.step(model, 10)  # rho = 0.9**5 * (10 / 10)
    rho = 0.9**5
    expected = rho * 1.0 + (1 - rho) * 3.0
    assert torch.allclose(model[0].weight, torch.full((2, 2), expected))
    assert torch.allclose(la.average["0.weight"], model[0].weight)
    assert model[1].num_batches_tracked.item() == 9
    with torch.no_grad():
        model[0].weight.fill_(0.0)
    la.sync(model)
    assert torch.allclose(model[0].weight, torch.full((2, 2), expected))


def test_newton_schulz_orthogonalises():
    from reslab.train.muon import orthogonalise

    g = torch.randn(16, 48, generator=torch.Generator().manual_seed(0))
    x = orthogonalise(g, steps=5).float()
    s = torch.linalg.svdvals(x)
    assert s.min() > 0.5 and s.max() < 1.5  # every direction moves by about the same amount
    # a matrix polynomial of g: the same singular vectors, each singular value moved towards 1
    u, _, vh = torch.linalg.svd(g, full_matrices=False)
    core = u.T @ x @ vh.T
    diagonal = core.diagonal()
    assert (diagonal > 0.5).all() and (diagonal < 1.5).all()
    assert (core - torch.diag(diagonal)).abs().max() < 0.05  # bf16 rounding only
    assert orthogonalise(g.T).shape == (48, 16)


def test_muon_groups_and_one_step_by_hand():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, bias=True), nn.BatchNorm2d(4), nn.Flatten(), nn.LazyLinear(2))
    model(torch.randn(2, 3, 5, 5))
    opt = build_optimizer(model, OptimConfig(lr=0.1, muon_lr=0.2, muon_momentum=0.6, nesterov=True, weight_decay=1e-3), lr=0.1)
    (muon,) = [g for g in opt.param_groups if g["muon"]]
    assert [id(p) for p in muon["params"]] == [id(model[0].weight)] and muon["lr"] == pytest.approx(0.2)
    assert muon["weight_decay"] == 0.0 and muon["momentum"] == 0.6
    sgd_params = {id(p) for g in opt.param_groups if not g["muon"] for p in g["params"]}
    assert sgd_params == {id(p) for p in model.parameters()} - {id(model[0].weight)}
    w0, b0 = model[0].weight.detach().clone(), model[3].bias.detach().clone()
    gw, gb = torch.randn_like(w0), torch.randn_like(b0)
    model[0].weight.grad, model[3].bias.grad = gw.clone(), gb.clone()
    opt.step()
    from reslab.train.muon import orthogonalise

    scaled = w0 * (4**0.5 / w0.norm())
    expected = scaled - 0.2 * orthogonalise((gw + 0.6 * gw).reshape(4, -1)).view_as(w0)
    torch.testing.assert_close(model[0].weight.detach(), expected)
    # SGD, first step: buffer = gradient (+ L2), Nesterov: g + m * buffer
    g = gb + 1e-3 * b0
    torch.testing.assert_close(model[3].bias.detach(), b0 - 0.1 * (g + 0.9 * g))
