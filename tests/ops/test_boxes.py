from __future__ import annotations

import numpy as np
import pytest
import torch

from yolorep.ops import box_ioa, clip_boxes, cxcywh_to_xyxy, scale_boxes, xyxy_to_cxcywh, xyxy_to_ltwh


def _random_xyxy(n: int = 16, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * 500
    wh = torch.rand(n, 2, generator=g) * 100 + 1
    return torch.cat([xy, xy + wh], dim=1).double()


def test_centre_format_round_trip() -> None:
    boxes = _random_xyxy()
    torch.testing.assert_close(cxcywh_to_xyxy(xyxy_to_cxcywh(boxes)), boxes)
    cx, cy, w, h = xyxy_to_cxcywh(torch.tensor([[10.0, 20.0, 30.0, 60.0]]))[0].tolist()
    assert (cx, cy, w, h) == (20.0, 40.0, 20.0, 40.0)


def test_ltwh_is_coco_format() -> None:
    assert xyxy_to_ltwh(torch.tensor([[10.0, 20.0, 30.0, 60.0]])).tolist() == [[10.0, 20.0, 20.0, 40.0]]


def test_numpy_in_numpy_out() -> None:
    boxes = _random_xyxy().numpy()
    out = xyxy_to_cxcywh(boxes)
    assert isinstance(out, np.ndarray)
    np.testing.assert_allclose(cxcywh_to_xyxy(out), boxes)
    assert isinstance(scale_boxes(boxes, ((0.5, 0.5), (3, 4)), (100, 100)), np.ndarray)


def test_scale_boxes_inverts_letterbox() -> None:
    original = torch.tensor([[0.0, 0.0, 200.0, 100.0], [50.0, 25.0, 150.0, 75.0]])
    r, pad = 0.8, (0.0, 40.0)  # a 200 x 100 (w x h) image resized to 160 x 80 and centred in a 160 x 160 input
    letterboxed = original * r + torch.tensor([pad[0], pad[1], pad[0], pad[1]])
    before = letterboxed.clone()
    torch.testing.assert_close(scale_boxes(letterboxed, ((r, r), pad), (100, 200)), original)
    assert torch.equal(letterboxed, before)


def test_clip_boxes() -> None:
    boxes = torch.tensor([[-5.0, -5.0, 700.0, 300.0]])
    assert clip_boxes(boxes, (240, 640)).tolist() == [[0.0, 0.0, 640.0, 240.0]]
    assert boxes.tolist() == [[-5.0, -5.0, 700.0, 300.0]]


@pytest.mark.parametrize(
    ("box", "expected"),
    [([0.0, 0.0, 10.0, 10.0], 1.0), ([5.0, 5.0, 15.0, 15.0], 0.25), ([20.0, 20.0, 30.0, 30.0], 0.0)],
)
def test_box_ioa_divides_by_first_area(box: list[float], expected: float) -> None:
    crowd = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    assert box_ioa(torch.tensor([box]), crowd).item() == pytest.approx(expected)
    assert box_ioa(crowd, torch.tensor([[0.0, 0.0, 100.0, 100.0]])).item() == pytest.approx(1.0)
