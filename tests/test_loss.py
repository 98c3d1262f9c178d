import copy

import pytest
import torch

import yolorep
from yolorep.loss import DetectionLoss, TaskAlignedAssigner
from yolorep.options.hyp import load_hyp


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return yolorep.build_model("yolorep-n.yaml", nc=3)


def test_loss_falls_when_fitting_a_batch(model):
    model = copy.deepcopy(model).train()
    loss_fn = DetectionLoss.from_hyp(model.nc, model.reg_max, load_hyp())
    images = torch.rand(2, 3, 96, 96)
    targets = torch.tensor([[0, 1, 10, 12, 60, 50], [0, 2, 50, 40, 90, 94], [1, 0, 5, 30, 40, 90]])
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    losses = []
    for _ in range(12):
        total, items = loss_fn(model(images), model.stride, targets)
        assert items.shape == (3,) and torch.isfinite(total)
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        losses.append(float(total.detach()))
    assert losses[-1] < 0.6 * losses[0]


def test_images_without_objects(model):
    model = copy.deepcopy(model).train()
    loss_fn = DetectionLoss.from_hyp(model.nc, model.reg_max, load_hyp())
    preds = model(torch.rand(2, 3, 64, 64))
    total, items = loss_fn(preds, model.stride, torch.zeros(0, 6))
    assert items[0] == 0 and items[2] == 0 and items[1] > 0
    total.backward()
    # one image with objects, one without: the empty image still gets a class loss gradient
    total, items = loss_fn(model(torch.rand(2, 3, 64, 64)), model.stride, torch.tensor([[1.0, 0, 8, 8, 40, 40]]))
    assert (items > 0).all()


def test_assigner_picks_anchors_inside_the_box_and_resolves_conflicts():
    # a 4x4 grid of anchors at stride 8 (centres 4, 12, 20, 28)
    xs = torch.arange(4) * 8 + 4.0
    points = torch.stack(torch.meshgrid(xs, xs, indexing="xy"), -1).reshape(-1, 2)
    gt_boxes = torch.tensor([[[0.0, 0.0, 16.0, 16.0], [8.0, 8.0, 32.0, 32.0]]])
    pred_boxes = torch.cat((points - 6, points + 6), -1)[None]
    scores = torch.full((1, 16, 2), 0.5)
    target_boxes, target_scores, fg = TaskAlignedAssigner(topk=4)(
        scores, pred_boxes, points, torch.tensor([[0, 1]]), gt_boxes, torch.ones(1, 2, dtype=torch.bool)
    )
    inside_first = (points[:, 0] < 16) & (points[:, 1] < 16)
    inside_second = (points[:, 0] > 8) & (points[:, 1] > 8)
    assert fg[0][~(inside_first | inside_second)].sum() == 0
    for anchor in fg[0].nonzero().flatten().tolist():  # every positive lies inside the box it is assigned
        x, y = points[anchor]
        x1, y1, x2, y2 = target_boxes[0, anchor]
        assert x1 < x < x2 and y1 < y < y2
    assert fg[0].sum() >= 6  # up to 4 per box, minus anchors both boxes picked
    assert torch.equal(target_boxes[0][0], gt_boxes[0, 0])  # anchor (4, 4) lies only in the first box
    assert target_scores[0][0, 0] > 0 and target_scores[0][0, 1] == 0
    # anchor (12, 12) lies in both boxes; its predicted box overlaps the first more, so the first box keeps it
    assert fg[0][5] and torch.equal(target_boxes[0][5], gt_boxes[0, 0])
    assert (target_scores[0][fg[0]].argmax(-1) == (target_boxes[0][fg[0]] == gt_boxes[0, 1]).all(-1).long()).all()


def test_gains_weight_the_terms():
    torch.manual_seed(0)
    maps = [torch.randn(2, 4 * 16 + 3, s, s) for s in (8, 4, 2)]
    strides, targets = torch.tensor([8.0, 16.0, 32.0]), torch.tensor([[0, 1, 10, 12, 40, 50.0], [1, 2, 3, 4, 30, 60]])
    base = DetectionLoss(3, 16, box=1.0, cls=1.0, dfl=1.0, topk=10)(maps, strides, targets)[1]
    scaled = DetectionLoss(3, 16, box=7.5, cls=0.5, dfl=1.5, topk=10)(maps, strides, targets)[1]
    torch.testing.assert_close(scaled, base * torch.tensor([7.5, 0.5, 1.5]))
    assert DetectionLoss.from_hyp(3, 16, load_hyp()).gains == {"box": 7.5, "cls": 0.5, "dfl": 1.5}
