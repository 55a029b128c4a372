"""launch/*.sh: shellcheck-clean, and --dry-run prints every command without running any."""
import os
import shlex
import shutil
import subprocess

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = ['launch/tpu.sh', 'launch/gpu.sh', 'launch/setup.sh', '.ci/run',
           'benchmarks/run_all.sh', 'benchmarks/run_steps.sh', 'benchmarks/adversarial_fmnist.sh',
           'benchmarks/selfboottok_seeds.sh', 'benchmarks/official_side_by_side.sh']


def _run(args, tmp_path):
  """Runs a launch script with a `gcloud` on PATH that records any real call."""
  fake_bin = tmp_path / 'bin'
  fake_bin.mkdir(exist_ok=True)
  gcloud = fake_bin / 'gcloud'
  gcloud.write_text(f'#!/bin/sh\necho "$@" >> {tmp_path}/gcloud_called\nexit 1\n')
  gcloud.chmod(0o755)
  env = dict(os.environ, PATH=f'{fake_bin}:{os.environ["PATH"]}', USER='tester')
  result = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=60, check=False)
  assert not (tmp_path / 'gcloud_called').exists(), 'dry run called gcloud'
  return result


def _commands(stdout):
  """The printed '+ cmd ...' lines, split back into argument lists."""
  return [shlex.split(line[2:]) for line in stdout.splitlines() if line.startswith('+ ')]


def test_shellcheck_is_clean():
  if shutil.which('shellcheck') is None:
    pytest.fail('shellcheck is not installed: run launch/setup.sh as root '
                '(apt-get install shellcheck)')
  result = subprocess.run(['shellcheck', *SCRIPTS], cwd=REPO, capture_output=True,
                          text=True, check=False)
  assert result.returncode == 0, result.stdout + result.stderr


def test_tpu_dry_run_prints_the_whole_launch(tmp_path):
  with open(os.path.join(REPO, 'requirements.txt')) as f:
    jax_version = next(l.split('==')[1].strip() for l in f if l.startswith('jax=='))
  result = _run(['launch/tpu.sh', 'all', 'delete', '--dry-run', '--name', 'pod1',
                 '--zone', 'us-central2-b', '--accelerator', 'v4-32', '--spot',
                 '--config', 'configs/titok_imagenet256.py:b64',
                 '--workdir', 'gs://bucket/titok_b64', '--',
                 '--config.data.data_dir=gs://bucket/tfds', '--config.train.num_steps=100'],
                tmp_path)
  assert result.returncode == 0, result.stderr
  cmds = _commands(result.stdout)
  tpu = ['gcloud', 'compute', 'tpus', 'tpu-vm']
  create, archive, scp, unpack, install, run, logs, delete = cmds
  assert create == tpu + ['create', 'pod1', '--zone', 'us-central2-b', '--accelerator-type',
                          'v4-32', '--version', 'tpu-ubuntu2204-base', '--spot']
  assert archive[:2] == ['git', 'archive'] and archive[-1] == 'HEAD'
  assert scp[:6] == tpu + ['scp', archive[archive.index('-o') + 1]]
  for cmd in (scp, unpack, install, run):
    assert cmd[4] in ('scp', 'ssh') and '--worker=all' in cmd
  assert f"'jax[tpu]=={jax_version}'" in install[-1] and '-r requirements.txt' in install[-1]
  main = shlex.split(run[-1].split('nohup ')[1].split(' >')[0])
  assert main == ['python3', '-m', 'sbt_jax.main', '--config',
                  'configs/titok_imagenet256.py:b64', '--workdir', 'gs://bucket/titok_b64',
                  '--distributed', '--config.data.data_dir=gs://bucket/tfds',
                  '--config.train.num_steps=100']
  assert logs[4:6] == ['ssh', 'pod1'] and '--worker=0' in logs and 'tail' in logs[-1]
  assert delete == tpu + ['delete', 'pod1', '--zone', 'us-central2-b', '--quiet']


def test_tpu_setup_from_a_repo_clones_on_every_worker(tmp_path):
  result = _run(['launch/tpu.sh', 'setup', '--dry-run', '--repo',
                 'https://example.org/sbt_jax.git', '--branch', 'issue6'], tmp_path)
  assert result.returncode == 0, result.stderr
  clone = _commands(result.stdout)[0]
  assert '--worker=all' in clone
  assert 'git clone --depth 1 --branch issue6 https://example.org/sbt_jax.git' in clone[-1]


def test_tpu_errors_name_the_problem(tmp_path):
  result = _run(['launch/tpu.sh', 'run', '--dry-run', '--workdir', '/local/dir'], tmp_path)
  assert result.returncode == 2 and 'gs://' in result.stderr
  result = _run(['launch/tpu.sh', '--dry-run'], tmp_path)
  assert result.returncode == 2 and 'no step' in result.stderr
  result = _run(['launch/tpu.sh', 'create', '--acelerator', 'v4-8'], tmp_path)
  assert result.returncode == 2 and "'--acelerator'" in result.stderr


def test_gpu_dry_run(tmp_path):
  result = _run(['launch/gpu.sh', '--dry-run', '--workdir', 'workdirs/w', '--gpus', '0,1',
                 '--', '--config.train.num_steps=10'], tmp_path)
  assert result.returncode == 0, result.stderr
  (cmd,) = _commands(result.stdout)
  assert cmd == ['env', 'CUDA_VISIBLE_DEVICES=0,1', '.venv/bin/python', '-m', 'sbt_jax.main',
                 '--config', 'configs/titok_imagenet256.py:s128', '--workdir', 'workdirs/w',
                 '--config.train.num_steps=10']
