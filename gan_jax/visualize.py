"""Image grids and PNGs."""

from __future__ import annotations

import io
import math

import numpy as np
from PIL import Image

from gan_jax import files


def image_grid(images_NxHxWxC: np.ndarray, columns: int | None = None, padding: int = 2) -> np.ndarray:
  """uint8 images `N x H x W x C` -> one uint8 image of `columns` per row (default square)."""
  n, h, w, c = images_NxHxWxC.shape
  columns = columns or math.ceil(math.sqrt(n))
  rows = math.ceil(n / columns)
  grid = np.zeros((rows * (h + padding) + padding, columns * (w + padding) + padding, c), np.uint8)
  for i, image in enumerate(images_NxHxWxC):
    r, q = divmod(i, columns)
    top, left = padding + r * (h + padding), padding + q * (w + padding)
    grid[top:top + h, left:left + w] = image
  return grid


def save_png(path: str, image_HxWxC: np.ndarray) -> None:
  """Writes a uint8 image (1 or 3 channels) as PNG, atomically."""
  image = image_HxWxC[..., 0] if image_HxWxC.shape[-1] == 1 else image_HxWxC
  buffer = io.BytesIO()
  Image.fromarray(image).save(buffer, format="PNG")
  files.write_atomic(path, buffer.getvalue())
