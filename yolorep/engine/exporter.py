"""``yolorep.engine.exporter.export``, the name earlier releases documented; the exporter is
``yolorep.engine.deploy.exporter``."""

from yolorep.engine.deploy.exporter import export

__all__ = ["export"]
