"""Training hyperparameters: ``Hyperparameters`` declares each one once (default, valid range, meaning).

``cfg/default.yaml`` is its rendering (``default_hyp_yaml()``; a test keeps the shipped file equal to it), the
template of a ``--hyp`` file. Keys match ultralytics' where the meaning is the same.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from yolorep.errors import ArgumentError, ConfigError
from yolorep.options.fields import Options, Search, at_least, between, fraction, greater_than, one_of, option

__all__ = ["Hyperparameters", "default_hyp_yaml", "describe_hyp", "load_hyp", "read_hyp_overrides", "resolve_hyp"]

OPTIMIZERS = ("auto", "SGD", "AdamW")


@dataclass(frozen=True)
class Hyperparameters(Options):
    """The hyperparameters of a training run (``yolorep train --lr0 0.002``, ``lr0=0.002``, a ``--hyp`` file)."""

    command = "train"

    optimizer: str = option(
        "auto",
        "SGD, AdamW, or auto (AdamW for short schedules, SGD for long ones)",
        check=one_of(*OPTIMIZERS),
        metavar="{auto,SGD,AdamW}",
    )
    lr0: float = option(
        0.01,
        "initial learning rate; with optimizer auto, used only when set explicitly",
        check=greater_than(0, 1),
        search=Search(1e-5, 0.1, log=True),
    )
    lrf: float = option(0.01, "final learning rate = lr0 * lrf", check=fraction, search=Search(1e-4, 0.1, log=True))
    cos_lr: bool = option(False, "cosine instead of linear decay")
    momentum: float = option(
        0.937, "SGD momentum / Adam beta1", check=between(0, 1, high_open=True), search=Search(0.7, 0.98)
    )
    weight_decay: float = option(
        0.0005, "on conv/linear weights only, scaled to the nominal batch", check=fraction, search=Search(0.0, 0.001)
    )
    warmup_epochs: float = option(
        3.0, "epochs of linear learning-rate and momentum warm-up", check=at_least(0.0), search=Search(0.0, 5.0)
    )
    warmup_momentum: float = option(
        0.8, "momentum at the start of warm-up", check=between(0, 1, high_open=True), search=Search(0.0, 0.95)
    )
    warmup_bias_lr: float = option(
        0.1, "bias learning rate at the start of warm-up (SGD; AdamW's start at 0)", check=fraction
    )
    nbs: int = option(16, "nominal batch size: smaller batches accumulate gradients up to it", check=at_least(1))
    grad_clip: float = option(10.0, "max gradient norm", check=greater_than(0))
    amp: bool = option(True, "mixed precision: fp16 on CUDA, bf16 on CPUs with native bf16 (AVX512-BF16/AMX)")
    ema_decay: float = option(
        0.9999, "decay of the exponential moving average of the weights", check=between(0, 1, high_open=True)
    )
    ema_tau: float = option(
        2000.0,
        "EMA warm-up: updates until the decay nears ema_decay (less in short plans, see Schedule.ema_tau)",
        check=greater_than(0),
    )
    box: float = option(7.5, "CIoU box loss gain", check=at_least(0.0), search=Search(1.0, 20.0))
    cls: float = option(0.5, "BCE class loss gain", check=at_least(0.0), search=Search(0.2, 4.0))
    dfl: float = option(1.5, "distribution focal loss gain", check=at_least(0.0), search=Search(0.4, 6.0))
    assign_topk: int = option(10, "candidate anchors per object in the task-aligned assigner", check=at_least(1))
    hsv_h: float = option(0.015, "hue jitter, fraction", check=fraction, search=Search(0.0, 0.1))
    hsv_s: float = option(0.7, "saturation jitter, fraction", check=fraction, search=Search(0.0, 0.9))
    hsv_v: float = option(0.4, "value (brightness) jitter, fraction", check=fraction, search=Search(0.0, 0.9))
    degrees: float = option(0.0, "rotation range, +- degrees", check=between(0, 180), search=Search(0.0, 45.0))
    translate: float = option(
        0.1,
        "translation range, fraction of the image size",
        check=between(0, 1, high_open=True),
        search=Search(0.0, 0.9),
    )
    scale: float = option(
        0.5, "scale gain range, 1 +- scale", check=between(0, 1, high_open=True), search=Search(0.0, 0.95)
    )
    shear: float = option(
        0.0, "shear range, +- degrees", check=between(0, 90, high_open=True), search=Search(0.0, 10.0)
    )
    fliplr: float = option(0.5, "probability of a left-right flip", check=fraction, search=Search(0.0, 1.0))
    flipud: float = option(0.0, "probability of an up-down flip", check=fraction, search=Search(0.0, 1.0))
    mosaic: float = option(1.0, "probability of a 4-image mosaic", check=fraction, search=Search(0.0, 1.0))
    mixup: float = option(
        0.0,
        "probability of MixUp: blend with another augmented training image, keeping both's boxes",
        check=fraction,
        search=Search(0.0, 1.0),
    )
    copy_paste: float = option(
        0.0,
        "probability of pasting each object of another training image (its box's pixels) where it hides at most "
        "0.3 of a box",
        check=fraction,
        search=Search(0.0, 1.0),
    )
    close_mosaic: int = option(10, "epochs at the end trained without mosaic", check=at_least(0), search=Search(0, 10))
    val_conf: float = option(0.001, "confidence threshold of validation", check=fraction)
    val_iou: float = option(0.7, "NMS IoU threshold of validation", check=fraction)
    max_det: int = option(300, "detections per image kept by validation", check=at_least(1))


# comment lines cfg/default.yaml shows before these keys
_SECTIONS = {
    "box": "loss gains",
    "hsv_h": "augmentation",
    "val_conf": "evaluation (stored in checkpoints and reused by `yolorep val`)",
}
_HEADER = (
    "# Training hyperparameters: override with --hyp FILE, --key value or key=value (keys match ultralytics where the\n"
    "# meaning is the same). Generated from Hyperparameters in yolorep/options/hyp.py, where each is declared.\n"
)


def read_hyp_overrides(overrides: str | Path | Mapping | None) -> dict[str, Any]:
    """The keys a hyperparameter YAML (or mapping) sets, checked against the known keys."""
    if overrides is None:
        return {}
    where = "hyp" if isinstance(overrides, Mapping) else str(overrides)
    if not isinstance(overrides, Mapping):
        path = Path(overrides)
        if not path.is_file():
            raise ConfigError(f"{path}: hyperparameter file not found; pass a YAML of cfg/default.yaml keys")
        try:
            overrides = yaml.safe_load(path.read_text()) or {}
        except (yaml.YAMLError, UnicodeDecodeError) as err:
            reason = str(err).splitlines()[0]
            raise ConfigError(f"{path}: not valid YAML ({reason}); fix the syntax") from None
        if not isinstance(overrides, Mapping):
            raise ConfigError(f"{path}: expected a mapping of hyperparameters such as 'lr0: 0.002'")
    known = {f.name for f, _ in Hyperparameters.specs()}
    unknown = sorted(str(k) for k in overrides if k not in known)
    if unknown:
        raise ConfigError(f"{where}: unknown hyperparameters {unknown}; valid keys are those of cfg/default.yaml")
    return dict(overrides)


def resolve_hyp(
    source: str | Path | Mapping | Hyperparameters | None, overrides: Mapping[str, Any]
) -> tuple[Hyperparameters, tuple[str, ...]]:
    """The defaults updated by ``source`` (a YAML file, a mapping or ``Hyperparameters``), then by ``overrides``
    (single keys); returns them checked, and the keys the user set."""
    if isinstance(source, Hyperparameters):
        base, from_source = source, {}
    else:
        base, from_source = Hyperparameters(), read_hyp_overrides(source)
    try:
        hyp = base.replace(**from_source, **overrides)
    except ArgumentError as err:
        where = f"{source}: " if isinstance(source, (str, Path)) and set(from_source) & _keys_in(err) else ""
        raise ArgumentError(f"{where}{err}") from None
    return hyp, tuple(sorted({*from_source, *overrides}))


def _keys_in(err: ArgumentError) -> set[str]:
    flag = str(err).split(" ", 1)[0]
    return {flag.removeprefix("--").replace("-", "_")}


def load_hyp(overrides: str | Path | Mapping | None = None) -> dict[str, Any]:
    """The hyperparameters as a plain dict: the defaults, updated by a YAML file or mapping."""
    return resolve_hyp(overrides, {})[0].to_dict()


def describe_hyp() -> dict[str, str]:
    """Each hyperparameter's one-line meaning."""
    return {f.name: spec.help for f, spec in Hyperparameters.specs()}


def default_hyp_yaml() -> str:
    """The text of ``cfg/default.yaml``: every hyperparameter with its default and meaning."""
    lines = [_HEADER.rstrip("\n")]
    for f, spec in Hyperparameters.specs():
        if f.name in _SECTIONS:
            lines.append(f"# {_SECTIONS[f.name]}")
        value = yaml.safe_dump(f.default, default_flow_style=True).strip().removesuffix("\n...").strip()
        lines.append(f"{f.name}: {value} # {spec.help}")
    return "\n".join(lines) + "\n"
