"""PNG grids of images (rows of originals and reconstructions, or samples)."""
import io
import os

from etils import epath
import numpy as np
from PIL import Image


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


def save_grid(path: str, rows, scale: int = 1) -> str:
  grid = make_grid(rows)
  img = Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid)
  if scale > 1:
    img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
  buffer = io.BytesIO()
  img.save(buffer, format='PNG')
  epath.Path(path).parent.mkdir(parents=True, exist_ok=True)  # local or gs://
  tmp = epath.Path(path + '.tmp')
  tmp.write_bytes(buffer.getvalue())
  tmp.replace(path)
  return path


def save_images(images_BxHxWxC, out_dir: str, names) -> list[str]:
  """One PNG per image (values in [-1, 1]) under out_dir; returns the paths."""
  os.makedirs(out_dir, exist_ok=True)
  paths = []
  for img, name in zip(to_uint8(images_BxHxWxC), names):
    path = os.path.join(out_dir, name)
    Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img).save(path)
    paths.append(path)
  return paths
