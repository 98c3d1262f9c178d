"""Showing images in a window (``predict --show``), where a display exists."""

from __future__ import annotations

import logging
import os
import re
import sys

import numpy as np

__all__ = ["display_problem", "show_image"]

LOGGER = logging.getLogger(__name__)


def display_problem() -> str | None:
    """Why a window cannot be opened here (no display, or an OpenCV build without a GUI), or None when it can."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return "there is no display (neither DISPLAY nor WAYLAND_DISPLAY is set)"
    import cv2

    gui = re.search(r"^\s*GUI:\s*(\S+)", cv2.getBuildInformation(), re.MULTILINE)
    if gui and gui.group(1).upper() == "NONE":
        return "this OpenCV build has no GUI (opencv-python-headless); pip install opencv-python to show windows"
    return None


def show_image(title: str, image_bgr: np.ndarray, wait_ms: int = 1) -> bool:
    """Show ``image_bgr`` [H, W, 3] in the window ``title`` for ``wait_ms`` (0: until a key is pressed).

    Returns:
        False, after one warning per process, when no window can be opened here; True otherwise.
    """
    problem = display_problem()
    if problem is not None:
        if not getattr(show_image, "warned", False):
            LOGGER.warning("show: %s; nothing is shown (save the images instead)", problem)
            show_image.warned = True  # type: ignore[attr-defined]
        return False
    import cv2

    cv2.imshow(title, image_bgr)
    cv2.waitKey(wait_ms)
    return True
