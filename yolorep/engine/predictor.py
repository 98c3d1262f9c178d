"""The import path ``yolorep.engine.predictor`` of earlier versions: ``yolorep.engine.predict.predictor``."""

from yolorep.engine.predict.predictor import Detector  # noqa: F401
