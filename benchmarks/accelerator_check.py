"""The measurements of benchmarks/accelerator_check.sh, as results.jsonl records.

  python benchmarks/accelerator_check.py train --config s128 --batch 64 --steps 10
  python benchmarks/accelerator_check.py tests --junit /tmp/junit.xml --files 'tests/a.py ...'

`train`: one TiTok train step (configs/titok_imagenet256.py:<config>; TokenizerTask.train_step
compiled as training compiles it: forward, backward, AdamW, EMA; no LPIPS, as throughput.py's
`train`) in bfloat16 on one device: images/s, XLA FLOPs/step, MFU = FLOPs/step / step time /
the device's bf16 dense peak (PEAK_BF16_FLOPS, keyed on jax.devices()[0].device_kind; null
when unknown, e.g. on a CPU, unless --peak_flops), the device's peak memory
(memory_stats()['peak_bytes_in_use']; null where the backend has none, e.g. a CPU) and XLA's
compiled estimate. One config per process, so the peak memory is that config's.
`tests`: the outcome of the fast tests (a pytest --junitxml file).
"""
import argparse
import datetime
import os
import shlex
import sys
import time
import xml.etree.ElementTree as ET

_HERE = os.path.dirname(os.path.abspath(__file__))
_ROOT = os.path.dirname(_HERE)
sys.path.insert(0, _ROOT)
sys.path.insert(0, _HERE)

import records as records_lib  # pylint: disable=g-import-not-at-top,wrong-import-position

# Dense bfloat16 peak FLOP/s of one device (the vendors' data sheets; NVIDIA's without
# sparsity), keyed on jax.devices()[0].device_kind. TPU v5e/v6e report "TPU v5 lite"/"TPU v6
# lite" and v5p "TPU v5".
PEAK_BF16_FLOPS = {
    'NVIDIA H100 80GB HBM3': 989e12,  # SXM
    'NVIDIA H100 PCIe': 756e12,
    'NVIDIA H100 NVL': 835e12,
    'NVIDIA H200': 989e12,
    'NVIDIA H200 NVL': 835e12,
    'NVIDIA A100-SXM4-40GB': 312e12,
    'NVIDIA A100-SXM4-80GB': 312e12,
    'NVIDIA A100-PCIE-40GB': 312e12,
    'NVIDIA A100 80GB PCIe': 312e12,
    'TPU v4': 275e12,
    'TPU v5 lite': 197e12,
    'TPU v5e': 197e12,
    'TPU v5': 459e12,
    'TPU v5p': 459e12,
    'TPU v6 lite': 918e12,
    'TPU v6e': 918e12,
}


def peak_flops(device_kind: str, override: float = 0.0):
  """(peak FLOP/s or None, where it came from or None)."""
  if override:
    return override, '--peak_flops'
  if device_kind in PEAK_BF16_FLOPS:
    return PEAK_BF16_FLOPS[device_kind], 'PEAK_BF16_FLOPS'
  return None, None


def mfu(achieved_flops_per_s: float, peak):
  return None if peak is None else achieved_flops_per_s / peak


def common_fields(argv):
  import jax  # pylint: disable=g-import-not-at-top
  device = jax.devices()[0]
  python = sys.executable
  if python.startswith(_ROOT):
    python = os.path.relpath(python, _ROOT)
  return {
      # as throughput.device_description(), without importing the models for `tests`
      'device': f'{device.platform}:{device.device_kind}' + (
          f' ({records_lib.cpu_description()})' if device.platform == 'cpu' else ''),
      'device_kind': device.device_kind,
      'jax_version': jax.__version__,
      'git': records_lib.git_revision(),
      'date': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
      'command': ' '.join(shlex.quote(a) for a in [python, sys.argv[0], *argv]),
  }


def bench_train(config, batch, steps, warmup):
  """(median step time, all step times, XLA FLOPs/step, compiled memory stats, compile s)."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  import memory  # pylint: disable=g-import-not-at-top
  import throughput  # pylint: disable=g-import-not-at-top
  from sbt_jax import sharding  # pylint: disable=g-import-not-at-top
  from sbt_jax.trainers import setup  # pylint: disable=g-import-not-at-top
  from sbt_jax.trainers import tokenizer  # pylint: disable=g-import-not-at-top
  mesh = sharding.make_mesh(config.mesh, jax.devices()[:1])
  task = tokenizer.TokenizerTask(config, mesh)
  state_sh = setup.state_shardings(task, config, mesh)
  state = jax.jit(task.init_state, out_shardings=state_sh)(jax.random.key(0))
  images = jax.random.uniform(jax.random.key(1), (batch,) + task.dummy_images().shape[1:],
                              jnp.float32, -1.0, 1.0)
  data = sharding.global_batch({'image': np.asarray(images)}, mesh)
  rng = jax.random.key(2)
  t0 = time.perf_counter()
  # Exactly the step training compiles (shardings, donated state; trainers/setup.py). With
  # attention_impl='xla' (no lax loop) XLA's cost analysis counts all of its FLOPs.
  step = setup.compile_train_step(task.train_step, mesh, state_sh, config.mesh.rules)
  compiled = step.lower(state, {}, data, rng).compile()
  compile_s = time.perf_counter() - t0
  cost = compiled.cost_analysis()
  flops = float((cost[0] if isinstance(cost, (list, tuple)) else cost)['flops'])
  med, times = throughput.time_stateful(compiled, state, ({}, data, rng), steps, warmup)
  return med, times, flops, memory.memory_stats(compiled), compile_s


def train(args, argv):
  import throughput  # pylint: disable=g-import-not-at-top,unused-import  (sbt_jax before jax)
  import jax  # pylint: disable=g-import-not-at-top
  from configs import titok_imagenet256  # pylint: disable=g-import-not-at-top
  from sbt_jax import config_defaults  # pylint: disable=g-import-not-at-top
  variant = args.config + (',runlocal' if args.tiny else '')
  config = titok_imagenet256.get_config(variant)
  config.model.compute_dtype = 'bfloat16'
  config.model.attention_impl = 'xla'
  config.loss.perceptual_weight = 0.0
  config.data.global_batch_size = args.batch
  config_defaults.validate(config)
  med, times, flops, mem, compile_s = bench_train(config, args.batch, args.steps, args.warmup)
  device = jax.devices()[0]
  stats = device.memory_stats() or {}
  peak, peak_source = peak_flops(device.device_kind, args.peak_flops)
  achieved = flops / med
  m = config.model
  common = dict(
      common_fields(argv), config=variant,
      config_source=f'configs/titok_imagenet256.py:{variant}',
      model=(f'titok p{m.patch_size} G{m.num_global_tokens} K{m.codebook_size} '
             f'enc{m.encoder.width}x{m.encoder.depth} dec{m.decoder.width}x{m.decoder.depth} '
             f'{config.data.image_size}x{config.data.image_size}x{config.data.channels}'),
      batch=args.batch, dtype='bfloat16', param_dtype='float32', attention_impl='xla',
      lpips=False, num_devices=1, steps=args.steps, warmup=args.warmup,
      step_times_s=[round(t, 6) for t in times], compile_time_s=compile_s,
      peak_flops_per_s=peak, peak_flops_source=peak_source, memory_bytes=mem)
  name = f'device_check/{variant}/train/bfloat16'
  records = [dict(common, name=name, metric=metric, value=value, unit=unit)
             for metric, value, unit in (
                 ('images_per_s', args.batch / med, 'images/s'),
                 ('step_time_s', med, 's'),
                 ('flops_per_step', flops, 'FLOP'),
                 ('achieved_flops_per_s', achieved, 'FLOP/s'),
                 ('mfu', mfu(achieved, peak), 'fraction'),
                 ('peak_bytes_in_use', stats.get('peak_bytes_in_use'), 'bytes'),
                 ('compiled_peak_bytes', mem['peak_estimate'], 'bytes'))]
  for r in records:
    print(f'{name:45s} {r["metric"]:22s} {r["value"]}', flush=True)
  return records


def tests(args, argv):
  root = ET.parse(args.junit).getroot()
  suite = root if root.tag == 'testsuite' else root.find('testsuite')
  counts = {k: int(suite.get(k, 0)) for k in ('tests', 'failures', 'errors', 'skipped')}
  failed = counts['failures'] + counts['errors']
  print(f'fast tests: {counts}', flush=True)
  return [dict(common_fields(argv), name='device_check/fast_tests', metric='tests_failed',
               value=failed, unit='tests', files=args.files, time_s=float(suite.get('time', 0)),
               **counts)]


def main(argv=None):
  argv = sys.argv[1:] if argv is None else argv
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument('--out', default=os.path.join(_HERE, 'results.jsonl'),
                 help="JSONL file to append to ('' or '-': print only)")
  sub = p.add_subparsers(dest='what', required=True)
  t = sub.add_parser('train', help='TiTok train-step throughput, MFU and peak memory')
  t.add_argument('--config', default='s128', choices=('s128', 'b64', 'l32'))
  t.add_argument('--tiny', action='store_true', help="the config's `runlocal` sizes")
  t.add_argument('--batch', type=int, default=64)
  t.add_argument('--steps', type=int, default=10, help='timed steps (median reported)')
  t.add_argument('--warmup', type=int, default=2)
  t.add_argument('--peak_flops', type=float, default=0.0,
                 help='peak FLOP/s of the device (0: from PEAK_BF16_FLOPS)')
  r = sub.add_parser('tests', help='record the outcome of the fast tests')
  r.add_argument('--junit', required=True, help='pytest --junitxml output')
  r.add_argument('--files', default='', help='the tests that ran (recorded as given)')
  args = p.parse_args(argv)
  records = train(args, argv) if args.what == 'train' else tests(args, argv)
  records_lib.append_records(args.out, records)
  return records


if __name__ == '__main__':
  main()
