"""Train-step and encode+decode throughput of a TiTok config, appended to results.jsonl.

  python benchmarks/throughput.py --config s128 --dtype bfloat16 --batch 8 --steps 5

Per (config, dtype) it measures, in one process:
  - the machine's matmul peak: jnp.dot of two 2048x2048 matrices, float32 x float32 -> float32
    and bfloat16 x bfloat16 -> float32 (the form every matmul of the model uses);
  - encode+decode (model.apply, no gradient) and the train step
    (TokenizerTask.train_step: forward, backward, AdamW, EMA), without and with LPIPS, and
    with the single-stage recipe's losses (`train_adversarial`: LPIPS + ConvNeXt-S at 224
    px, 'lpips-convnext_s-1.0-0.1', and the reference-size patch discriminator updated in
    the same step; ConvNeXt-S weights randomly initialised: the time does not depend on
    their values).
For each it records images/s (median over --steps timed steps after warm-up), FLOPs/step from
XLA's cost analysis and the fraction of the matmul peak that FLOPs/step / median time reaches.

FLOPs come from the same function compiled with model.attention_impl='xla': XLA's cost
analysis counts the body of a lax.map / while loop once, and the 'chunked' attention is such a
loop; 'xla' is the same math without the loop.
"""
import argparse
import datetime
import functools
import os
import shlex
import statistics
import sys
import time

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, _ROOT)

# sbt_jax first: importing it sets the host malloc (sbt_jax/host_memory.py) before JAX starts.
import sbt_jax  # pylint: disable=g-import-not-at-top,wrong-import-position
import jax  # pylint: disable=wrong-import-position
import jax.numpy as jnp  # pylint: disable=wrong-import-position
import numpy as np  # pylint: disable=wrong-import-position

from benchmarks import records as records_lib  # pylint: disable=wrong-import-position
from sbt_jax import config_defaults  # pylint: disable=wrong-import-position
from sbt_jax import sharding  # pylint: disable=wrong-import-position
from sbt_jax.evaluators import convnext  # pylint: disable=wrong-import-position
from sbt_jax.losses import perceptual  # pylint: disable=wrong-import-position
from sbt_jax.models import attention as attention_lib  # pylint: disable=wrong-import-position
from sbt_jax.trainers import setup  # pylint: disable=wrong-import-position
from sbt_jax.trainers import tokenizer  # pylint: disable=wrong-import-position

CONFIGS = ('s128', 'fmnist')
BENCHMARKS = ('encode_decode', 'train', 'train_lpips', 'train_adversarial')
DEFAULT_BATCH = {'s128': 8, 'fmnist': 64}


def s128_config():
  """TiTok-S-128 at 256x256 (configs/titok_imagenet256.py:s128) in float32 by default."""
  from configs import titok_imagenet256  # pylint: disable=g-import-not-at-top
  c = titok_imagenet256.get_config('s128')
  c.model.compute_dtype = 'float32'
  return c


def fmnist_config():
  """configs/titok_fmnist.py as users run it."""
  from configs import titok_fmnist  # pylint: disable=g-import-not-at-top
  return titok_fmnist.get_config(), 'configs/titok_fmnist.py'


def get_config(name):
  if name == 's128':
    return s128_config(), 'configs/titok_imagenet256.py:s128'
  if name == 'fmnist':
    return fmnist_config()
  raise ValueError(f'--config {name!r}; expected one of {CONFIGS}')


def device_description():
  d = jax.devices()[0]
  desc = f'{d.platform}:{d.device_kind}'
  if d.platform == 'cpu':
    desc += f' ({records_lib.cpu_description()})'
  return desc


def time_calls(fn, args, steps, warmup):
  """Median and all wall times (s) of `fn(*args)` after `warmup` calls; blocks on outputs."""
  for _ in range(warmup):
    jax.block_until_ready(fn(*args))
  times = []
  for _ in range(steps):
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - t0)
  return statistics.median(times), times


def time_stateful(fn, state, rest, steps, warmup):
  """Like time_calls for `state, out = fn(state, *rest)` (state donated and threaded)."""
  for _ in range(warmup):
    state = jax.block_until_ready(fn(state, *rest))[0]
  times = []
  for _ in range(steps):
    t0 = time.perf_counter()
    state = jax.block_until_ready(fn(state, *rest))[0]
    times.append(time.perf_counter() - t0)
  return statistics.median(times), times


def matmul_peak(dtype, n=2048, steps=10):
  """FLOP/s of an n x n x n matmul with `dtype` operands and float32 results."""
  a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32).astype(dtype)
  b = jax.random.normal(jax.random.key(1), (n, n), jnp.float32).astype(dtype)
  f = jax.jit(functools.partial(jnp.dot, preferred_element_type=jnp.float32))
  med, _ = time_calls(f, (a, b), steps, warmup=2)
  return 2 * n ** 3 / med


def xla_flops(jitted_fn, *args):
  cost = jitted_fn.lower(*args).compile().cost_analysis()
  if isinstance(cost, (list, tuple)):
    cost = cost[0]
  return float(cost['flops'])


def with_impl(config, impl):
  c = config.copy_and_resolve_references()
  c.model.attention_impl = impl
  return c


def bench_encode_decode(config, batch, steps, warmup):
  mesh = sharding.make_mesh(config.mesh)
  task = tokenizer.TokenizerTask(config, mesh)
  params = task.init_state(jax.random.key(0)).params
  images = jax.random.uniform(jax.random.key(1), (batch,) + task.dummy_images().shape[1:],
                              jnp.float32, -1.0, 1.0)

  def make(t):
    return jax.jit(lambda p, x: t.model.apply({'params': p}, x))

  flops = xla_flops(make(tokenizer.TokenizerTask(with_impl(config, 'xla'), mesh)), params,
                    images)
  med, times = time_calls(make(task), (params, images), steps, warmup)
  return med, times, flops


def bench_train(config, batch, steps, warmup, frozen):
  mesh = sharding.make_mesh(config.mesh)
  task = tokenizer.TokenizerTask(config, mesh)
  state = task.init_state(jax.random.key(0))
  images = jax.random.uniform(jax.random.key(1), (batch,) + task.dummy_images().shape[1:],
                              jnp.float32, -1.0, 1.0)
  batch_d = {'image': images}
  rng = jax.random.key(2)
  xla_task = tokenizer.TokenizerTask(with_impl(config, 'xla'), mesh)
  flops = xla_flops(jax.jit(xla_task.train_step), state, frozen, batch_d, rng)
  # Exactly the step training compiles (shardings, donated state; trainers/setup.py).
  prepared = setup.prepare(task, config, mesh, frozen=frozen)
  batch_d = sharding.global_batch({'image': np.asarray(images)}, mesh)
  med, times = time_stateful(prepared.step_fn, prepared.state, (prepared.frozen, batch_d, rng),
                             steps, warmup)
  return med, times, flops


def adversarial_setup(cfg, frozen):
  """cfg with the single-stage recipe's losses on from step 0 (the default discriminator,
  the reference's size), and frozen with random ConvNeXt-S params."""
  cfg.loss.perceptual = 'lpips-convnext_s-1.0-0.1'
  cfg.loss.perceptual_weight = 1.1
  cfg.adversarial.enabled = True
  cfg.adversarial.start_step = 0
  model = convnext.model_for(perceptual.CONVNEXT)
  params = jax.jit(model.init)(jax.random.key(3), jnp.zeros((1, 224, 224, 3)))['params']
  return {**frozen, 'convnext': params}


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument('--config', default='s128', choices=CONFIGS)
  p.add_argument('--dtype', default='float32', choices=('float32', 'bfloat16'))
  p.add_argument('--batch', type=int, default=0, help='0: 8 for s128, 64 for fmnist')
  p.add_argument('--steps', type=int, default=5, help='timed steps (median reported)')
  p.add_argument('--warmup', type=int, default=2, help='untimed steps after compilation')
  p.add_argument('--attention_impl', default='auto', choices=attention_lib.IMPLS)
  p.add_argument('--benchmarks', default='encode_decode,train,train_lpips',
                 help='comma-separated subset of ' + ','.join(BENCHMARKS))
  p.add_argument('--out', default=os.path.join(_ROOT, 'benchmarks', 'results.jsonl'),
                 help="JSONL file to append to ('' or '-': print only)")
  args = p.parse_args(argv)
  command = ' '.join(shlex.quote(a) for a in [os.path.relpath(sys.executable, _ROOT)
                                              if sys.executable.startswith(_ROOT)
                                              else sys.executable] + sys.argv)
  benches = [b for b in args.benchmarks.split(',') if b]
  for b in benches:
    if b not in BENCHMARKS:
      p.error(f'unknown benchmark {b!r}')

  config, config_source = get_config(args.config)
  config.model.compute_dtype = args.dtype
  config.model.attention_impl = args.attention_impl
  batch = args.batch or DEFAULT_BATCH[args.config]
  config.data.global_batch_size = batch
  config_defaults.validate(config)

  peak_dtype = jnp.bfloat16 if args.dtype == 'bfloat16' else jnp.float32
  peaks = [matmul_peak(peak_dtype)]
  load_start = os.getloadavg()[0]
  m = config.model
  common = {
      'config': args.config,
      'config_source': config_source,
      'model': (f'titok p{m.patch_size} G{m.num_global_tokens} K{m.codebook_size} '
                f'T{m.token_dim} enc{m.encoder.width}x{m.encoder.depth}h{m.encoder.num_heads}'
                f' dec{m.decoder.width}x{m.decoder.depth}h{m.decoder.num_heads} '
                f'mlp{m.encoder.mlp_ratio} {config.data.image_size}x{config.data.image_size}x'
                f'{config.data.channels}'),
      'batch': batch,
      'dtype': args.dtype,
      'param_dtype': 'float32',
      'attention_impl': args.attention_impl,
      'attention_impl_resolved': attention_lib.resolve_impl(args.attention_impl),
      'device': device_description(),
      'jax_version': jax.__version__,
      # sbt_jax/host_memory.py: freed host memory reused (SBT_JAX_HOST_MALLOC)
      'host_malloc_reuse': sbt_jax.HOST_MALLOC_REUSE,
      'git': records_lib.git_revision(),
      'date': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
      'command': command,
      'steps': args.steps,
      'warmup': args.warmup,
      'loadavg_1m_at_start': load_start,
  }
  print(f'matmul peak {args.dtype}: {peaks[0] / 1e9:.0f} GFLOP/s (load average '
        f'{load_start:.2f})', flush=True)
  measured = []

  frozen_lpips = None
  for bench in benches:
    cfg = config.copy_and_resolve_references()
    lpips = bench in ('train_lpips', 'train_adversarial')
    if bench == 'encode_decode':
      med, times, flops = bench_encode_decode(cfg, batch, args.steps, args.warmup)
    else:
      if lpips:
        cfg.loss.perceptual_weight = cfg.loss.perceptual_weight or 0.1
        if frozen_lpips is None:
          frozen_lpips = jax.device_put(perceptual.frozen_params())
        frozen = frozen_lpips
      else:
        cfg.loss.perceptual_weight = 0.0
        frozen = {}
      if bench == 'train_adversarial':
        frozen = adversarial_setup(cfg, frozen)
      med, times, flops = bench_train(cfg, batch, args.steps, args.warmup, frozen)
    peaks.append(matmul_peak(peak_dtype))
    name = f'{args.config}/{bench}/{args.dtype}'
    measured.append((name, batch, med, flops, dict(
        lpips=lpips, loadavg_1m=os.getloadavg()[0],
        perceptual_weight=0.0 if bench == 'encode_decode' else float(cfg.loss.perceptual_weight),
        perceptual=cfg.loss.perceptual, adversarial=bool(cfg.adversarial.enabled),
        step_time_min_s=min(times), step_times_s=[round(t, 5) for t in times])))
    print(f'{name:40s} {batch / med:8.2f} img/s  {med * 1e3:9.1f} ms/step  '
          f'{flops / 1e9:9.1f} GFLOP/step  {flops / med / 1e9:7.1f} GFLOP/s', flush=True)

  # The peak is measured before and after every benchmark; the best of these medians is the
  # machine's peak (on a shared machine a single measurement can land in a busy moment).
  peak = max(peaks)
  common['matmul_peak_flops_per_s'] = peak
  common['matmul_peak'] = (f'jnp.dot 2048x2048 {args.dtype} x {args.dtype} -> float32: best '
                           f'of {len(peaks)} medians of 10 calls, taken before and after each '
                           'benchmark of this run')
  common['matmul_peak_samples'] = peaks
  records = [dict(common, name=f'matmul_peak/{args.dtype}', metric='matmul_peak',
                  value=peak, unit='FLOP/s', lpips=False)]
  for name, batch, med, flops, extra in measured:
    flops_s = flops / med
    for metric, value, unit in (
        ('images_per_s', batch / med, 'images/s'),
        ('step_time_s', med, 's'),
        ('flops_per_step', flops, 'FLOP'),
        ('achieved_flops_per_s', flops_s, 'FLOP/s'),
        ('fraction_of_matmul_peak', flops_s / peak, 'fraction'),
    ):
      records.append(dict(common, name=name, metric=metric, value=value, unit=unit, **extra))
    print(f'{name:40s} {batch / med:8.2f} img/s  {flops_s / peak:6.1%} of '
          f'{peak / 1e9:.0f} GFLOP/s peak')

  records_lib.append_records(args.out, records)
  return records


if __name__ == '__main__':
  main()
