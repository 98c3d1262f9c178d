"""The import path ``yolorep.engine.hooks`` of earlier versions: ``yolorep.engine.train.hooks``."""

from yolorep.engine.train.hooks import *  # noqa: F403
