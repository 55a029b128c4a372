"""Generator compute: XLA FLOPs per step, train step time and sampling images/s, one run.

  python benchmarks/generator.py --config configs/generator_fmnist.py \
      --tokenizer_config configs/titok_fmnist.py --name titok_g16
  python benchmarks/generator.py --config configs/generator_imagenet256.py:maskgit \
      --tokenizer_workdir gs://BUCKET/titok_s128 --batch 256 --sample_batch 250

The tokenizer is a trained run (--tokenizer_workdir) or a config (--tokenizer_config,
randomly initialised: compute does not depend on the weights; a SelfBootTok aligner-stage
config measures the tokenizer decoding through that stage's aligner). Measured, for the
generator config as given (type, sizes, sampling settings, dtype):

  train_ids     the generator train step on cached ids (forward, backward, AdamW, EMA)
  train_encode  the same step encoding images with the frozen tokenizer inside the step
  sample_step   one sampling step: a generator forward over the batch (doubled for
                classifier-free guidance); AR: one KV-cache step of one token
  sample        ids sampling (lax loop over all steps) + tokenizer decode, images/s
  decode        the tokenizer decode of sampled ids

FLOPs come from XLA's cost analysis of the same functions compiled with
attention_impl='xla' (as in throughput.py). The cost analysis counts a loop body once, so
`sample/flops_per_image` is computed as (steps x sample_step + decode) / batch.
Records are appended to benchmarks/results.jsonl (format: benchmarks/README.md).
"""
import argparse
import datetime
import functools
import importlib.util
import json
import os
import shlex
import sys

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, _ROOT)
sys.path.insert(0, os.path.join(_ROOT, 'benchmarks'))

import flax.linen as nn  # pylint: disable=g-import-not-at-top,wrong-import-position
import jax  # pylint: disable=wrong-import-position
import jax.numpy as jnp  # pylint: disable=wrong-import-position
import ml_collections  # pylint: disable=wrong-import-position
import numpy as np  # pylint: disable=wrong-import-position

import records as records_lib  # pylint: disable=wrong-import-position
import throughput  # pylint: disable=wrong-import-position
from sbt_jax import runs  # pylint: disable=wrong-import-position
from sbt_jax import sharding  # pylint: disable=wrong-import-position
from sbt_jax.models import registry  # pylint: disable=wrong-import-position
from sbt_jax.models import generator as generator_lib  # pylint: disable=wrong-import-position
from sbt_jax.sampling import autoregressive  # pylint: disable=wrong-import-position
from sbt_jax.sampling import generate  # pylint: disable=wrong-import-position
from sbt_jax.sampling import maskgit  # pylint: disable=wrong-import-position
from sbt_jax.trainers import generator as generator_trainer  # pylint: disable=wrong-import-position
from sbt_jax.trainers import setup  # pylint: disable=wrong-import-position
from sbt_jax.trainers import state as state_lib  # pylint: disable=wrong-import-position

BENCHMARKS = ('train_ids', 'train_encode', 'sample_step', 'sample', 'decode')


def load_config_file(spec: str) -> ml_collections.ConfigDict:
  """'path/to/config.py[:variant]' -> get_config(variant)."""
  path, _, arg = spec.partition(':')
  module_spec = importlib.util.spec_from_file_location('bench_config', path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  return module.get_config(arg or None)


def tokenizer_and_params(args, mesh):
  """(adapter, params) from a trained run or a randomly initialised tokenizer config."""
  if args.tokenizer_workdir:
    adapter, params, _ = runs.restore_global_tokenizer(args.tokenizer_workdir, mesh)
    return adapter, params
  config = load_config_file(args.tokenizer_config)
  # An aligner-stage config (selfboottok_fmnist.py:aligner): the tokenizer decodes through
  # that stage's larger aligner, as generator_fd.py --aligner_workdir does.
  aligner_cfg = config.aligner.model if config.stage == 'aligner' else None
  adapter = registry.spec(config).global_tokenizer(config, aligner_cfg=aligner_cfg)
  init = jax.jit(lambda rng: adapter.model.init(rng, runs.dummy_images(config)))
  return adapter, {'tokenizer': nn.meta.unbox(init(jax.random.key(0))['params'])}


def with_xla(config):
  c = config.copy_and_resolve_references()
  c.generator.attention_impl = 'xla'
  return c


def with_xla_adapter(adapter):
  c = adapter.config.copy_and_resolve_references()
  c.model.attention_impl = 'xla'
  return registry.spec(c).global_tokenizer(
      c, aligner_cfg=getattr(adapter, 'aligner_cfg', None))  # SelfBootTok's aligner size


def train_step_fn(config, adapter):
  model = generator_lib.build_generator(config.generator, adapter.vocab_size,
                                        adapter.num_tokens)
  tx = state_lib.make_optimizer(config.optim, config.train.num_steps)
  step = functools.partial(generator_trainer.train_step, model=model, adapter=adapter,
                           tx=tx, config=config)
  return model, tx, step


def bench_train(config, adapter, params, batch, args, encode: bool, mesh):
  model, tx, step = train_step_fn(config, adapter)
  seq = jnp.zeros((1, adapter.num_tokens + (config.generator.type == 'maskgit')), jnp.int32)
  state = state_lib.create(model.init(jax.random.key(0), seq)['params'], tx,
                           config.optim.ema_decay > 0)
  rng = jax.random.key(1)
  labels = jnp.arange(batch, dtype=jnp.int32) % config.generator.num_classes
  if encode:
    data = {'image': jax.random.uniform(rng, (batch,) + adapter.image_shape, jnp.float32,
                                        -1, 1), 'label': labels}
  else:
    data = {'ids': jax.random.randint(rng, (batch, adapter.num_tokens), 0,
                                      adapter.vocab_size), 'label': labels}
  _, _, xla_step = train_step_fn(with_xla(config), with_xla_adapter(adapter))
  flops = throughput.xla_flops(jax.jit(xla_step), state, params, data, rng)
  # The jit signature training compiles (trainers/setup.py): sharded, donated state.
  state_sh = jax.tree.map(lambda _: sharding.replicated(mesh), state)
  step_fn = setup.compile_train_step(step, mesh, state_sh, config.mesh.rules)
  med, times = throughput.time_stateful(step_fn, state, (params, data, rng), args.steps,
                                        args.warmup)
  return med, times, flops


def sample_step_flops(config, adapter, batch):
  """XLA FLOPs of one sampling step (generator forward; CFG doubles the batch)."""
  g = with_xla(config).generator
  model = generator_lib.build_generator(g, adapter.vocab_size, adapter.num_tokens)
  labels = jnp.zeros((batch,), jnp.int32)
  params = jax.eval_shape(model.init, jax.random.key(0),
                          jnp.zeros((1, adapter.num_tokens + 1), jnp.int32))['params']
  s = g.sampling
  if g.type == 'maskgit':
    def fn(p, state):
      return maskgit.make_step(p, labels, model=model, num_steps=s.num_steps,
                               guidance_scale=s.guidance_scale,
                               guidance_schedule=s.guidance_schedule,
                               guidance_power=s.guidance_power)(state)
    state = maskgit.init_state(batch, adapter.num_tokens, adapter.vocab_size,
                               jax.random.key(0))
    return throughput.xla_flops(jax.jit(fn), params, state), s.num_steps
  b = 2 * batch if s.guidance_scale != 0 else batch
  decoder = model.clone(decode=True)
  cache = autoregressive.init_cache(model, b)
  def fn(p, c, token_bx1):
    return decoder.apply({'params': p, 'cache': c}, token_bx1, position=0, mutable=['cache'])
  return (throughput.xla_flops(jax.jit(fn), params, cache, jnp.zeros((b, 1), jnp.int32)),
          adapter.num_tokens)


def bench_sample(config, adapter, params, batch, args):
  g = config.generator
  model = generator_lib.build_generator(g, adapter.vocab_size, adapter.num_tokens)
  seq = jnp.zeros((1, adapter.num_tokens + (g.type == 'maskgit')), jnp.int32)
  gen_params = model.init(jax.random.key(0), seq)['params']
  sample_ids = generate.ids_sampler(model, g)
  fn = jax.jit(lambda p, tp, labels, rng: adapter.decode_global_ids(
      tp, sample_ids(p, labels, rng)))
  labels = jnp.asarray(generate.class_balanced_labels(batch, g.num_classes))
  med, times = throughput.time_calls(fn, (gen_params, params, labels, jax.random.key(0)),
                                     args.steps, args.warmup)
  xla_adapter = with_xla_adapter(adapter)
  decode_flops = throughput.xla_flops(jax.jit(xla_adapter.decode_global_ids), params,
                                      jnp.zeros((batch, adapter.num_tokens), jnp.int32))
  decode_med, decode_times = throughput.time_calls(
      jax.jit(adapter.decode_global_ids),
      (params, jnp.zeros((batch, adapter.num_tokens), jnp.int32)), args.steps, args.warmup)
  return med, times, decode_flops, decode_med, decode_times


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument('--config', required=True, help='generator config file[:variant]')
  tok = p.add_mutually_exclusive_group(required=True)
  tok.add_argument('--tokenizer_workdir', help='a trained tokenizer run')
  tok.add_argument('--tokenizer_config', help='tokenizer config file[:variant] (random init)')
  p.add_argument('--name', default='', help='record name prefix (default: derived)')
  p.add_argument('--dtype', default=None, choices=('float32', 'bfloat16'),
                 help="generator compute dtype (default: the config's)")
  p.add_argument('--batch', type=int, default=0, help="train batch (0: the config's)")
  p.add_argument('--sample_batch', type=int, default=0,
                 help="sampling batch (0: the config's generator.sampling.batch_size)")
  p.add_argument('--steps', type=int, default=5, help='timed calls (median reported)')
  p.add_argument('--warmup', type=int, default=1)
  p.add_argument('--benchmarks', default=','.join(BENCHMARKS))
  p.add_argument('--out', default=os.path.join(_ROOT, 'benchmarks', 'results.jsonl'),
                 help="JSONL file to append to ('' or '-': print only)")
  args = p.parse_args(argv)
  benches = [b for b in args.benchmarks.split(',') if b]
  for b in benches:
    if b not in BENCHMARKS:
      p.error(f'unknown benchmark {b!r}; known: {BENCHMARKS}')
  command = ' '.join(shlex.quote(a) for a in [os.path.relpath(sys.executable, _ROOT)
                                              if sys.executable.startswith(_ROOT)
                                              else sys.executable] + sys.argv)
  config = load_config_file(args.config)
  if args.dtype:
    config.generator.compute_dtype = args.dtype
  g = config.generator
  batch = args.batch or config.data.global_batch_size
  sample_batch = args.sample_batch or g.sampling.batch_size
  mesh = sharding.make_mesh(ml_collections.ConfigDict({'data': 1, 'fsdp': 1, 'tensor': 1}),
                            jax.devices()[:1])
  adapter, params = tokenizer_and_params(args, mesh)
  params = jax.device_put(params, jax.devices()[0])
  t = g.transformer
  model_desc = (f'{g.type} w{t.width} d{t.depth} h{t.num_heads} mlp{t.mlp_ratio} '
                f'G{adapter.num_tokens} V{adapter.vocab_size} C{g.num_classes} over '
                f'{adapter.config.model.name} {"x".join(map(str, adapter.image_shape))}')
  name = args.name or f'generator_{g.type}_G{adapter.num_tokens}'
  s = g.sampling
  common = {
      'config': args.config, 'tokenizer': args.tokenizer_workdir or args.tokenizer_config,
      'model': model_desc, 'dtype': g.compute_dtype, 'param_dtype': 'float32',
      'attention_impl': g.attention_impl,
      'sampling': {'num_steps': s.num_steps if g.type == 'maskgit' else adapter.num_tokens,
                   'guidance_scale': s.guidance_scale,
                   'guidance_schedule': s.guidance_schedule},
      'device': throughput.device_description(), 'jax_version': jax.__version__,
      'git': records_lib.git_revision(),
      'date': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
      'command': command, 'steps': args.steps, 'warmup': args.warmup,
      'loadavg_1m_at_start': os.getloadavg()[0],
  }
  records = []

  def add(bench, metric, value, unit, **extra):
    records.append(dict(common, name=f'{name}/{bench}/{g.compute_dtype}', metric=metric,
                        value=value, unit=unit, loadavg_1m=os.getloadavg()[0], **extra))
    print(f'{name}/{bench:13s} {metric:22s} {value:12.4g} {unit}', flush=True)

  for bench in ('train_ids', 'train_encode'):
    if bench in benches:
      med, times, flops = bench_train(config, adapter, params, batch, args,
                                      encode=bench == 'train_encode', mesh=mesh)
      extra = dict(batch=batch, step_times_s=[round(x, 5) for x in times])
      add(bench, 'step_time_s', med, 's', **extra)
      add(bench, 'images_per_s', batch / med, 'images/s', **extra)
      add(bench, 'flops_per_step', flops, 'FLOP', **extra)
  step_flops, num_steps = None, None
  if 'sample_step' in benches or 'sample' in benches:
    step_flops, num_steps = sample_step_flops(config, adapter, sample_batch)
    if 'sample_step' in benches:
      add('sample_step', 'flops_per_step', step_flops, 'FLOP', batch=sample_batch,
          cfg_doubled_batch=s.guidance_scale != 0)
  if 'sample' in benches or 'decode' in benches:
    med, times, decode_flops, decode_med, decode_times = bench_sample(
        config, adapter, params, sample_batch, args)
    if 'sample' in benches:
      extra = dict(batch=sample_batch, call_times_s=[round(x, 5) for x in times],
                   sampling_steps=num_steps)
      add('sample', 'images_per_s', sample_batch / med, 'images/s', **extra)
      add('sample', 'call_time_s', med, 's', **extra)
      add('sample', 'flops_per_image', (num_steps * step_flops + decode_flops) / sample_batch,
          'FLOP', **extra)
    if 'decode' in benches:
      extra = dict(batch=sample_batch, call_times_s=[round(x, 5) for x in decode_times])
      add('decode', 'images_per_s', sample_batch / decode_med, 'images/s', **extra)
      add('decode', 'flops_per_step', decode_flops, 'FLOP', **extra)

  records_lib.append_records(args.out, records)
  return records


if __name__ == '__main__':
  main()
