"""PNG grids of images (rows of originals and reconstructions, or samples)."""
import io

import numpy as np
from PIL import Image

from sbt_jax import paths


def to_uint8(x_BxHxWxC) -> np.ndarray:
  x = np.asarray(x_BxHxWxC, np.float32)
  return np.clip(np.round((x + 1.0) * 127.5), 0, 255).astype(np.uint8)


def make_grid(rows, pad: int = 1) -> np.ndarray:
  """rows: list of [B, H, W, C] arrays in [-1, 1] -> one uint8 image, a row per entry."""
  rows = [to_uint8(r) for r in rows]
  b, h, w, c = rows[0].shape
  grid = np.full((len(rows) * (h + pad) + pad, b * (w + pad) + pad, c), 255, np.uint8)
  for i, row in enumerate(rows):
    for j in range(b):
      top, left = pad + i * (h + pad), pad + j * (w + pad)
      grid[top:top + h, left:left + w] = row[j]
  return grid


def save_png(path: str, image_HxWxC: np.ndarray) -> str:
  """One uint8 image as a PNG at `path` (local or gs://; folder created)."""
  buffer = io.BytesIO()
  to_pil(image_HxWxC).save(buffer, format='PNG')
  paths.write_bytes(path, buffer.getvalue())
  return path


def to_pil(image_HxWxC: np.ndarray) -> Image.Image:
  return Image.fromarray(image_HxWxC[..., 0] if image_HxWxC.shape[-1] == 1 else image_HxWxC)


def save_grid(path: str, rows, scale: int = 1) -> str:
  grid = make_grid(rows)
  if scale > 1:
    grid = grid.repeat(scale, axis=0).repeat(scale, axis=1)  # nearest-neighbour upscale
  return save_png(path, grid)


def save_images(images_BxHxWxC, out_dir: str, names) -> list[str]:
  """One PNG per image (values in [-1, 1]) under out_dir; returns the paths."""
  return [save_png(paths.join(out_dir, name), img)
          for img, name in zip(to_uint8(images_BxHxWxC), names)]
