"""A TiTok tokenizer or MaskGIT generator released by bytedance/1d-tokenizer -> an
ordinary sbt_jax run.

  python -m sbt_jax.tools.convert_1d_tokenizer --checkpoint DIR/model.safetensors \
      --hf_config DIR/config.json --out workdirs/titok_l32
  # its generator, for the tokenizer run just written:
  python -m sbt_jax.tools.convert_1d_tokenizer --checkpoint GEN/model.safetensors \
      --hf_config GEN/config.json --tokenizer_workdir workdirs/titok_l32 --out workdirs/maskgit_l32

DIR is the tokenizer's Hugging Face folder (e.g. yucornetto/tokenizer_titok_bl64_vq8k_imagenet,
downloaded by you: nothing is fetched here). The checkpoint is read without torch:
model.safetensors (safetensors package) or a torch pytorch_model.bin / .pth (our reader).
Every parameter is checked against the config (a missing, unexpected or misshapen name is
one error line naming it; nothing is written then). The run written to --out (config.json,
an Orbax checkpoint at step 0) is what `sbt_jax.encode`, `decode`, `reconstruct`,
`evaluate`, the generator stage (generator.tokenizer_workdir) and train.init_from take.
Its data/training fields come from configs/titok_imagenet256.py (tokenizers) or
configs/generator_imagenet256.py (generators: `sample`, `evaluate --sampler` and further
training take the run; its sampling preset is the reference's). Supported: the VQ
tokenizers, single-stage (BL-64, BL-128, SL-256 vq8k) and two-stage (L-32, B-64, S-128), and
the generators of L-32 / B-64 (BERT) and S-128 (UViT); the VAE tokenizers not yet.
docs/official_weights.md.
"""
import argparse
import json
import sys

import flax.linen as nn
import jax
import numpy as np

from sbt_jax import checkpointing
from sbt_jax import config_defaults
from sbt_jax import paths
from sbt_jax import runs
from sbt_jax.evaluators import torch_checkpoint
from sbt_jax.models import generator as generator_lib
from sbt_jax.models import titok
from sbt_jax.tools import generator_weights
from sbt_jax.tools import titok_weights


class ConvertError(ValueError):
  """A user input (paths, files, config) that the conversion cannot take."""


def read_hf_config(path: str) -> dict:
  if not paths.isfile(path):
    raise ConvertError(f'--hf_config {path!r} not found (the config.json next to the '
                       'checkpoint in the Hugging Face folder)')
  try:
    hf = json.loads(paths.read_text(path))
  except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
    raise ConvertError(f'--hf_config {path} is not readable JSON: {e}') from None
  if not isinstance(hf, dict):
    raise ConvertError(f'--hf_config {path} does not hold a JSON object')
  return hf


def read_state_dict(path: str) -> dict:
  """{torch name: array} of a .safetensors file or a torch .bin/.pth (no torch needed)."""
  if not paths.isfile(path):
    raise ConvertError(f'--checkpoint {path!r} not found (model.safetensors or '
                       'pytorch_model.bin of the Hugging Face folder)')
  if path.endswith('.safetensors'):
    from safetensors import numpy as st_numpy  # pylint: disable=g-import-not-at-top
    try:
      return dict(st_numpy.load(paths.read_bytes(path)))
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


def _check_out(out: str) -> None:
  if paths.exists(paths.join(out, 'config.json')) or paths.exists(
      checkpointing.checkpoint_dir(out)):
    raise ConvertError(f'--out {out} already holds a run; choose a new directory')


def write_run(out: str, config, params) -> None:
  """config.json + an Orbax checkpoint at step 0 holding `params` (what runs.restore_* read)."""
  paths.makedirs(out)
  ckpt = checkpointing.Checkpointer(out, keep=1, async_save=False, with_data_iter=False)
  ckpt.save(0, {'step': np.int32(0), 'params': params})
  ckpt.wait()
  ckpt.close()
  paths.write_text(paths.join(out, 'config.json'), config.to_json_best_effort(indent=2))


def convert_generator(checkpoint: str, hf_config: str, tokenizer_workdir: str, out: str,
                      base=None):
  """A reference generator -> a generator-stage run for the (converted) tokenizer run
  `tokenizer_workdir`; returns (config, number of parameters). Errors as convert()."""
  _check_out(out)
  hf = read_hf_config(hf_config)
  try:
    tok_config = runs.load_config(tokenizer_workdir)
    runs.expect_stage(tok_config, tokenizer_workdir, 'tokenizer', '--tokenizer_workdir')
  except (FileNotFoundError, ValueError) as e:
    raise ConvertError(f'--tokenizer_workdir: {e}') from None
  if base is None:
    from configs import generator_imagenet256  # pylint: disable=g-import-not-at-top
    base = generator_imagenet256.get_config('maskgit')
  config = generator_weights.config_from_hf(hf, base, tok_config)
  config.generator.tokenizer_workdir = paths.resolve(tokenizer_workdir)
  config_defaults.validate(config)
  sd = generator_weights.drop_ignored(read_state_dict(checkpoint))
  sd = torch_checkpoint.checked_params(
      sd, generator_weights.reference_shapes(hf), checkpoint, 'Generator checkpoint',
      f'It must be the state dict of the generator {hf_config} describes')
  params = generator_weights.to_params(sd, config.generator)
  tm = tok_config.model
  model = generator_lib.build_generator(config.generator, tm.codebook_size,
                                        tm.num_global_tokens)
  seq = np.zeros((1, tm.num_global_tokens + 1), np.int32)
  like = nn.meta.unbox(jax.eval_shape(lambda: model.init(jax.random.key(0), seq))['params'])
  if _shapes(params) != _shapes(like):
    raise AssertionError('generator_weights.to_params does not match '
                         'models/generator_reference.py')
  write_run(out, config, params)
  runs.write_tokenizer_record(out, config.generator.tokenizer_workdir, 0)  # converted: step 0
  return config, sum(v.size for v in jax.tree.leaves(params))


def convert(checkpoint: str, hf_config: str, out: str, base=None):
  """Writes the run; returns (config, number of parameters). Raises ConvertError,
  titok_weights.ReferenceConfigError or torch_checkpoint.WeightsFileError with nothing
  written."""
  _check_out(out)
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
  write_run(out, config, params)
  return config, sum(v.size for v in jax.tree.leaves(params))


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(
      prog='python -m sbt_jax.tools.convert_1d_tokenizer',
      description=__doc__.split('\n\n')[0])
  parser.add_argument('--checkpoint', required=True,
                      help='model.safetensors or pytorch_model.bin of the tokenizer')
  parser.add_argument('--hf_config', required=True, help='its config.json')
  parser.add_argument('--out', required=True, help='the sbt_jax workdir to write')
  parser.add_argument('--tokenizer_workdir', default=None,
                      help='convert a generator: the (converted) tokenizer run it samples for')
  args = parser.parse_args(argv)
  try:
    if args.tokenizer_workdir:
      config, n = convert_generator(args.checkpoint, args.hf_config, args.tokenizer_workdir,
                                    args.out)
      g = config.generator
      print(f'Wrote {args.out}: MaskGIT generator (generator.layout={g.layout!r}), '
            f'{g.transformer.depth} layers of width {g.transformer.width}, {n:,} parameters; '
            f'sampling preset: {g.sampling.num_steps} steps, guidance {g.sampling.guidance_scale}'
            f' ({g.sampling.guidance_schedule}), randomize_temperature '
            f'{g.sampling.choice_temperature}.')
      return 0
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
