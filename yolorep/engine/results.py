"""The import path ``yolorep.engine.results`` of earlier versions: ``yolorep.engine.predict.results``."""

from yolorep.engine.predict.results import *  # noqa: F403
