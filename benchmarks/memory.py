"""Peak memory and step time of the tokenizer train step with remat / scan on and off.

  python benchmarks/memory.py --config b64 --batch 2 --steps 2

For each (model.remat_policy, model.scan_layers) pair it compiles TokenizerTask.train_step
(forward, backward, AdamW, EMA; no LPIPS; state donated, as the loop runs it) and records:
  - XLA's compiled memory analysis: argument bytes (state + batch), output bytes, alias
    bytes (donated state reused for the output), temp bytes (activations and other
    intermediates, the part remat and scan change) and the peak estimate
    argument + output - alias + temp;
  - compile time and the median step time over --steps steps after one warm-up step
    (--steps 0: compile only, e.g. for the memory of a batch too slow to run on a CPU).
On a CPU the analysis is that of the CPU compilation; TPU/GPU compilations differ in
detail but remat and scan shift the temp bytes the same way.
"""
import argparse
import datetime
import json
import os
import shlex
import sys
import time

_HERE = os.path.dirname(os.path.abspath(__file__))
_ROOT = os.path.dirname(_HERE)
sys.path.insert(0, _ROOT)
sys.path.insert(0, _HERE)

import jax  # pylint: disable=g-import-not-at-top,wrong-import-position
import jax.numpy as jnp  # pylint: disable=wrong-import-position

import records as records_lib  # pylint: disable=wrong-import-position
import throughput  # pylint: disable=wrong-import-position
from sbt_jax import config_defaults  # pylint: disable=wrong-import-position
from sbt_jax import sharding  # pylint: disable=wrong-import-position
from sbt_jax.models import attention as attention_lib  # pylint: disable=wrong-import-position
from sbt_jax.trainers import setup  # pylint: disable=wrong-import-position
from sbt_jax.trainers import tokenizer  # pylint: disable=wrong-import-position

CONFIGS = ('s128', 'b64', 'l32')
VARIANTS = ('none/noscan,full/noscan,dots_saveable/noscan,'
            'none/scan,full/scan,dots_saveable/scan')


def get_config(name):
  from configs import titok_imagenet256  # pylint: disable=g-import-not-at-top
  return titok_imagenet256.get_config(name), f'configs/titok_imagenet256.py:{name}'


def memory_stats(compiled) -> dict:
  ma = compiled.memory_analysis()
  stats = {k: int(getattr(ma, f'{k}_size_in_bytes'))
           for k in ('argument', 'output', 'alias', 'temp', 'generated_code')}
  stats['peak_estimate'] = stats['argument'] + stats['output'] - stats['alias'] + stats['temp']
  reported = int(getattr(ma, 'peak_memory_in_bytes', 0) or 0)
  if reported:
    stats['peak_reported'] = reported
  return stats


def bench(config, batch, steps):
  """Memory stats, compile time, median step time and all step times (steps=0: no run)."""
  mesh = sharding.make_mesh(config.mesh, jax.devices()[:1])
  task = tokenizer.TokenizerTask(config, mesh)
  state = jax.eval_shape(task.init_state, jax.random.key(0))
  images = jax.ShapeDtypeStruct((batch,) + task.dummy_images().shape[1:], jnp.float32)
  t0 = time.perf_counter()
  # Exactly the step training compiles (shardings, donated state; trainers/setup.py).
  step = setup.compile_train_step(task.train_step, mesh,
                                  setup.state_shardings(task, config, mesh), config.mesh.rules)
  compiled = step.lower(state, {}, {'image': images}, jax.random.key(2)).compile()
  compile_s = time.perf_counter() - t0
  if not steps:
    return memory_stats(compiled), compile_s, None, []
  state = jax.jit(task.init_state)(jax.random.key(0))
  images = jax.random.uniform(jax.random.key(1), images.shape, jnp.float32, -1.0, 1.0)
  med, times = throughput.time_stateful(compiled, state,
                                        ({}, {'image': images}, jax.random.key(2)), steps,
                                        warmup=1)
  return memory_stats(compiled), compile_s, med, times


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument('--config', default='b64', choices=CONFIGS)
  p.add_argument('--batch', type=int, default=2)
  p.add_argument('--steps', type=int, default=2,
                 help='timed steps (median reported); 0: compile and analyse only')
  p.add_argument('--dtype', default='', choices=('', 'float32', 'bfloat16'),
                 help="compute dtype ('': the config's, bfloat16 for the ImageNet configs)")
  p.add_argument('--variants', default=VARIANTS,
                 help='comma-separated remat_policy/scan|noscan pairs')
  p.add_argument('--out', default=os.path.join(_HERE, 'results.jsonl'),
                 help="JSONL file to append to ('' or '-': print only)")
  args = p.parse_args(argv)
  command = ' '.join(shlex.quote(a) for a in [os.path.relpath(sys.executable, _ROOT)
                                              if sys.executable.startswith(_ROOT)
                                              else sys.executable] + sys.argv)
  base, source = get_config(args.config)
  base.loss.perceptual_weight = 0.0
  base.data.global_batch_size = args.batch
  if args.dtype:
    base.model.compute_dtype = args.dtype
  m = base.model
  common = {
      'config': args.config, 'config_source': source, 'batch': args.batch,
      'model': (f'titok p{m.patch_size} G{m.num_global_tokens} K{m.codebook_size} '
                f'enc{m.encoder.width}x{m.encoder.depth} dec{m.decoder.width}x'
                f'{m.decoder.depth} {base.data.image_size}x{base.data.image_size}x'
                f'{base.data.channels}'),
      'dtype': m.compute_dtype, 'param_dtype': 'float32', 'lpips': False,
      'attention_impl_resolved': attention_lib.resolve_impl(m.attention_impl),
      'device': throughput.device_description(), 'jax_version': jax.__version__,
      'git': records_lib.git_revision(), 'command': command, 'steps': args.steps,
      'warmup': 1 if args.steps else 0,
      'date': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
      'loadavg_1m_at_start': os.getloadavg()[0],
  }
  records = []
  for variant in args.variants.split(','):
    remat, scan = variant.split('/')
    if scan not in ('scan', 'noscan'):
      p.error(f'variant {variant!r}: expected <remat_policy>/scan or /noscan')
    config = base.copy_and_resolve_references()
    config.model.remat_policy, config.model.scan_layers = remat, scan == 'scan'
    config_defaults.validate(config)
    stats, compile_s, med, times = bench(config, args.batch, args.steps)
    name = f'{args.config}/train_memory/remat={remat},scan={scan == "scan"}'
    extra = dict(common, name=name, remat_policy=remat, scan_layers=scan == 'scan',
                 memory_bytes=stats, compile_time_s=compile_s, step_times_s=times,
                 loadavg_1m=os.getloadavg()[0])
    metrics = [('peak_memory_bytes', stats['peak_estimate'], 'bytes'),
               ('temp_memory_bytes', stats['temp'], 'bytes'),
               ('compile_time_s', compile_s, 's')]
    if med is not None:
      metrics.append(('step_time_s', med, 's'))
    for metric, value, unit in metrics:
      records.append(dict(extra, metric=metric, value=value, unit=unit))
    step = f'step {med:6.2f} s' if med is not None else 'not run'
    print(f'{name:50s} peak {stats["peak_estimate"] / 2**30:6.2f} GiB  temp '
          f'{stats["temp"] / 2**30:6.2f} GiB  args {stats["argument"] / 2**30:5.2f} GiB  '
          f'{step}  compile {compile_s:5.1f} s', flush=True)
  records_lib.append_records(args.out, records)
  return records


if __name__ == '__main__':
  main()
