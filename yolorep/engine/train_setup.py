"""The import path ``yolorep.engine.train_setup`` of earlier versions: ``yolorep.engine.train.setup``."""

from yolorep.engine.train.setup import train  # noqa: F401
