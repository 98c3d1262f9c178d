import torch

from yolorep.ops import decode_predictions, dfl_expectation, make_anchor_points


def test_anchor_points_are_cell_centres_level_by_level():
    points, strides = make_anchor_points([(2, 3), (1, 2)], torch.tensor([8.0, 16.0]))
    assert points.tolist() == [[0.5, 0.5], [1.5, 0.5], [2.5, 0.5], [0.5, 1.5], [1.5, 1.5], [2.5, 1.5],
                               [0.5, 0.5], [1.5, 0.5]]  # fmt: skip
    assert strides.flatten().tolist() == [8.0] * 6 + [16.0] * 2


def test_dfl_expectation_is_the_mean_of_the_bin_distribution():
    logits = torch.full((1, 4, 16, 1), -1e4)
    logits[0, 0, 3, 0] = 0.0  # all mass on bin 3
    logits[0, 1, 5:7, 0] = 0.0  # half on 5, half on 6
    logits[0, 2:, :, 0] = 0.0  # uniform over 0..15
    assert dfl_expectation(logits).flatten().tolist() == [3.0, 5.5, 7.5, 7.5]


def test_decode_places_boxes_around_their_anchor_in_pixels():
    reg_max, nc = 4, 2
    maps = [torch.full((1, 4 * reg_max + nc, 1, 2), -1e4), torch.full((1, 4 * reg_max + nc, 1, 1), -1e4)]
    for m in maps:
        m[:, [1, 4 + 2, 8 + 1, 12 + 3]] = 0.0  # distances left 1, top 2, right 1, bottom 3 (grid units)
        m[:, 4 * reg_max :] = 0.0  # class logits 0 -> score 0.5
    out = decode_predictions(maps, torch.tensor([8.0, 32.0]), reg_max)
    assert out.shape == (1, 3, 4 + nc)
    # anchors (0.5, 0.5) and (1.5, 0.5) at stride 8, (0.5, 0.5) at stride 32
    expected = [[(0.5 - 1) * 8, (0.5 - 2) * 8, (0.5 + 1) * 8, (0.5 + 3) * 8],
                [(1.5 - 1) * 8, (0.5 - 2) * 8, (1.5 + 1) * 8, (0.5 + 3) * 8],
                [(0.5 - 1) * 32, (0.5 - 2) * 32, (0.5 + 1) * 32, (0.5 + 3) * 32]]  # fmt: skip
    torch.testing.assert_close(out[0, :, :4], torch.tensor(expected))
    torch.testing.assert_close(out[0, :, 4:], torch.full((3, nc), 0.5))


def test_fp16_maps_decode_in_fp32():
    """fp16 boxes would be rounded to 0.5 px above 512 px; the maps are fp16, the decoding is not."""
    reg_max, nc = 16, 3
    generator = torch.Generator().manual_seed(0)
    maps = [torch.randn(2, 4 * reg_max + nc, s, s, generator=generator).half() for s in (80, 40, 20)]
    strides = torch.tensor([8.0, 16.0, 32.0])
    out = decode_predictions(maps, strides.half(), reg_max)
    assert out.dtype == torch.float32
    assert torch.equal(out, decode_predictions([m.float() for m in maps], strides, reg_max))
    far = out[..., :4] > 512  # where fp16 holds only multiples of 0.5
    assert far.sum() > 1000 and (out[..., :4][far] % 0.5 != 0).float().mean() > 0.9


def test_anchor_points_follow_the_strides_dtype_and_count_exactly():
    points, _ = make_anchor_points([(300, 7)], torch.tensor([2.0], dtype=torch.float64))
    assert points.dtype == torch.float64
    assert points[:, 1].unique().tolist() == [i + 0.5 for i in range(300)]
