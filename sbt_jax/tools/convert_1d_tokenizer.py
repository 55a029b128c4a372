"""A TiTok tokenizer released by bytedance/1d-tokenizer -> an ordinary sbt_jax run.

  python -m sbt_jax.tools.convert_1d_tokenizer --checkpoint DIR/model.safetensors \
      --hf_config DIR/config.json --out workdirs/titok_bl64_vq8k

DIR is the tokenizer's Hugging Face folder (e.g. yucornetto/tokenizer_titok_bl64_vq8k_imagenet,
downloaded by you: nothing is fetched here). The checkpoint is read without torch:
model.safetensors (safetensors package) or a torch pytorch_model.bin / .pth (our reader).
Every parameter is checked against the config (a missing, unexpected or misshapen name is
one error line naming it; nothing is written then). The run written to --out (config.json,
an Orbax checkpoint at step 0) is what `sbt_jax.encode`, `decode`, `reconstruct`,
`evaluate`, the generator stage (generator.tokenizer_workdir) and train.init_from take.
Its data/training fields come from configs/titok_imagenet256.py; override them as usual.
Supported: the VQ tokenizers, single-stage (BL-64, BL-128, SL-256 vq8k) and two-stage (L-32,
B-64, S-128); the VAE ones not yet. docs/official_weights.md.
"""
import argparse
import json
import os
import sys

import flax.linen as nn
import jax
import numpy as np

from sbt_jax import checkpointing
from sbt_jax import config_defaults
from sbt_jax.evaluators import torch_checkpoint
from sbt_jax.models import titok
from sbt_jax.tools import titok_weights


class ConvertError(ValueError):
  """A user input (paths, files, config) that the conversion cannot take."""


def read_hf_config(path: str) -> dict:
  if not os.path.isfile(path):
    raise ConvertError(f'--hf_config {path!r} not found (the config.json next to the '
                       'checkpoint in the Hugging Face folder)')
  try:
    with open(path) as f:
      hf = json.load(f)
  except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
    raise ConvertError(f'--hf_config {path} is not readable JSON: {e}') from None
  if not isinstance(hf, dict):
    raise ConvertError(f'--hf_config {path} does not hold a JSON object')
  return hf


def read_state_dict(path: str) -> dict:
  """{torch name: array} of a .safetensors file or a torch .bin/.pth (no torch needed)."""
  if not os.path.isfile(path):
    raise ConvertError(f'--checkpoint {path!r} not found (model.safetensors or '
                       'pytorch_model.bin of the Hugging Face folder)')
  if path.endswith('.safetensors'):
    from safetensors import numpy as st_numpy  # pylint: disable=g-import-not-at-top
    try:
      return dict(st_numpy.load_file(path))
    except Exception as e:  # safetensors raises its own error types for bad files
      raise ConvertError(f'--checkpoint {path} is not a readable safetensors file: '
                         f'{type(e).__name__}: {e}') from None
  try:
    return torch_checkpoint.read_torch(path)
  except (torch_checkpoint.TorchFormatError, OSError, ValueError, EOFError) as e:
    raise ConvertError(f'--checkpoint {path} is not a readable safetensors or torch '
                       f'file: {e}') from None


def _shapes(tree) -> dict:
  return {jax.tree_util.keystr(path): tuple(leaf.shape)
          for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


def model_params_like(config):
  """ShapeDtypeStructs of the params of the TiTok `config` describes."""
  s = config.data.image_size
  x = np.zeros((1, s, s, config.data.channels), np.float32)
  model = titok.build_tokenizer(config)
  return nn.meta.unbox(jax.eval_shape(lambda: model.init(jax.random.key(0), x))['params'])


def convert(checkpoint: str, hf_config: str, out: str, base=None):
  """Writes the run; returns (config, number of parameters). Raises ConvertError,
  titok_weights.ReferenceConfigError or torch_checkpoint.WeightsFileError with nothing
  written."""
  if os.path.exists(os.path.join(out, 'config.json')) or os.path.exists(
      checkpointing.checkpoint_dir(out)):
    raise ConvertError(f'--out {out} already holds a run; choose a new directory')
  hf = read_hf_config(hf_config)
  config = titok_weights.config_from_hf(hf, base)
  config_defaults.validate(config)
  sd = read_state_dict(checkpoint)
  sd = torch_checkpoint.checked_params(
      sd, titok_weights.reference_shapes(hf), checkpoint, 'TiTok checkpoint',
      f'It must be the state dict of the tokenizer {hf_config} describes')
  params = titok_weights.to_params(sd, config)
  if _shapes(params) != _shapes(model_params_like(config)):
    raise AssertionError('titok_weights.to_params does not match models/titok_reference.py')
  os.makedirs(out, exist_ok=True)
  ckpt = checkpointing.Checkpointer(out, keep=1, async_save=False, with_data_iter=False)
  ckpt.save(0, {'step': np.int32(0), 'params': params})
  ckpt.wait()
  ckpt.close()
  with open(os.path.join(out, 'config.json'), 'w') as f:
    f.write(config.to_json_best_effort(indent=2))
  return config, sum(v.size for v in jax.tree.leaves(params))


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(
      prog='python -m sbt_jax.tools.convert_1d_tokenizer',
      description=__doc__.split('\n\n')[0])
  parser.add_argument('--checkpoint', required=True,
                      help='model.safetensors or pytorch_model.bin of the tokenizer')
  parser.add_argument('--hf_config', required=True, help='its config.json')
  parser.add_argument('--out', required=True, help='the sbt_jax workdir to write')
  args = parser.parse_args(argv)
  try:
    config, n = convert(args.checkpoint, args.hf_config, args.out)
  except (ConvertError, titok_weights.ReferenceConfigError,
          torch_checkpoint.WeightsFileError, ValueError) as e:
    print(f'error: {e}', file=sys.stderr)
    return 1
  m = config.model
  print(f'Wrote {args.out}: TiTok (model.layout={m.layout!r}) {m.num_global_tokens} tokens '
        f'from {m.codebook_size} codes, encoder width {m.encoder.width} x {m.encoder.depth}, '
        f'decoder width {m.decoder.width} x {m.decoder.depth}, {n:,} parameters.')
  return 0


if __name__ == '__main__':
  sys.exit(main())
