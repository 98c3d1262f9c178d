"""docs/BLOCKS.md stays true: its user block fuses exactly by probing, its timm YAML builds and fuses."""

import re
from pathlib import Path

import pytest
import torch
from helpers import relative_error

import yolorep
from yolorep.nn import FusedConv, randomize_batchnorm

DOC = (Path(__file__).parents[1] / "docs" / "BLOCKS.md").read_text()

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def wide_block() -> type:
    """The example's class (run once: it registers its name)."""
    namespace: dict = {}
    exec(compile(re.search(r"```python\n(.*?)```", DOC, re.S).group(1), "BLOCKS.md", "exec"), namespace)
    return namespace["WideBlock"]


@pytest.mark.parametrize("stride", [1, 2])
def test_user_block_example_fuses_exactly(wide_block, stride):
    block = randomize_batchnorm(wide_block(8, 8, stride), seed=stride).eval()
    with torch.no_grad():
        block.gain.fill_(0.7)
        fused = block.fused()
        x = torch.randn(2, 8, 13, 12)
        assert relative_error(fused(x), block(x)) <= 1e-5
    assert isinstance(fused, FusedConv) and fused.conv.kernel_size == (5, 5) and fused.conv.stride == (stride,) * 2


def test_timm_yaml_example_builds_and_fuses(tmp_path):
    pytest.importorskip("timm")
    path = tmp_path / "timm.yaml"
    path.write_text(re.search(r"```yaml\n(nc: 80.*?)```", DOC, re.S).group(1))
    model = randomize_batchnorm(yolorep.build_model(path, nc=3)).eval()
    assert model.stride.tolist() == [8.0, 16.0, 32.0]
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        expected = model(x)
        assert relative_error(model.fuse()(x), expected) <= 1e-5
    assert model.is_fused and "1 TimmBackbone" in model.fuse_report
