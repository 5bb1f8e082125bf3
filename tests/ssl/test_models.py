"""The momentum update and schedule, MoCo's queue, the SSL modules' forward/backward and their backbone."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from reslab.ssl.models import BYOL, MoCo, SimCLR, backbone, momentum_at, momentum_update


def test_momentum_update_by_hand():
    student = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    teacher = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    with torch.no_grad():
        for p in student.parameters():
            p.fill_(1.0)
        for p in teacher.parameters():
            p.fill_(0.0)
        student[1].running_mean.fill_(2.0)
        student[1].num_batches_tracked.fill_(7)
    momentum_update(teacher, student, 0.9)
    for p in teacher.parameters():
        assert torch.allclose(p, torch.full_like(p, 0.1))
    assert torch.allclose(teacher[1].running_mean, torch.full((2,), 0.2))  # 0.9 * 0 + 0.1 * 2
    assert teacher[1].num_batches_tracked.item() == 7  # integers are copied
    momentum_update(teacher, student, 0.0)  # momentum 0: the teacher becomes the student
    assert all(torch.equal(a, b) for a, b in zip(teacher.state_dict().values(), student.state_dict().values()))


def test_momentum_schedule():
    assert momentum_at(0.99, 0, 100) == pytest.approx(0.99)
    assert momentum_at(0.99, 50, 100) == pytest.approx(0.995)
    assert momentum_at(0.99, 100, 100) == pytest.approx(1.0)
    assert momentum_at(0.99, 73, 100, "constant") == 0.99


def test_backbone_drops_the_classifier_and_keeps_zoo_names():
    net = backbone("resnet20")
    keys = set(net.state_dict())
    assert not any(k.startswith("fc.") for k in keys) and "conv1.weight" in keys
    assert net.num_features == 64
    assert net(torch.randn(2, 3, 16, 16)).shape == (2, 64)


@pytest.mark.parametrize("method", [SimCLR, BYOL, MoCo])
def test_ssl_module_trains_every_student_parameter(method):
    kwargs = {"queue_size": 32, "key_splits": 2} if method is MoCo else {}
    model = method(backbone("resnet20"), **kwargs)
    views = torch.randn(8, 3, 16, 16)  # 4 images x 2 views
    loss = model(views, torch.Generator().manual_seed(0))["loss"]
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    for name, p in model.named_parameters():
        if p.requires_grad:
            assert p.grad is not None and torch.isfinite(p.grad).all(), name
        else:
            assert name.startswith("teacher.") and p.grad is None, name


def test_moco_queue_is_a_ring_of_the_latest_keys():
    model = MoCo(backbone("resnet20"), proj_dim=8, queue_size=12, key_splits=2)
    before = model.queue.clone()
    model(torch.randn(8, 3, 16, 16), torch.Generator().manual_seed(0))  # 8 keys (4 images x 2 views)
    assert model.queue_ptr.item() == 8
    assert torch.equal(model.queue[8:], before[8:]) and not torch.equal(model.queue[:8], before[:8])
    assert torch.allclose(model.queue[:8].norm(dim=1), torch.ones(8), atol=1e-5)
    model(torch.randn(8, 3, 16, 16), torch.Generator().manual_seed(1))
    assert model.queue_ptr.item() == 4  # 16 keys into a ring of 12
    assert not torch.equal(model.queue[8:], before[8:])


def test_teacher_follows_the_student_by_momentum():
    model = BYOL(backbone("resnet20"), proj_hidden=32, proj_dim=16, pred_hidden=32)
    with torch.no_grad():
        for p in model.backbone.parameters():
            p.add_(1.0)
    t_before = model.teacher["backbone"].conv1.weight.clone()
    model.update_teacher(0.75)
    expected = 0.75 * t_before + 0.25 * model.backbone.conv1.weight
    assert torch.allclose(model.teacher["backbone"].conv1.weight, expected)
