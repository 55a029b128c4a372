"""`python -m sbt_jax.main` as real processes: 2 JAX processes (gloo) match one 8-device run
and stop together on SIGTERM; SIGKILL and SIGTERM mid-run, then the same command resumes to
bit-identical params."""
import json
import os
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from configs import titok_fmnist
from sbt_jax import checkpointing
from sbt_jax import sharding
from sbt_jax.trainers import loop
from sbt_jax.trainers import setup
from sbt_jax.trainers import tokenizer

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Overrides shared by the subprocesses and the in-process reference runs.
OVERRIDES = {'loss.perceptual_weight': 0.0, 'train.eval_every': -1, 'train.log_every': 1,
             'data.global_batch_size': 8}


def _config(data_dir, **overrides):
  c = titok_fmnist.get_config('runlocal')
  for key, value in {'data.data_dir': data_dir, **OVERRIDES, **overrides}.items():
    section, field = key.split('.')
    c[section][field] = value
  return c


def _command(workdir, data_dir, *flags, **overrides):
  cmd = [sys.executable, '-m', 'sbt_jax.main', '--config', 'configs/titok_fmnist.py:runlocal',
         '--workdir', workdir, *flags]
  for key, value in {'data.data_dir': data_dir, **OVERRIDES, **overrides}.items():
    cmd.append(f'--config.{key}={value}')
  return cmd


def _start(cmd, log_path):
  env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL='3')
  with open(log_path, 'w') as log:
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)


def _wait(proc, log_path, timeout=240):
  try:
    proc.wait(timeout=timeout)
  except subprocess.TimeoutExpired:
    proc.kill()
    raise
  with open(log_path) as f:
    return proc.returncode, f.read()


def _free_port():
  with socket.socket() as s:
    s.bind(('localhost', 0))
    return s.getsockname()[1]


def _losses(workdir):
  path = os.path.join(workdir, 'metrics.jsonl')
  if not os.path.exists(path):
    return []
  with open(path) as f:
    rows = [json.loads(line) for line in f]
  return [(r['step'], r['train/loss']) for r in rows if 'train/loss' in r]


def _steps(workdir):
  ckpt_dir = os.path.join(workdir, 'checkpoints')
  if not os.path.isdir(ckpt_dir):
    return []
  return sorted(int(n) for n in os.listdir(ckpt_dir) if n.isdigit())


# The 2-process run is stopped by SIGTERM after a few steps, long before its end.
TWO_PROCESS_RUN = {'train.num_steps': 30, 'train.checkpoint_every': 1000}


def test_two_processes_match_one_process_and_stop_together(fmnist_data_dir, tmp_path):
  """2 processes x 4 CPU devices (gloo) train like 1 process x 8 devices; SIGTERM to one
  process stops both at the same step with one checkpoint."""
  workdir = str(tmp_path / 'two_procs')
  port = _free_port()
  procs = []
  for pid in range(2):
    cmd = _command(workdir, fmnist_data_dir, '--distributed', '--cpu_devices=4',
                   f'--coordinator_address=localhost:{port}', '--num_processes=2',
                   f'--process_id={pid}', **{k: str(v) for k, v in TWO_PROCESS_RUN.items()})
    log = str(tmp_path / f'process{pid}.log')
    procs.append((_start(cmd, log), log))
  deadline = time.time() + 240
  while (len(_losses(workdir)) < 3 and all(p.poll() is None for p, _ in procs)
         and time.time() < deadline):
    time.sleep(0.05)
  procs[1][0].send_signal(signal.SIGTERM)  # A preemption notice reaches one host only.
  stopped_at = []
  for proc, log in procs:
    rc, text = _wait(proc, log)
    assert rc == 0, text[-3000:]
    stopped_at.append(int(text.split('Preempted: stopped after step ')[1].split()[0]))
  assert 'process 1/2, 4 local / 8 global devices' in open(procs[1][1]).read()
  step = stopped_at[0]
  assert stopped_at == [step, step] and 3 <= step < TWO_PROCESS_RUN['train.num_steps']
  # Both processes wrote their part of the one checkpoint, at the step they stopped.
  assert _steps(workdir) == [step]
  data_iter_files = os.listdir(os.path.join(workdir, 'checkpoints', str(step), 'data_iter'))
  assert {'process_0-of-2.json', 'process_1-of-2.json'} <= set(data_iter_files)
  reference_dir = str(tmp_path / 'one_proc')
  loop.train_and_evaluate(_config(fmnist_data_dir, **TWO_PROCESS_RUN), reference_dir)
  two, one = _losses(workdir), _losses(reference_dir)[:step]
  # Process 0 alone wrote metrics: one row per step, not two.
  assert [s for s, _ in two] == [s for s, _ in one] == list(range(1, step + 1))
  np.testing.assert_allclose([l for _, l in two], [l for _, l in one], rtol=1e-5)


# Long enough that a kill lands mid-run; cheap steps (runlocal model, 1 device).
KILL_RUN = {'train.num_steps': 40, 'train.checkpoint_every': 5}


def _restore_state(config, workdir):
  mesh = sharding.make_mesh(config.mesh, jax.devices()[:1])
  task = tokenizer.TokenizerTask(config, mesh)
  ckpt = checkpointing.Checkpointer(workdir, async_save=False, with_data_iter=False)
  try:
    return jax.device_get(setup.restore_state(task, config, mesh, ckpt))
  finally:
    ckpt.close()


@pytest.fixture(scope='module')
def interrupted_runs(fmnist_data_dir, tmp_path_factory):
  """One workdir trained by three processes: SIGKILLed after a checkpoint, resumed and
  SIGTERMed mid-run, resumed to the end; plus the same command run uninterrupted."""
  tmp = tmp_path_factory.mktemp('interrupted')
  workdir = str(tmp / 'w')
  cmd = _command(workdir, fmnist_data_dir, '--cpu_devices=1',
                 **{k: str(v) for k, v in KILL_RUN.items()})
  logs = [str(tmp / f'run{i}.log') for i in range(3)]
  out = {'workdir': workdir}
  # The reference is the same command, uninterrupted (a process with 8 fake devices
  # compiles slightly different CPU code, so it is not compared with this test process).
  reference_dir, reference_log = str(tmp / 'reference'), str(tmp / 'reference.log')
  reference = _start(_command(reference_dir, fmnist_data_dir, '--cpu_devices=1',
                              **{k: str(v) for k, v in KILL_RUN.items()}), reference_log)

  proc = _start(cmd, logs[0])
  deadline = time.time() + 240
  while not _steps(workdir) and proc.poll() is None and time.time() < deadline:
    time.sleep(0.01)
  proc.send_signal(signal.SIGKILL)
  out['killed'] = _wait(proc, logs[0]) + (_steps(workdir),)

  logged_before = len(_losses(workdir))
  proc = _start(cmd, logs[1])
  while (len(_losses(workdir)) < logged_before + 2 and proc.poll() is None
         and time.time() < deadline):
    time.sleep(0.01)
  proc.send_signal(signal.SIGTERM)
  out['preempted'] = _wait(proc, logs[1]) + (_steps(workdir), _losses(workdir)[-1][0])

  out['finished'] = _wait(_start(cmd, logs[2]), logs[2])
  config = _config(fmnist_data_dir, **KILL_RUN)
  out['final'] = _restore_state(config, workdir)
  rc, log = _wait(reference, reference_log)
  assert rc == 0, log[-3000:]
  out['reference'] = _restore_state(config, reference_dir)
  return out


def test_sigkill_mid_run_then_restart_resumes(interrupted_runs):
  rc, log, steps = interrupted_runs['killed']
  assert rc == -signal.SIGKILL, log[-3000:]
  assert steps and steps[-1] < KILL_RUN['train.num_steps'], steps
  _, resumed_log, _, _ = interrupted_runs['preempted']
  assert f'at step {steps[-1]}' in resumed_log, resumed_log[-3000:]


def test_sigterm_saves_a_checkpoint_and_exits_cleanly(interrupted_runs):
  rc, log, steps, last_logged = interrupted_runs['preempted']
  assert rc == 0, log[-3000:]
  assert 'Preempted: stopped after step' in log
  # The checkpoint is of the step it stopped at, not the last periodic one.
  assert steps[-1] == last_logged < KILL_RUN['train.num_steps']
  rc, log = interrupted_runs['finished']
  assert rc == 0 and f'at step {steps[-1]}' in log, log[-3000:]


def test_interrupted_run_ends_bit_identical_to_uninterrupted(interrupted_runs):
  final, reference = interrupted_runs['final'], interrupted_runs['reference']
  assert int(final.step) == int(reference.step) == KILL_RUN['train.num_steps']
  for a, b in zip(jax.tree.leaves(reference), jax.tree.leaves(final)):
    np.testing.assert_array_equal(a, b)
