"""The import path ``yolorep.engine.validator`` of earlier versions: ``yolorep.engine.val.validator``."""

from yolorep.engine.val.validator import val  # noqa: F401
