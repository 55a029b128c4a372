"""bytedance/1d-tokenizer's TiTok checkpoints -> an sbt_jax config and params.

`config_from_hf(hf)` reads the reference's config.json (the OmegaConf dict its
PyTorchModelHubMixin saves: model.vq_model.*, dataset.preprocessing.crop_size) into our
config (model.layout='reference'); `reference_shapes(hf)` is every torch name the state dict
must hold with its shape; `to_params(state_dict, config)` maps torch tensors onto our tree
(models/titok_reference.py). Kinds handled: single-stage VQ (is_legacy=False,
finetune_decoder=False) -> model.layout='reference'; two-stage VQ (is_legacy=True,
finetune_decoder=True: proxy codes + MaskGIT-VQGAN pixel decoder) -> 'reference_legacy';
single-stage VAE (quantize_mode='vae') -> model.quantizer='vae'. Stage-1-only checkpoints
are refused by name.
"""
import numpy as np

from sbt_jax import config_defaults
from sbt_jax.models import titok_reference
from sbt_jax.models import vqgan_decoder

# vit_*_model_size -> (width, depth, num_heads), as the reference's TiTokEncoder/Decoder.
REFERENCE_SIZES = {k: config_defaults.MODEL_SIZES[k] for k in ('small', 'base', 'large')}


class ReferenceConfigError(ValueError):
  """The reference's config.json is malformed or describes a kind we cannot load yet."""


def _vq_model(hf: dict) -> dict:
  try:
    vq = hf['model']['vq_model']
    crop = hf['dataset']['preprocessing']['crop_size']
  except (KeyError, TypeError) as e:
    raise ReferenceConfigError(
        f'not a 1d-tokenizer TiTok config: no {e} (expected model.vq_model.* and '
        'dataset.preprocessing.crop_size, as in its configs/infer/TiTok/*.yaml)') from None
  return {**vq, 'crop_size': crop}


def _get(vq, key, default=None):
  if key in vq:
    return vq[key]
  if default is None:
    raise ReferenceConfigError(f'model.vq_model.{key} is missing')
  return default


def check_supported(hf: dict) -> dict:
  """model.vq_model of a kind this converter loads (plus 'crop_size'), else an error naming
  what is not supported."""
  vq = _vq_model(hf)
  mode = _get(vq, 'quantize_mode', 'vq')
  if mode not in ('vq', 'vae'):
    raise ReferenceConfigError(f"quantize_mode={mode!r}; expected 'vq' or 'vae'")
  legacy, finetune = _get(vq, 'is_legacy', True), _get(vq, 'finetune_decoder', True)
  if mode == 'vae' and (legacy or finetune):
    raise ReferenceConfigError("quantize_mode='vae' comes with is_legacy: False and "
                               'finetune_decoder: False in the released VAE tokenizers')
  if legacy != finetune:
    raise ReferenceConfigError(
        f'is_legacy={legacy}, finetune_decoder={finetune}: the released TiTok tokenizers have '
        'both True (two-stage L-32/B-64/S-128: proxy codes decoded by the MaskGIT-VQGAN) or '
        'both False (single-stage BL/SL); a stage-1 proxy-code checkpoint does not decode '
        'to pixels')
  if legacy and _get(vq, 'vit_dec_patch_size') != 16:
    raise ReferenceConfigError(
        f'vit_dec_patch_size={vq["vit_dec_patch_size"]}: the two-stage decoder needs 16 (the '
        'MaskGIT-VQGAN decodes each grid cell to 16 x 16 pixels)')
  for key in ('vit_enc_model_size', 'vit_dec_model_size'):
    if _get(vq, key) not in REFERENCE_SIZES:
      raise ReferenceConfigError(f'model.vq_model.{key}={vq[key]!r}; expected one of '
                                 f'{tuple(REFERENCE_SIZES)}')
  for key in ('vit_enc_patch_size', 'vit_dec_patch_size'):
    if vq['crop_size'] % _get(vq, key):
      raise ReferenceConfigError(f'dataset.preprocessing.crop_size={vq["crop_size"]} is not '
                                 f'divisible by model.vq_model.{key}={vq[key]}')
  return vq


def config_from_hf(hf: dict, base=None):
  """Our config for the reference model `hf` describes: `base` (default: our ImageNet-256
  TiTok config, whose data and training fields a converted run keeps) with model.* set."""
  vq = check_supported(hf)
  if base is None:
    from configs import titok_imagenet256  # pylint: disable=g-import-not-at-top
    base = titok_imagenet256.get_config('s128')
  c = base
  c.data.image_size = int(vq['crop_size'])
  c.data.channels = 3
  m = c.model
  m.name = 'titok'
  m.layout = 'reference_legacy' if vq.get('is_legacy', True) else 'reference'
  vae = vq.get('quantize_mode', 'vq') == 'vae'
  m.quantizer = 'vae' if vae else 'vq'
  m.vq_l2_norm = bool(_get(vq, 'use_l2_norm', False))
  m.patch_size = int(vq['vit_enc_patch_size'])
  dec_patch = int(vq['vit_dec_patch_size'])
  m.decoder_patch_size = 0 if dec_patch == m.patch_size else dec_patch
  m.num_global_tokens = int(_get(vq, 'num_latent_tokens'))
  m.codebook_size = 1 if vae else int(_get(vq, 'codebook_size'))  # VAE: no codebook
  m.token_dim = int(_get(vq, 'token_size'))
  m.commitment_cost = float(_get(vq, 'commitment_cost', 0.25))
  m.colour_levels = 0
  m.spatial_mix = False
  m.zero_pixel_head = False
  m.compute_dtype = 'float32'  # the reference's numbers (bfloat16: faster, not the same)
  for part, key in (('encoder', 'vit_enc_model_size'), ('decoder', 'vit_dec_model_size')):
    width, depth, heads = REFERENCE_SIZES[vq[key]]
    m[part].width, m[part].depth, m[part].num_heads, m[part].mlp_ratio = width, depth, heads, 4
  return c


def _transformer_shapes(prefix: str, width: int, depth: int) -> dict:
  shapes = {}
  for i in range(depth):
    b = f'{prefix}.transformer.{i}'
    shapes.update({
        f'{b}.ln_1.weight': (width,), f'{b}.ln_1.bias': (width,),
        f'{b}.attn.in_proj_weight': (3 * width, width), f'{b}.attn.in_proj_bias': (3 * width,),
        f'{b}.attn.out_proj.weight': (width, width), f'{b}.attn.out_proj.bias': (width,),
        f'{b}.ln_2.weight': (width,), f'{b}.ln_2.bias': (width,),
        f'{b}.mlp.c_fc.weight': (4 * width, width), f'{b}.mlp.c_fc.bias': (4 * width,),
        f'{b}.mlp.c_proj.weight': (width, 4 * width), f'{b}.mlp.c_proj.bias': (width,),
    })
  for ln in ('ln_pre', 'ln_post'):
    shapes[f'{prefix}.{ln}.weight'] = shapes[f'{prefix}.{ln}.bias'] = (width,)
  return shapes


def reference_shapes(hf: dict) -> dict:
  """{torch name: shape} of the reference TiTok's state dict for config `hf`."""
  vq = check_supported(hf)
  vae = vq.get('quantize_mode', 'vq') == 'vae'
  g, t = vq['num_latent_tokens'], vq['token_size']
  s = vq['crop_size']
  pe, pd = vq['vit_enc_patch_size'], vq['vit_dec_patch_size']
  we, de, _ = REFERENCE_SIZES[vq['vit_enc_model_size']]
  wd, dd, _ = REFERENCE_SIZES[vq['vit_dec_model_size']]
  ne, nd = (s // pe) ** 2, (s // pd) ** 2
  shapes = {'latent_tokens': (g, we)}
  if not vae:
    shapes['quantize.embedding.weight'] = (vq['codebook_size'], t)
  t_enc = 2 * t if vae else t  # a VAE's encoder: mean and log-variance per channel
  shapes.update({
      'encoder.patch_embed.weight': (we, 3, pe, pe), 'encoder.patch_embed.bias': (we,),
      'encoder.class_embedding': (1, we), 'encoder.positional_embedding': (ne + 1, we),
      'encoder.latent_token_positional_embedding': (g, we),
      'encoder.conv_out.weight': (t_enc, we, 1, 1), 'encoder.conv_out.bias': (t_enc,),
  })
  shapes.update(_transformer_shapes('encoder', we, de))
  shapes.update({
      'decoder.decoder_embed.weight': (wd, t), 'decoder.decoder_embed.bias': (wd,),
      'decoder.class_embedding': (1, wd), 'decoder.positional_embedding': (nd + 1, wd),
      'decoder.mask_token': (1, 1, wd), 'decoder.latent_token_positional_embedding': (g, wd),
  })
  if vq.get('is_legacy', True):
    k_proxy, z_proxy = titok_reference.PROXY_CODES, titok_reference.PROXY_CODE_DIM
    shapes.update({
        'decoder.ffn.0.weight': (2 * wd, wd, 1, 1), 'decoder.ffn.0.bias': (2 * wd,),
        'decoder.ffn.2.weight': (k_proxy, 2 * wd, 1, 1), 'decoder.ffn.2.bias': (k_proxy,),
        'pixel_quantize.embedding.weight': (k_proxy, z_proxy),
    })
    shapes.update({f'pixel_decoder.{name}': shape
                   for name, shape in _pixel_decoder_shapes(z_proxy).items()})
  else:
    shapes.update({
        'decoder.ffn.0.weight': (pd * pd * 3, wd, 1, 1), 'decoder.ffn.0.bias': (pd * pd * 3,),
        'decoder.conv_out.weight': (3, 3, 3, 3), 'decoder.conv_out.bias': (3,),
    })
  shapes.update(_transformer_shapes('decoder', wd, dd))
  return {name: tuple(int(d) for d in shape) for name, shape in shapes.items()}


def _pixel_decoder_plan(z_channels: int):
  """(torch prefix, flax name, kind, in channels, out channels) of every layer of the
  MaskGIT-VQGAN decoder (models/vqgan_decoder.PixelDecoder's defaults)."""
  d = vqgan_decoder.PixelDecoder()
  mult, hidden = tuple(d.channel_mult), d.hidden
  width = hidden * mult[-1]
  plan = [('conv_in', 'conv_in', 'conv3', z_channels, width)]
  plan += [(f'mid.{j}', f'mid_{j}', 'res', width, width) for j in range(d.num_res_blocks)]
  for level in reversed(range(len(mult))):
    out = hidden * mult[level]
    for j in range(d.num_res_blocks):
      plan.append((f'up.{level}.block.{j}', f'up_{level}_block_{j}', 'res', width, out))
      width = out
    if level:
      plan.append((f'up.{level}.upsample_conv', f'up_{level}_upsample_conv', 'conv3', out,
                   out))
  plan += [('norm_out', 'norm_out', 'norm', width, width),
           ('conv_out', 'conv_out', 'conv3', width, 3)]
  return plan


def _pixel_decoder_shapes(z_channels: int) -> dict:
  shapes = {}
  for prefix, _, kind, c_in, c_out in _pixel_decoder_plan(z_channels):
    if kind == 'conv3':
      shapes.update({f'{prefix}.weight': (c_out, c_in, 3, 3), f'{prefix}.bias': (c_out,)})
    elif kind == 'norm':
      shapes.update({f'{prefix}.weight': (c_out,), f'{prefix}.bias': (c_out,)})
    else:  # res block: GroupNorms, bias-free convs, the 1x1 shortcut when channels change
      shapes.update({
          f'{prefix}.norm1.weight': (c_in,), f'{prefix}.norm1.bias': (c_in,),
          f'{prefix}.conv1.weight': (c_out, c_in, 3, 3),
          f'{prefix}.norm2.weight': (c_out,), f'{prefix}.norm2.bias': (c_out,),
          f'{prefix}.conv2.weight': (c_out, c_out, 3, 3)})
      if c_in != c_out:
        shapes[f'{prefix}.nin_shortcut.weight'] = (c_out, c_out, 1, 1)
  return shapes


def _conv(sd, name, bias=True):
  tree = {'kernel': sd[f'{name}.weight'].transpose(2, 3, 1, 0)}  # [O, I, kh, kw] -> HWIO
  if bias:
    tree['bias'] = sd[f'{name}.bias']
  return tree


def _pixel_decoder(sd, z_channels: int) -> dict:
  tree = {}
  for prefix, name, kind, c_in, c_out in _pixel_decoder_plan(z_channels):
    p = f'pixel_decoder.{prefix}'
    if kind == 'conv3':
      tree[name] = _conv(sd, p)
    elif kind == 'norm':
      tree[name] = _layer_norm(sd, p)
    else:
      block = {'norm1': _layer_norm(sd, f'{p}.norm1'), 'conv1': _conv(sd, f'{p}.conv1', False),
               'norm2': _layer_norm(sd, f'{p}.norm2'), 'conv2': _conv(sd, f'{p}.conv2', False)}
      if c_in != c_out:
        block['nin_shortcut'] = _conv(sd, f'{p}.nin_shortcut', False)
      tree[name] = block
  return tree


def _linear(sd, name):
  return {'kernel': sd[f'{name}.weight'].T, 'bias': sd[f'{name}.bias']}


def _conv1x1(sd, name):
  w = sd[f'{name}.weight']
  return {'kernel': w.reshape(w.shape[0], w.shape[1]).T, 'bias': sd[f'{name}.bias']}


def _layer_norm(sd, name):
  return {'scale': sd[f'{name}.weight'], 'bias': sd[f'{name}.bias']}


def _transformer(sd, prefix, width, depth, num_heads):
  head_dim = width // num_heads
  tree = {}
  for i in range(depth):
    b = f'{prefix}.transformer.{i}'
    qkv_w = sd[f'{b}.attn.in_proj_weight']  # [3 D, D]: rows q, k, v; heads inside each
    tree[f'block{i}'] = {
        'ln1': _layer_norm(sd, f'{b}.ln_1'),
        'attn': {
            'qkv': {'kernel': qkv_w.reshape(3, num_heads, head_dim, width).transpose(3, 0, 1, 2),
                    'bias': sd[f'{b}.attn.in_proj_bias'].reshape(3, num_heads, head_dim)},
            'out': {'kernel': sd[f'{b}.attn.out_proj.weight'].T.reshape(num_heads, head_dim,
                                                                         width),
                    'bias': sd[f'{b}.attn.out_proj.bias']},
        },
        'ln2': _layer_norm(sd, f'{b}.ln_2'),
        'mlp': {'fc1': _linear(sd, f'{b}.mlp.c_fc'), 'fc2': _linear(sd, f'{b}.mlp.c_proj')},
    }
  tree['ln_out'] = _layer_norm(sd, f'{prefix}.ln_post')
  return tree


def to_params(sd: dict, config) -> dict:
  """Our TiTok params (a reference model.layout) from the reference's state dict `sd`
  (torch name -> float32 array, already checked against reference_shapes)."""
  m = config.model
  enc, dec = m.encoder, m.decoder
  pe = m.patch_size
  w = sd['encoder.patch_embed.weight']  # [D, C, p, p] -> rows in patchify's (py, px, c) order
  encoder = {
      'patch_embed': {'kernel': w.transpose(2, 3, 1, 0).reshape(pe * pe * w.shape[1],
                                                                w.shape[0]),
                      'bias': sd['encoder.patch_embed.bias']},
      'class_embedding': sd['encoder.class_embedding'],
      'positional_embedding': sd['encoder.positional_embedding'],
      'latent_tokens': sd['latent_tokens'],
      'latent_token_positional_embedding': sd['encoder.latent_token_positional_embedding'],
      'ln_pre': _layer_norm(sd, 'encoder.ln_pre'),
      'transformer': _transformer(sd, 'encoder', enc.width, enc.depth, enc.num_heads),
      'conv_out': _conv1x1(sd, 'encoder.conv_out'),
  }
  decoder = {
      'decoder_embed': _linear(sd, 'decoder.decoder_embed'),
      'class_embedding': sd['decoder.class_embedding'],
      'positional_embedding': sd['decoder.positional_embedding'],
      'mask_token': sd['decoder.mask_token'].reshape(1, -1),
      'latent_token_positional_embedding': sd['decoder.latent_token_positional_embedding'],
      'ln_pre': _layer_norm(sd, 'decoder.ln_pre'),
      'transformer': _transformer(sd, 'decoder', dec.width, dec.depth, dec.num_heads),
  }
  if m.layout == 'reference_legacy':
    decoder.update({
        'ffn_0': _conv1x1(sd, 'decoder.ffn.0'), 'ffn_2': _conv1x1(sd, 'decoder.ffn.2'),
        'pixel_codebook': sd['pixel_quantize.embedding.weight'],
        'pixel_decoder': _pixel_decoder(sd, titok_reference.PROXY_CODE_DIM)})
  else:
    decoder.update({'ffn': _conv1x1(sd, 'decoder.ffn.0'),
                    'conv_out': _conv(sd, 'decoder.conv_out')})
  params = {'encoder': encoder, 'decoder': decoder}
  if m.quantizer != 'vae':  # a VAE bottleneck has no parameters
    params['quantizer'] = {'codebook': sd['quantize.embedding.weight']}
  return as_float32(params)


def as_float32(tree):
  if isinstance(tree, dict):
    return {k: as_float32(v) for k, v in tree.items()}
  return np.ascontiguousarray(tree, np.float32)
