"""yolorep's re-parameterizable blocks against the public implementations they follow, on the same weights.

For each pair the public block is built, given random non-trivial weights and BatchNorm statistics, and its
weights are ported into the yolorep block. Then, in eval mode, the script compares

- the unfused outputs (yolorep's training-time graph against theirs),
- the fused outputs (yolorep's ``fused()`` against their own re-parameterization),
- the fused kernels and biases themselves,

each as the largest absolute difference relative to the largest magnitude of the reference. The public code is
imported from where you keep it, never copied:

    pip install timm
    git clone https://github.com/DingXiaoH/ACNet && git clone https://github.com/DingXiaoH/DiverseBranchBlock
    python benchmarks/reparam_agreement.py --acnet ACNet/acnet --dbb DiverseBranchBlock --markdown

Pairs: timm ``RepVggBlock`` / ``RepVGGBlock``, timm ``MobileOneBlock`` / ``MobileOneBlock``, ACNet ``ACBlock`` /
``ACBlock``, DiverseBranchBlock ``DiverseBranchBlock`` / ``DBBlock``. timm's blocks end in ReLU, so the yolorep
blocks are built with ``act=nn.ReLU()`` for them; ACNet's and DBB's have no activation (``act=False``).
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import sys
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn

from yolorep.nn import ACBlock, DBBlock, MobileOneBlock, RepVGGBlock, randomize_batchnorm

# (in, out, kernel, stride, groups): dense, strided and wider, grouped, depthwise
GEOMETRIES = [(16, 16, 3, 1, 1), (16, 32, 3, 2, 1), (16, 16, 3, 1, 4), (16, 16, 3, 2, 16), (16, 16, 5, 1, 16)]


def _load_file(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _randomize(module: nn.Module, seed: int) -> nn.Module:
    randomize_batchnorm(module, seed=seed)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn(p.shape, generator=generator) * 0.1)
    return module.eval()


def _copy(target: nn.Module, source: nn.Module) -> None:
    """Parameters and BatchNorm buffers of ``source`` (a conv or a BN) into ``target`` of the same kind."""
    with torch.no_grad():
        for name, tensor in target.state_dict().items():
            if tensor.is_floating_point():
                tensor.copy_(source.state_dict()[name])


def _conv_bn(target, source) -> None:
    _copy(target.conv, source.conv)
    _copy(target.bn, source.bn)


def port_timm_repvgg(theirs: nn.Module, ours: RepVGGBlock) -> None:
    _conv_bn(ours.dense, theirs.conv_kxk)
    _conv_bn(ours.pointwise, theirs.conv_1x1)
    if theirs.identity is not None:
        _copy(ours.identity, theirs.identity)


def port_timm_mobileone(theirs: nn.Module, ours: MobileOneBlock) -> None:
    for mine, their in zip(ours.dense, theirs.conv_kxk):
        _conv_bn(mine, their)
    _conv_bn(ours.scale, theirs.conv_scale)
    if theirs.identity is not None:
        _copy(ours.identity, theirs.identity)


def port_acnet(theirs: nn.Module, ours: ACBlock) -> None:
    for mine, conv, bn in [
        (ours.square, theirs.square_conv, theirs.square_bn),
        (ours.horizontal, theirs.hor_conv, theirs.hor_bn),
        (ours.vertical, theirs.ver_conv, theirs.ver_bn),
    ]:
        _copy(mine.conv, conv)
        _copy(mine.bn, bn)


def port_dbb(theirs: nn.Module, ours: DBBlock) -> None:
    _conv_bn(ours.dense, theirs.dbb_origin)
    if hasattr(theirs, "dbb_1x1"):
        _conv_bn(ours.pointwise, theirs.dbb_1x1)
    first = theirs.dbb_1x1_kxk
    with torch.no_grad():  # their identity-based 1 x 1 conv stores weight - identity
        kernel = first.idconv1.get_actual_kernel() if hasattr(first, "idconv1") else first.conv1.weight
        ours.sequence.expand.weight.copy_(kernel)
    _copy(ours.sequence.expand_bn, first.bn1.bn)
    _copy(ours.sequence.conv, first.conv2)
    _copy(ours.sequence.bn, first.bn2)
    if hasattr(theirs.dbb_avg, "conv"):
        _copy(ours.average.conv, theirs.dbb_avg.conv)
        _copy(ours.average.conv_bn, theirs.dbb_avg.bn.bn)
    _copy(ours.average.bn, theirs.dbb_avg.avgbn)


def _relative(got: Tensor, reference: Tensor) -> float:
    got, reference = got.detach(), reference.detach()
    return float((got - reference).abs().max() / reference.abs().max())


def compare(
    theirs: nn.Module, ours: nn.Module, deploy: Callable[[nn.Module], nn.Conv2d], dtype: torch.dtype
) -> dict[str, float]:
    """Unfused outputs, fused outputs and fused kernel/bias, ours against theirs; ``deploy`` re-parameterizes
    their block in place and returns its conv."""
    theirs, ours = theirs.to(dtype).eval(), ours.to(dtype).eval()
    in_channels = next(m for m in ours.modules() if isinstance(m, nn.Conv2d)).in_channels
    x = torch.randn(2, in_channels, 15, 14, generator=torch.Generator().manual_seed(0)).to(dtype)  # odd by even
    with torch.no_grad():
        their_unfused, our_unfused = theirs(x), ours(x)
        their_conv = deploy(theirs)
        their_fused, fused = theirs(x), ours.fused()
        our_fused = fused(x)
    return {
        "unfused": _relative(our_unfused, their_unfused),
        "fused": _relative(our_fused, their_fused),
        "kernel": _relative(fused.conv.weight, their_conv.weight),
        "bias": _relative(fused.conv.bias, their_conv.bias),
        "fused_vs_their_unfused": _relative(our_fused, their_unfused),
    }


def _timm_deploy(block: nn.Module) -> nn.Conv2d:
    block.reparameterize()
    return block.reparam_conv


def _switch_to_deploy(attribute: str) -> Callable[[nn.Module], nn.Conv2d]:
    def deploy(block: nn.Module) -> nn.Conv2d:
        block.switch_to_deploy()
        return getattr(block, attribute)

    return deploy


def pairs(acnet: Path | None, dbb: Path | None) -> list[tuple[str, Callable, Callable, Callable, Callable]]:
    """(name, their builder, our builder, port, deploy), each builder taking (in, out, k, stride, groups)."""
    from timm.models.byobnet import MobileOneBlock as TimmMobileOne
    from timm.models.byobnet import RepVggBlock as TimmRepVgg

    found = [
        ("timm RepVggBlock", lambda i, o, k, s, g: TimmRepVgg(i, o, k, s, group_size=i // g),
         lambda i, o, k, s, g: RepVGGBlock(i, o, k, s, g, act=nn.ReLU()), port_timm_repvgg, _timm_deploy),
        ("timm MobileOneBlock", lambda i, o, k, s, g: TimmMobileOne(i, o, k, s, group_size=i // g, num_conv_branches=3),
         lambda i, o, k, s, g: MobileOneBlock(i, o, k, s, g, branches=3, act=nn.ReLU()), port_timm_mobileone,
         _timm_deploy),
    ]  # fmt: skip
    if acnet is not None:
        acb = _load_file("acnet_acb", acnet / "acb.py").ACBlock
        found.append((
            "ACNet ACBlock", lambda i, o, k, s, g: acb(i, o, k, s, padding=k // 2, groups=g),
            lambda i, o, k, s, g: ACBlock(i, o, k, s, g, act=False), port_acnet, _switch_to_deploy("fused_conv"),
        ))  # fmt: skip
    if dbb is not None:
        sys.path.insert(0, str(dbb))  # diversebranchblock.py imports dbb_transforms from its folder
        diverse = _load_file("dbb_diversebranchblock", dbb / "diversebranchblock.py").DiverseBranchBlock
        found.append((
            "DiverseBranchBlock", lambda i, o, k, s, g: diverse(i, o, k, s, padding=k // 2, groups=g),
            lambda i, o, k, s, g: DBBlock(i, o, k, s, g, act=False), port_dbb, _switch_to_deploy("dbb_reparam"),
        ))  # fmt: skip
    return found


def run(acnet: Path | None, dbb: Path | None) -> list[dict]:
    rows = []
    for name, build_theirs, build_ours, port, deploy in pairs(acnet, dbb):
        for geometry in GEOMETRIES:
            for dtype in (torch.float32, torch.float64):
                torch.manual_seed(0)
                theirs = _randomize(build_theirs(*geometry), seed=sum(geometry)).to(dtype)
                ours = build_ours(*geometry).to(dtype)
                port(theirs, ours)  # in the compared dtype: DBB's identity-based 1 x 1 conv adds the identity here
                figures = compare(copy.deepcopy(theirs), ours, deploy, dtype)
                rows.append({"reference": name, "geometry": geometry, "dtype": str(dtype).split(".")[-1], **figures})
    return rows


def markdown(rows: list[dict]) -> str:
    columns = ("unfused", "fused", "kernel", "bias", "fused_vs_their_unfused")
    lines = [
        "| reference | in, out, k, stride, groups | dtype | unfused | fused | kernel | bias | our fused vs their "
        "unfused |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        figures = " | ".join(f"{r[key]:.1e}" for key in columns)
        lines.append(f"| {r['reference']} | {', '.join(map(str, r['geometry']))} | {r['dtype']} | {figures} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--acnet", type=Path, help="folder holding ACNet's acb.py (ACNet/acnet)")
    parser.add_argument("--dbb", type=Path, help="folder holding DiverseBranchBlock's diversebranchblock.py")
    parser.add_argument("--json", type=Path, help="also write every figure here")
    parser.add_argument("--markdown", action="store_true", help="print a markdown table")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = run(args.acnet, args.dbb)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    print(markdown(rows) if args.markdown else json.dumps(rows, indent=2))
    worst = {dtype: max(max(r[k] for k in ("unfused", "fused", "kernel", "bias")) for r in rows if r["dtype"] == dtype)
             for dtype in ("float32", "float64")}  # fmt: skip
    print(f"\nlargest relative difference: float32 {worst['float32']:.1e}, float64 {worst['float64']:.1e}")


if __name__ == "__main__":
    main()
