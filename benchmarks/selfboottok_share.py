"""Where a SelfBootTok train step's time goes: the OT solves and the 2D aligner.

  python benchmarks/selfboottok_share.py --config configs/selfboottok_fmnist.py --steps 10

Times, in one process, each as the median of --steps jitted calls after warm-up:
  step         the full tokenizer train step (forward, backward, AdamW, EMA, restarts);
  ot           the two Sinkhorn solves of a step (image side: patch features vs prototypes;
               generate side: the aligner's 2D prediction vs prototypes) at the step's shapes,
               on the step's real inputs (taken from the initialised model);
  aligner      the aligner's forward + backward (its params' gradient of its two losses);
  titok_step   the same encoder/decoder as TiTok with G tokens (configs/..:titok), for scale.
Shares are component time / step time (components run alone, so they are estimates: inside
the step XLA may overlap or fuse them). Records go to results.jsonl (name, metric, value,
unit, config, device, date, command, ...).
"""
import argparse
import datetime
import importlib.util
import json
import os
import shlex
import sys

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, _ROOT)

import jax  # pylint: disable=g-import-not-at-top,wrong-import-position
import jax.numpy as jnp  # pylint: disable=wrong-import-position
import numpy as np  # pylint: disable=wrong-import-position

from benchmarks import records as records_lib  # pylint: disable=wrong-import-position
from benchmarks import throughput  # pylint: disable=wrong-import-position
from sbt_jax import sharding  # pylint: disable=wrong-import-position
from sbt_jax.models import ot_pool  # pylint: disable=wrong-import-position
from sbt_jax.trainers import setup  # pylint: disable=wrong-import-position
from sbt_jax.trainers import tokenizer  # pylint: disable=wrong-import-position


def load_config(path_and_arg):
  path, _, arg = path_and_arg.partition(':')
  spec = importlib.util.spec_from_file_location('bench_config', os.path.join(_ROOT, path))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg or None)


def _step_time(config, batch, steps, warmup):
  mesh = sharding.make_mesh(config.mesh, jax.devices()[:1])
  task = tokenizer.TokenizerTask(config, mesh)
  # Exactly the step training compiles (shardings, donated state; trainers/setup.py).
  prepared = setup.prepare(task, config, mesh, frozen={'lpips': None})
  images = sharding.global_batch({'image': np.random.RandomState(0).uniform(
      -1, 1, (batch,) + (config.data.image_size,) * 2 + (config.data.channels,)).astype(
          np.float32)}, mesh)
  med, _ = throughput.time_stateful(
      lambda s, r: prepared.step_fn(s, prepared.frozen, images, r), prepared.state,
      (jax.random.key(0),), steps, warmup)
  return med, task, None, images


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--config', default='configs/selfboottok_fmnist.py')
  p.add_argument('--batch', type=int, default=0, help='0: data.global_batch_size')
  p.add_argument('--steps', type=int, default=10)
  p.add_argument('--warmup', type=int, default=2)
  p.add_argument('--out', default=os.path.join(_ROOT, 'benchmarks', 'results.jsonl'))
  args = p.parse_args(argv)
  config = load_config(args.config)
  config.loss.perceptual_weight = 0.0
  batch = args.batch or config.data.global_batch_size
  step_s, task, state, images = _step_time(config, batch, args.steps, args.warmup)
  model, params = task.model, task.init_state(jax.random.key(0)).params  # (state was donated)

  # Real OT inputs at the step's shapes.
  t = jax.jit(lambda p, x: model.apply({'params': p}, x, method='aligner_targets'))(
      params, images['image'])
  _, f_hat = jax.jit(lambda p, g, pr: model.apply({'params': p}, g, pr,
                                                  method='aligner_predict'))(
      params, t['g_q'], t['protos'])
  cfg = model.ot
  ot_fn = jax.jit(lambda f, fh, pr: (ot_pool.ot_pool(f, pr, cfg),
                                     ot_pool.ot_pool(fh, pr, cfg)))
  ot_s, _ = throughput.time_calls(ot_fn, (t['f'], f_hat, t['protos']), args.steps,
                                  args.warmup)
  iters = ot_fn(t['f'], f_hat, t['protos'])
  ot_iters = [float(iters[0][3]['ot_iterations']), float(iters[1][3]['ot_iterations'])]

  def aligner_loss(al, p, g, pr, f, ids):
    logits, fh = model.apply({'params': {**p, 'aligner': al}}, g, pr, method='aligner_predict')
    ce = -jnp.take_along_axis(jax.nn.log_softmax(logits), ids[..., None], -1)
    return jnp.mean(jnp.sum(jnp.square(fh - f), -1)) + jnp.mean(ce)
  al_fn = jax.jit(jax.grad(aligner_loss))
  # (this includes the generate-side OT solve, which the aligner's head consumes)
  al_s, _ = throughput.time_calls(al_fn, (params['aligner'], params, t['g_q'], t['protos'],
                                          t['f'], t['local_ids']), args.steps, args.warmup)
  titok_s = None
  if args.config.startswith('configs/selfboottok_fmnist.py'):
    titok_cfg = load_config('configs/selfboottok_fmnist.py:titok')
    titok_s = _step_time(titok_cfg, batch, args.steps, args.warmup)[0]

  command = 'python ' + ' '.join(shlex.quote(a) for a in [
      'benchmarks/selfboottok_share.py'] + (argv if argv is not None else sys.argv[1:]))
  common = dict(config=args.config, batch=batch, device=throughput.device_description(),
                jax_version=jax.__version__, git=records_lib.git_revision(),
                date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
                command=command, loadavg_1m=os.getloadavg()[0],
                ot=dict(epsilon_rel=cfg.epsilon_rel, max_iterations=cfg.max_iterations,
                        threshold=cfg.threshold, mean_iterations=ot_iters))
  records = [
      dict(common, name='selfboottok/train_step', metric='step_time', value=step_s, unit='s'),
      dict(common, name='selfboottok/ot_solves', metric='step_time', value=ot_s, unit='s'),
      dict(common, name='selfboottok/ot_share', metric='share_of_step', value=ot_s / step_s,
           unit='fraction'),
      dict(common, name='selfboottok/aligner_fwd_bwd', metric='step_time', value=al_s,
           unit='s', note='includes the generate-side OT solve'),
      dict(common, name='selfboottok/aligner_share', metric='share_of_step',
           value=al_s / step_s, unit='fraction', note='includes the generate-side OT solve'),
  ]
  if titok_s is not None:
    records.append(dict(common, name='titok_g8/train_step', metric='step_time', value=titok_s,
                        unit='s', note='configs/selfboottok_fmnist.py:titok (same enc/dec)'))
  for r in records:
    print(json.dumps({k: r[k] for k in ('name', 'value', 'unit')}))
  records_lib.append_records(args.out, records)


if __name__ == '__main__':
  main()
