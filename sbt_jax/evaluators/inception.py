"""InceptionV3 of the FID reference (TF's 2015-12-05 graph as ported by pytorch-fid), in Flax.

  params = inception.load_params('pt_inception-2015-12-05-6726825d.pth')  # or a converted .npz
  out = inception.features(params, images_BxHxWxC)  # images in [-1, 1], 1 or 3 channels
  out['pool3']            # [B, 2048] FID features (final average pool)
  out['logits_unbiased']  # [B, 1008] pool3 @ W: the logits the TF Inception Score uses
  out['logits']           # [B, 1008] with the fc bias (pytorch-fid's fc layer)

As pytorch-fid: bilinear resize to 299x299 (half-pixel centres, no antialiasing, as torch's
F.interpolate(align_corners=False)); FIDInceptionA/C/E_1 average pools exclude padding,
FIDInceptionE_2 (Mixed_7c) max-pools its pool branch; BatchNorm eps 1e-3; 1008 classes.
Convolutions run at Precision.HIGHEST (no TF32/bf16 passes on GPU/TPU).
The weights are a file the user supplies; nothing is downloaded. Checked once against
pytorch-fid's network (torchvision 0.29 blocks + pytorch-fid's patches, torch 2.14, random
weights, 28 and 320 px inputs): pool3 and logits agree to 6e-7 relative.
"""
import functools

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from sbt_jax.evaluators import torch_checkpoint

INPUT_SIZE = 299
NUM_CLASSES = 1008
POOL3_DIM = 2048
_PRECISION = jax.lax.Precision.HIGHEST


# An Inception weights file that is unreadable or does not match the network.
WeightsError = torch_checkpoint.WeightsFileError


def _pair(v):
  return (v, v) if isinstance(v, int) else tuple(v)


class FrozenBatchNorm(nn.Module):
  """Inference BatchNorm with its statistics as params (scale, bias, mean, var)."""
  epsilon: float = 1e-3

  @nn.compact
  def __call__(self, x):
    c = x.shape[-1]
    scale = self.param('scale', nn.initializers.ones, (c,))
    bias = self.param('bias', nn.initializers.zeros, (c,))
    mean = self.param('mean', nn.initializers.zeros, (c,))
    var = self.param('var', nn.initializers.ones, (c,))
    inv = scale * jax.lax.rsqrt(var + self.epsilon)
    return x * inv + (bias - mean * inv)


class BasicConv(nn.Module):
  """torchvision's BasicConv2d: conv (no bias) -> BatchNorm -> ReLU."""
  features: int
  kernel: int | tuple[int, int]
  strides: int = 1
  padding: int | tuple[int, int] = 0

  @nn.compact
  def __call__(self, x):
    ph, pw = _pair(self.padding)
    x = nn.Conv(self.features, _pair(self.kernel), strides=_pair(self.strides),
                padding=((ph, ph), (pw, pw)), use_bias=False, precision=_PRECISION,
                name='conv')(x)
    return nn.relu(FrozenBatchNorm(name='bn')(x))


def _avg_pool_3x3(x):
  return nn.avg_pool(x, (3, 3), (1, 1), ((1, 1), (1, 1)), count_include_pad=False)


def _max_pool_3x3(x, stride: int, padding: int = 0):
  p = ((padding, padding),) * 2
  return nn.max_pool(x, (3, 3), (stride, stride), p)


class InceptionA(nn.Module):
  """Mixed_5b/c/d (FIDInceptionA)."""
  pool_features: int

  @nn.compact
  def __call__(self, x):
    b1 = BasicConv(64, 1, name='branch1x1')(x)
    b5 = BasicConv(48, 1, name='branch5x5_1')(x)
    b5 = BasicConv(64, 5, padding=2, name='branch5x5_2')(b5)
    b3 = BasicConv(64, 1, name='branch3x3dbl_1')(x)
    b3 = BasicConv(96, 3, padding=1, name='branch3x3dbl_2')(b3)
    b3 = BasicConv(96, 3, padding=1, name='branch3x3dbl_3')(b3)
    bp = BasicConv(self.pool_features, 1, name='branch_pool')(_avg_pool_3x3(x))
    return jnp.concatenate([b1, b5, b3, bp], axis=-1)


class InceptionB(nn.Module):
  """Mixed_6a: grid reduction 35 -> 17."""

  @nn.compact
  def __call__(self, x):
    b3 = BasicConv(384, 3, strides=2, name='branch3x3')(x)
    bd = BasicConv(64, 1, name='branch3x3dbl_1')(x)
    bd = BasicConv(96, 3, padding=1, name='branch3x3dbl_2')(bd)
    bd = BasicConv(96, 3, strides=2, name='branch3x3dbl_3')(bd)
    return jnp.concatenate([b3, bd, _max_pool_3x3(x, 2)], axis=-1)


class InceptionC(nn.Module):
  """Mixed_6b/c/d/e (FIDInceptionC): factorised 7x7 convolutions."""
  channels_7x7: int

  @nn.compact
  def __call__(self, x):
    c = self.channels_7x7
    b1 = BasicConv(192, 1, name='branch1x1')(x)
    b7 = BasicConv(c, 1, name='branch7x7_1')(x)
    b7 = BasicConv(c, (1, 7), padding=(0, 3), name='branch7x7_2')(b7)
    b7 = BasicConv(192, (7, 1), padding=(3, 0), name='branch7x7_3')(b7)
    bd = BasicConv(c, 1, name='branch7x7dbl_1')(x)
    bd = BasicConv(c, (7, 1), padding=(3, 0), name='branch7x7dbl_2')(bd)
    bd = BasicConv(c, (1, 7), padding=(0, 3), name='branch7x7dbl_3')(bd)
    bd = BasicConv(c, (7, 1), padding=(3, 0), name='branch7x7dbl_4')(bd)
    bd = BasicConv(192, (1, 7), padding=(0, 3), name='branch7x7dbl_5')(bd)
    bp = BasicConv(192, 1, name='branch_pool')(_avg_pool_3x3(x))
    return jnp.concatenate([b1, b7, bd, bp], axis=-1)


class InceptionD(nn.Module):
  """Mixed_7a: grid reduction 17 -> 8."""

  @nn.compact
  def __call__(self, x):
    b3 = BasicConv(192, 1, name='branch3x3_1')(x)
    b3 = BasicConv(320, 3, strides=2, name='branch3x3_2')(b3)
    b7 = BasicConv(192, 1, name='branch7x7x3_1')(x)
    b7 = BasicConv(192, (1, 7), padding=(0, 3), name='branch7x7x3_2')(b7)
    b7 = BasicConv(192, (7, 1), padding=(3, 0), name='branch7x7x3_3')(b7)
    b7 = BasicConv(192, 3, strides=2, name='branch7x7x3_4')(b7)
    return jnp.concatenate([b3, b7, _max_pool_3x3(x, 2)], axis=-1)


class InceptionE(nn.Module):
  """Mixed_7b (FIDInceptionE_1, avg pool) and Mixed_7c (FIDInceptionE_2, max pool)."""
  pool: str

  @nn.compact
  def __call__(self, x):
    b1 = BasicConv(320, 1, name='branch1x1')(x)
    b3 = BasicConv(384, 1, name='branch3x3_1')(x)
    b3 = jnp.concatenate([BasicConv(384, (1, 3), padding=(0, 1), name='branch3x3_2a')(b3),
                          BasicConv(384, (3, 1), padding=(1, 0), name='branch3x3_2b')(b3)],
                         axis=-1)
    bd = BasicConv(448, 1, name='branch3x3dbl_1')(x)
    bd = BasicConv(384, 3, padding=1, name='branch3x3dbl_2')(bd)
    bd = jnp.concatenate([BasicConv(384, (1, 3), padding=(0, 1), name='branch3x3dbl_3a')(bd),
                          BasicConv(384, (3, 1), padding=(1, 0), name='branch3x3dbl_3b')(bd)],
                         axis=-1)
    pooled = _avg_pool_3x3(x) if self.pool == 'avg' else _max_pool_3x3(x, 1, 1)
    bp = BasicConv(192, 1, name='branch_pool')(pooled)
    return jnp.concatenate([b1, b3, bd, bp], axis=-1)


class Classifier(nn.Module):
  """pytorch-fid's fc (2048 -> 1008); returns (pool3 @ W, pool3 @ W + b)."""

  @nn.compact
  def __call__(self, x):
    kernel = self.param('kernel', nn.initializers.lecun_normal(), (x.shape[-1], NUM_CLASSES))
    bias = self.param('bias', nn.initializers.zeros, (NUM_CLASSES,))
    unbiased = jnp.dot(x, kernel, precision=_PRECISION)
    return unbiased, unbiased + bias


def resize_input(images_BxHxWxC):
  """[-1, 1] images (1 or 3 channels) -> [B, 299, 299, 3] as pytorch-fid feeds the net."""
  x = images_BxHxWxC.astype(jnp.float32)
  if x.shape[-1] == 1:
    x = jnp.repeat(x, 3, axis=-1)
  if x.shape[1:3] != (INPUT_SIZE, INPUT_SIZE):
    x = jax.image.resize(x, (x.shape[0], INPUT_SIZE, INPUT_SIZE, 3), 'bilinear',
                         antialias=False)
  return x


class InceptionV3(nn.Module):
  """The FID Inception network; parameter names follow pytorch-fid's state dict."""

  @nn.compact
  def __call__(self, images_BxHxWxC):
    x = resize_input(images_BxHxWxC)                        # 299
    x = BasicConv(32, 3, strides=2, name='Conv2d_1a_3x3')(x)  # 149
    x = BasicConv(32, 3, name='Conv2d_2a_3x3')(x)             # 147
    x = BasicConv(64, 3, padding=1, name='Conv2d_2b_3x3')(x)
    x = _max_pool_3x3(x, 2)                                   # 73
    x = BasicConv(80, 1, name='Conv2d_3b_1x1')(x)
    x = BasicConv(192, 3, name='Conv2d_4a_3x3')(x)            # 71
    x = _max_pool_3x3(x, 2)                                   # 35
    x = InceptionA(32, name='Mixed_5b')(x)
    x = InceptionA(64, name='Mixed_5c')(x)
    x = InceptionA(64, name='Mixed_5d')(x)
    x = InceptionB(name='Mixed_6a')(x)                        # 17
    for name, c in (('Mixed_6b', 128), ('Mixed_6c', 160), ('Mixed_6d', 160), ('Mixed_6e', 192)):
      x = InceptionC(c, name=name)(x)
    x = InceptionD(name='Mixed_7a')(x)                        # 8
    x = InceptionE('avg', name='Mixed_7b')(x)
    x = InceptionE('max', name='Mixed_7c')(x)
    pool3_Bx2048 = jnp.mean(x, axis=(1, 2))
    unbiased, logits = Classifier(name='fc')(pool3_Bx2048)
    return {'pool3': pool3_Bx2048, 'logits_unbiased': unbiased, 'logits': logits}


def features(params, images_BxHxWxC) -> dict:
  """Pure and jittable: {'pool3' [B, 2048], 'logits_unbiased', 'logits' [B, 1008]}."""
  return InceptionV3().apply({'params': params}, images_BxHxWxC)


@functools.lru_cache(maxsize=1)
def param_shapes() -> dict[str, tuple[int, ...]]:
  """{'Conv2d_1a_3x3/conv/kernel': (3, 3, 3, 32), ...} in the network's definition order."""
  dummy = jax.ShapeDtypeStruct((1, INPUT_SIZE, INPUT_SIZE, 3), jnp.float32)
  abstract = jax.eval_shape(InceptionV3().init, jax.random.key(0), dummy)['params']
  return {k: tuple(v.shape) for k, v in
          flax.traverse_util.flatten_dict(flax.core.unfreeze(abstract), sep='/').items()}


_HINT = ('expected the FID Inception weights (pytorch-fid pt_inception-2015-12-05-6726825d.pth'
         ' or its conversion by `python -m sbt_jax.tools.convert_inception`)')


def _torch_name(name, shape):
  return next(iter(torch_checkpoint.flax_to_torch({name: np.zeros(shape)})))


def load_flat_params(path: str) -> dict[str, np.ndarray]:
  """Reads, converts and checks a weights file -> {'a/b/c': float32 array}."""
  what = 'Inception weights'
  flat = torch_checkpoint.read_weights(
      path, torch_checkpoint.torch_to_flax, what=what,
      how='FID and IS need the FID Inception weights: pytorch-fid '
          'pt_inception-2015-12-05-6726825d.pth, or an .npz from `python -m '
          'sbt_jax.tools.convert_inception`')
  return torch_checkpoint.checked_params(flat, param_shapes(), path, what, _HINT, _torch_name)


def load_params(path: str) -> dict:
  """The nested params tree (numpy float32) for `features` / `InceptionV3.apply`."""
  return flax.traverse_util.unflatten_dict(load_flat_params(path), sep='/')
