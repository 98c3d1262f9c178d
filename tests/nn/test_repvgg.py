import copy

import pytest
import torch
from helpers import relative_error

from yolorep.nn import QARepVGGBlock, RepVGGBlock, randomize_batchnorm


def _reference_forward(block, x):
    """The block's training forward with every branch applied as a plain module (strided 1 x 1 included)."""
    y = block.dense.bn(block.dense.conv(x))
    if isinstance(block, RepVGGBlock):
        y = y + block.pointwise.bn(block.pointwise.conv(x))
        if block.identity is not None:
            y = y + block.identity(x)
        return block.act(y)
    y = y + block.pointwise(x)
    if block.has_identity:
        y = y + x
    return block.act(block.bn(y))


@pytest.mark.parametrize("block_cls", [RepVGGBlock, QARepVGGBlock])
@pytest.mark.parametrize(("c_in", "c_out", "stride", "groups", "size"), [
    (3, 16, 2, 1, (33, 35)),
    (8, 8, 2, 2, (16, 10)),
    (8, 8, 1, 1, (13, 13)),
    (8, 16, 3, 1, (17, 14)),
])  # fmt: skip
def test_training_step_matches_plain_strided_branches(block_cls, c_in, c_out, stride, groups, size):
    """The strided 1 x 1 branch is computed on the pixels it reads; outputs, BatchNorm statistics and every
    gradient must be those of the plain strided convolution."""
    torch.manual_seed(0)
    block = randomize_batchnorm(block_cls(c_in, c_out, 3, stride, groups), seed=3).train()
    reference = copy.deepcopy(block)
    x = torch.randn(4, c_in, *size, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_(True)
    target = torch.randn_like(block(x.detach()))
    block.load_state_dict(reference.state_dict())  # undo the running-statistics update of that probe

    y = block(x)
    y_ref = _reference_forward(reference, x_ref)
    assert y.shape == y_ref.shape
    assert relative_error(y, y_ref) <= 1e-6
    ((y - target) ** 2).mean().backward()
    ((y_ref - target) ** 2).mean().backward()
    assert relative_error(x.grad, x_ref.grad) <= 1e-5
    for (name, p), p_ref in zip(block.named_parameters(), reference.parameters()):
        assert relative_error(p.grad, p_ref.grad) <= 1e-5, name
    for (name, b), b_ref in zip(block.named_buffers(), reference.buffers()):
        assert torch.allclose(b.float(), b_ref.float(), rtol=1e-6, atol=1e-7), name
