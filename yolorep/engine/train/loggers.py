"""Experiment loggers as training policies: TensorBoard, MLflow and Weights & Biases (``--loggers``).

Each logs what the run writes to its folder, as it writes it: the run's options (as parameters), every results row
(losses, validation metrics, learning rates, speed) at its epoch, the first training batches drawn, and at the end
the final metrics of ``best.pt`` (pycocotools), the run's plots (results, PR curve, confusion matrix) and, for
MLflow and W&B, the weights. They act on rank 0 only, and import their package only when the run starts, never
when yolorep is imported.

``--loggers`` names the ones to use; by default TensorBoard alone, used when installed (``pip install
tensorboard``) and skipped without a word otherwise, as before loggers could be chosen. MLflow and W&B are used only
when named (``--loggers mlflow,wandb``); a named one that is not installed stops the run before it starts, with the
pip extra that brings it. They are configured as those tools are, by their own environment variables:

* MLflow: ``MLFLOW_TRACKING_URI`` (a server, ``sqlite:///mlflow.db``, or a ``file:`` folder, which MLflow 3 takes
  only with ``MLFLOW_ALLOW_FILE_STORE=true``; MLflow's default otherwise, ``./mlflow.db`` in MLflow 3),
  ``MLFLOW_EXPERIMENT_NAME`` (default: the ``--project`` folder's name), ``MLFLOW_RUN`` (default: the run
  folder's name). A resumed run continues the same MLflow run.
* W&B: ``WANDB_PROJECT`` (default: the ``--project`` folder's name), ``WANDB_MODE=offline`` to keep everything
  local (``wandb sync`` uploads it later); its files go under the run folder (``wandb/``). A resumed run continues
  the same W&B run.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from pathlib import Path
from typing import Any

from yolorep.engine.train.hooks import Hook
from yolorep.errors import ArgumentError, YolorepError

__all__ = ["MLflowLogger", "TensorBoardLogger", "WandbLogger", "build_loggers", "check_loggers"]

LOGGER = logging.getLogger(__name__)
# logger name -> (module imported, pip extra)
PACKAGES = {"tensorboard": ("tensorboard", "tensorboard"), "mlflow": ("mlflow", "mlflow"), "wandb": ("wandb", "wandb")}


def _installed(name: str) -> bool:
    return importlib.util.find_spec(PACKAGES[name][0]) is not None


def check_loggers(names: tuple[str, ...]) -> list[str]:
    """The loggers of ``names`` to use: every one named, less TensorBoard when it is not installed.

    Raises:
        ArgumentError: MLflow or W&B named and not installed.
    """
    missing = [name for name in names if name != "tensorboard" and not _installed(name)]
    if missing:
        extras = ",".join(PACKAGES[name][1] for name in missing)
        raise ArgumentError(
            f"--loggers {','.join(names)}: {', '.join(missing)} not installed; pip install 'yolorep[{extras}]' "
            "or leave it out"
        )
    return [name for name in names if name != "tensorboard" or _installed(name)]


def build_loggers(names: tuple[str, ...], train_args: dict[str, Any]) -> list[Hook]:
    """The hooks of the loggers ``check_loggers`` keeps, in the order named."""
    kinds = {"tensorboard": TensorBoardLogger, "mlflow": MLflowLogger, "wandb": WandbLogger}
    return [kinds[name](train_args) for name in check_loggers(names)]


def flat_params(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"hyp": {"lr0": 0.01}}`` -> ``{"hyp.lr0": 0.01}``; lists as text."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(flat_params(value, f"{prefix}{key}."))
        else:
            plain = isinstance(value, (int, float, str, bool)) or value is None
            flat[f"{prefix}{key}"] = value if plain else str(value)
    return flat


def final_scalars(metrics: dict[str, Any]) -> dict[str, float]:
    """The final validation's numbers, under the names results.csv gives the per-epoch estimates."""
    names = {"map50_95": "metrics/mAP50-95", "map50": "metrics/mAP50", "precision": "metrics/precision",
             "recall": "metrics/recall"}  # fmt: skip
    return {name: float(metrics[key]) for key, name in names.items() if isinstance(metrics.get(key), (int, float))}


def batch_images(save_dir: Path) -> list[Path]:
    return sorted(save_dir.glob("train_batch*.jpg"))


def plot_images(save_dir: Path) -> list[Path]:
    """The figures a finished run holds: results.png, the PR curve, the confusion matrix and any other plot."""
    return sorted(save_dir.glob("*.png"))


def _read_rgb(path: Path):
    import cv2

    image = cv2.imread(str(path))
    return None if image is None else image[:, :, ::-1].copy()


class TensorBoardLogger(Hook):
    """Scalars of every results row; the first training batches and, at the end, the run's plots as images."""

    def __init__(self, train_args: dict[str, Any]) -> None:
        self.writer: Any = None

    def on_train_start(self, trainer: Any) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(trainer.save_dir))

    def on_train_epoch_end(self, trainer: Any) -> None:
        if trainer.epoch == 0:
            self._images(batch_images(trainer.save_dir), 0)

    def on_fit_epoch_end(self, trainer: Any) -> None:
        row = trainer.state.history[-1]
        for key, value in row.items():
            self.writer.add_scalar(key, value, row["epoch"])

    def on_train_end(self, trainer: Any) -> None:
        epochs = trainer.last_epoch + 1
        for key, value in final_scalars(trainer.final_metrics).items():
            self.writer.add_scalar(f"final/{key}", value, epochs)
        self._images(plot_images(trainer.save_dir), epochs)
        self.writer.close()

    def _images(self, paths: list[Path], step: int) -> None:
        for path in paths:
            image = _read_rgb(path)
            if image is not None:
                self.writer.add_image(path.stem, image, step, dataformats="HWC")


class MLflowLogger(Hook):
    """An MLflow run: parameters, metrics per epoch, and at the end the final metrics and the run folder's files
    (plots, results.csv, args.yaml, weights) as artifacts."""

    def __init__(self, train_args: dict[str, Any]) -> None:
        self.train_args, self.run_id = train_args, None

    def on_train_start(self, trainer: Any) -> None:
        import mlflow

        name = Path(self.train_args["project"]).name or "yolorep"
        run_name = os.environ.get("MLFLOW_RUN") or trainer.save_dir.name
        try:
            mlflow.set_experiment(os.environ.get("MLFLOW_EXPERIMENT_NAME") or name)
            run = mlflow.start_run(run_id=self.run_id, run_name=None if self.run_id else run_name)
        except Exception as err:  # an unreachable server, a refused store: MLflow raises many kinds
            raise YolorepError(f"MLflow: cannot start a run at {mlflow.get_tracking_uri()} ({_first_line(err)}); "
                               "check MLFLOW_TRACKING_URI, or train without --loggers mlflow") from None  # fmt: skip
        if self.run_id is None:
            mlflow.log_params(flat_params(self.train_args))
        self.run_id = run.info.run_id
        LOGGER.info("MLflow: run %s in %s", self.run_id, mlflow.get_tracking_uri())

    def on_fit_epoch_end(self, trainer: Any) -> None:
        import mlflow

        row = trainer.state.history[-1]
        metrics = {_mlflow_key(k): float(v) for k, v in row.items() if k != "epoch" and v == v}  # NaN: not validated
        mlflow.log_metrics(metrics, step=int(row["epoch"]), run_id=self.run_id)

    def on_train_end(self, trainer: Any) -> None:
        import mlflow

        final = {_mlflow_key(k): v for k, v in final_scalars(trainer.final_metrics).items()}
        mlflow.log_metrics({f"final/{k}": v for k, v in final.items()}, step=trainer.last_epoch + 1, run_id=self.run_id)
        for path in sorted(trainer.save_dir.iterdir()):
            if path.is_file() and not path.name.startswith("."):
                mlflow.log_artifact(str(path), run_id=self.run_id)
        mlflow.log_artifacts(str(trainer.save_dir / "weights"), "weights", run_id=self.run_id)
        mlflow.end_run()

    def state_dict(self) -> dict[str, Any]:
        return {"mlflow_run_id": self.run_id}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.run_id = state.get("mlflow_run_id")


def _first_line(err: Exception) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0][:200]


def _mlflow_key(key: str) -> str:
    return key.replace("(", "_").replace(")", "")  # MLflow keys: alphanumerics, _ - . / and spaces


class WandbLogger(Hook):
    """A W&B run: the options as config, metrics per epoch, the first training batches and the plots as images,
    the final metrics as its summary, and ``best.pt`` as a model artifact."""

    def __init__(self, train_args: dict[str, Any]) -> None:
        self.train_args, self.run_id, self.run = train_args, None, None

    def on_train_start(self, trainer: Any) -> None:
        import wandb

        project = os.environ.get("WANDB_PROJECT") or Path(self.train_args["project"]).name or "yolorep"
        try:
            self.run = wandb.init(
                project=project, name=trainer.save_dir.name, config=self.train_args, dir=str(trainer.save_dir),
                id=self.run_id, resume="allow" if self.run_id else None,
            )  # fmt: skip
        except Exception as err:  # not logged in, no network: W&B raises many kinds
            raise YolorepError(f"W&B: cannot start a run ({_first_line(err)}); log in with 'wandb login', set "
                               "WANDB_MODE=offline, or train without --loggers wandb") from None  # fmt: skip
        self.run_id = self.run.id
        LOGGER.info("W&B: run %s (%s)", self.run_id, self.run.settings.mode)

    def on_train_epoch_end(self, trainer: Any) -> None:
        if trainer.epoch == 0:
            self._images(batch_images(trainer.save_dir), 0)

    def on_fit_epoch_end(self, trainer: Any) -> None:
        row = trainer.state.history[-1]
        self.run.log({k: v for k, v in row.items() if k != "epoch"}, step=int(row["epoch"]))

    def on_train_end(self, trainer: Any) -> None:
        import wandb

        self.run.summary.update({f"final/{k}": v for k, v in final_scalars(trainer.final_metrics).items()})
        self._images(plot_images(trainer.save_dir), trainer.last_epoch + 1)
        artifact = wandb.Artifact(f"run_{self.run_id}_model", type="model")
        artifact.add_file(str(trainer.save_dir / "weights" / "best.pt"))
        self.run.log_artifact(artifact, aliases=["best"])
        self.run.finish()

    def _images(self, paths: list[Path], step: int) -> None:
        import wandb

        images = {path.stem: wandb.Image(str(path)) for path in paths}
        if images:
            self.run.log(images, step=step)

    def state_dict(self) -> dict[str, Any]:
        return {"wandb_run_id": self.run_id}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.run_id = state.get("wandb_run_id")
