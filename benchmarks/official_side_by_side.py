"""Side by side on one machine: bytedance/1d-tokenizer's own code against sbt_jax on the same
converted weights (issue 17): the TiTok-S-128 tokenizer's encode + decode (two-stage: proxy
codes and the MaskGIT-VQGAN pixel decoder, 256 x 256) and the TiTok-L-32 generator's
sampling (BERT, 8 steps, its preset: linear guidance 4.5, randomize_temperature 9.5),
float32, batch 8. Run by benchmarks/official_side_by_side.sh:

  --side weights    (sbt_jax env)  random weights with the released files' names and shapes
                                   (tools/titok_weights.reference_shapes, checked against the
                                   reference models in tests/test_official_weights.py) as
                                   model.safetensors + config.json per model; then converts
                                   them (tools/convert_1d_tokenizer)
  --side reference  (torch env)    the unmodified reference: TiTok.encode + decode,
                                   ImageBert.generate; torch.set_num_threads(--threads)
  --side ours       (sbt_jax env)  the converted runs: jitted encode_ids + decode_ids, the
                                   jitted reference sampling procedure

Each timed call is the median of --steps after --warmup (compilation excluded for JAX);
records go to --results (benchmarks/results.jsonl) as official/<model>/<what>/<side>.
The released configs (configs/infer/TiTok/titok_s128.yaml, titok_l32.yaml) are spelled
out below so that no file of the reference is needed on the sbt_jax side.
"""
import argparse
import datetime
import json
import os
import shlex
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks import records  # pylint: disable=g-import-not-at-top,wrong-import-position

S128 = {'model': {'vq_model': {
    'codebook_size': 4096, 'token_size': 12, 'use_l2_norm': True, 'commitment_cost': 0.25,
    'vit_enc_model_size': 'small', 'vit_dec_model_size': 'small', 'vit_enc_patch_size': 16,
    'vit_dec_patch_size': 16, 'num_latent_tokens': 128, 'finetune_decoder': True}},
        'dataset': {'preprocessing': {'crop_size': 256}}}
L32_GENERATOR = {'model': {
    'vq_model': {'codebook_size': 4096, 'token_size': 12, 'use_l2_norm': True,
                 'num_latent_tokens': 32},
    'generator': {'model_type': 'ViT', 'hidden_size': 768, 'num_hidden_layers': 24,
                  'num_attention_heads': 16, 'intermediate_size': 3072, 'dropout': 0.1,
                  'attn_drop': 0.1, 'num_steps': 8, 'class_label_dropout': 0.1,
                  'image_seq_len': '${model.vq_model.num_latent_tokens}',
                  'condition_num_classes': 1000, 'randomize_temperature': 9.5,
                  'guidance_scale': 4.5, 'guidance_decay': 'linear'}},
                 'dataset': {'preprocessing': {'crop_size': 256}}}


def _timed(fn, steps, warmup):
  times = []
  for i in range(warmup + steps):
    t0 = time.perf_counter()
    fn()
    if i >= warmup:
      times.append(time.perf_counter() - t0)
  return statistics.median(times), times


def _record(args, name, batch, med, times, implementation):
  print(f'{name}: {batch / med:.3f} img/s (median {med:.3f} s of '
        f'{[round(t, 2) for t in times]})')
  return {
      'name': name, 'metric': 'images_per_s', 'value': batch / med, 'unit': 'images/s',
      'implementation': implementation, 'device': f'cpu ({records.cpu_description()})',
      'git': records.git_revision(), 'threads': args.threads, 'batch': batch,
      'dtype': 'float32', 'steps': args.steps, 'warmup': args.warmup, 'step_times_s': times,
      'loadavg_1m': os.getloadavg()[0],
      'date': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
      'command': ' '.join(shlex.quote(a) for a in [sys.executable] + sys.argv)}


def make_weights(args):
  """Random released-shape weights + config.json per model, then our converted runs."""
  from safetensors import numpy as st_numpy  # pylint: disable=g-import-not-at-top
  from sbt_jax.tools import convert_1d_tokenizer  # pylint: disable=g-import-not-at-top
  from sbt_jax.tools import generator_weights  # pylint: disable=g-import-not-at-top
  from sbt_jax.tools import titok_weights  # pylint: disable=g-import-not-at-top
  from tests.golden import fixture_weights  # pylint: disable=g-import-not-at-top
  from sbt_jax import config_defaults  # pylint: disable=g-import-not-at-top
  for name, hf, shapes in (('s128', S128, titok_weights.reference_shapes(S128)),
                           ('l32_generator', L32_GENERATOR,
                            generator_weights.reference_shapes(L32_GENERATOR))):
    d = os.path.join(args.dir, name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, 'config.json'), 'w') as f:
      json.dump(hf, f)
    st_numpy.save_file(fixture_weights.random_state_dict(shapes, seed=0),
                       os.path.join(d, 'model.safetensors'))
  convert_1d_tokenizer.convert(os.path.join(args.dir, 's128', 'model.safetensors'),
                               os.path.join(args.dir, 's128', 'config.json'),
                               os.path.join(args.dir, 'run_s128'))
  # The L-32 generator needs a tokenizer run of its vocabulary (4,096 codes, 32 tokens): its
  # config alone is read for sampling ids.
  tok = os.path.join(args.dir, 'run_l32_tokenizer_config')
  os.makedirs(tok, exist_ok=True)
  c = config_defaults.base_config()
  c.model.codebook_size, c.model.num_global_tokens = 4096, 32
  with open(os.path.join(tok, 'config.json'), 'w') as f:
    f.write(c.to_json_best_effort())
  convert_1d_tokenizer.convert_generator(
      os.path.join(args.dir, 'l32_generator', 'model.safetensors'),
      os.path.join(args.dir, 'l32_generator', 'config.json'), tok,
      os.path.join(args.dir, 'run_l32_generator'))


def reference(args):
  import torch  # pylint: disable=g-import-not-at-top,import-outside-toplevel
  from safetensors.torch import load_file  # pylint: disable=g-import-not-at-top,import-outside-toplevel
  sys.path.insert(0, args.repo)
  from modeling import maskgit  # pylint: disable=g-import-not-at-top,import-outside-toplevel
  from modeling import titok  # pylint: disable=g-import-not-at-top,import-outside-toplevel
  torch.set_num_threads(args.threads)
  out = []
  impl = f'PyTorch bytedance/1d-tokenizer (torch {torch.__version__})'
  tok = titok.TiTok(S128).eval()
  tok.load_state_dict(load_file(os.path.join(args.dir, 's128', 'model.safetensors')),
                      strict=True)
  x = torch.rand(args.batch, 3, 256, 256, generator=torch.Generator().manual_seed(0))

  def encode_decode():
    with torch.inference_mode():
      zq, result = tok.encode(x)
      return float(tok.decode_tokens(result['min_encoding_indices']).sum())

  med, times = _timed(encode_decode, args.steps, args.warmup)
  out.append(_record(args, 'official/s128/encode_decode/reference', args.batch, med, times,
                     impl))
  gen = maskgit.ImageBert(json.loads(json.dumps(L32_GENERATOR))).eval()
  gen.load_state_dict(load_file(os.path.join(args.dir, 'l32_generator',
                                             'model.safetensors')), strict=True)
  labels = torch.arange(args.batch) % 1000
  g = L32_GENERATOR['model']['generator']

  def sample():
    with torch.inference_mode():
      return gen.generate(labels.clone(), guidance_scale=g['guidance_scale'],
                          guidance_decay=g['guidance_decay'], guidance_scale_pow=3.0,
                          randomize_temperature=g['randomize_temperature'],
                          softmax_temperature_annealing=True,
                          num_sample_steps=g['num_steps']).sum().item()

  med, times = _timed(sample, args.steps, args.warmup)
  out.append(_record(args, 'official/l32_generator/sample_ids/reference', args.batch, med,
                     times, impl))
  return out


def ours(args):
  import jax  # pylint: disable=g-import-not-at-top,import-outside-toplevel
  import numpy as np  # pylint: disable=g-import-not-at-top,import-outside-toplevel
  from sbt_jax import runs  # pylint: disable=g-import-not-at-top,import-outside-toplevel
  from sbt_jax.sampling import generate  # pylint: disable=g-import-not-at-top,import-outside-toplevel
  impl = f'sbt_jax (jax {jax.__version__})'
  mesh = runs.local_mesh()
  out = []
  run = runs.restore_tokenizer(os.path.join(args.dir, 'run_s128'), mesh)
  params = jax.device_get(run.params)
  x = np.random.RandomState(0).rand(args.batch, 256, 256, 3).astype(np.float32) * 2 - 1

  @jax.jit
  def encode_decode(params, x):
    ids = run.model.apply({'params': params}, x, method='encode_ids')
    return run.model.apply({'params': params}, ids, method='decode_ids')

  med, times = _timed(lambda: encode_decode(params, x).block_until_ready(), args.steps,
                      args.warmup)
  out.append(_record(args, 'official/s128/encode_decode/ours', args.batch, med, times, impl))
  gen = runs.restore_generator(os.path.join(args.dir, 'run_l32_generator'), mesh)
  gparams = jax.device_get(gen.params)
  sampler = jax.jit(generate.ids_sampler(gen.model, gen.config.generator))
  labels = np.arange(args.batch, dtype=np.int32) % 1000
  med, times = _timed(
      lambda: sampler(gparams, labels, jax.random.key(0)).block_until_ready(), args.steps,
      args.warmup)
  out.append(_record(args, 'official/l32_generator/sample_ids/ours', args.batch, med, times,
                     impl))
  return out


def main():
  ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  ap.add_argument('--side', choices=['weights', 'reference', 'ours'], required=True)
  ap.add_argument('--dir', required=True, help='folder for the weights and converted runs')
  ap.add_argument('--repo', help='checkout of bytedance/1d-tokenizer (--side reference)')
  ap.add_argument('--batch', type=int, default=8)
  ap.add_argument('--steps', type=int, default=3)
  ap.add_argument('--warmup', type=int, default=1)
  ap.add_argument('--threads', type=int, default=2, help='torch threads (reference side)')
  ap.add_argument('--results', default=os.path.join(os.path.dirname(__file__), 'results.jsonl'))
  args = ap.parse_args()
  if args.side == 'weights':
    make_weights(args)
    return
  if args.side == 'reference' and not args.repo:
    sys.exit('--side reference needs --repo (a bytedance/1d-tokenizer checkout)')
  records.append_records(args.results, reference(args) if args.side == 'reference'
                         else ours(args))


if __name__ == '__main__':
  main()
