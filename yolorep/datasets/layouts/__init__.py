"""Data layouts: one module per layout (``coco``, ``yolo``, ``voc``), each a
:class:`~yolorep.datasets.layouts.base.Layout` that detects itself, reads its YAML keys, checks and reads its files
into :class:`~yolorep.datasets.targets.ImageRecord` objects, keys its label cache and (``coco``, ``yolo``) writes a
converted set. ``registry.LAYOUTS`` lists them.

To add a layout (say CVAT XML):

1. write ``yolorep/datasets/layouts/cvat.py`` with a frozen dataclass ``CvatLayout(Layout)``: ``name``, ``title``,
   its YAML keys as fields (read and checked in ``from_yaml``), ``detect``, ``check_data``, ``cache_key`` and
   ``read_split`` (plus ``extras`` if it holds what records do not, ``from_folder`` to convert a folder without
   YAML, and ``writes``/``keeps``/``write_split``/``data_yaml`` to be a ``convert --to`` target);
2. add ``CvatLayout`` to the tuple in ``registry.py``.

The YAML reader, the loader and its label cache, ``convert``, the data summary and the tests parametrised over the
registry pick it up from there.
"""
