"""The import path ``yolorep.engine.callbacks`` of earlier versions: ``yolorep.engine.train.callbacks``."""

from yolorep.engine.train.callbacks import *  # noqa: F403
