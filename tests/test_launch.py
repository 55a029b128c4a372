"""Every shell script is shellcheck-clean; launch/*.sh --dry-run prints every command without
running any, and the TPU/GPU set-up installs on a Python that every pinned package accepts."""
import importlib.metadata
import os
import re
import shlex
import shutil
import subprocess
import sys

from packaging import requirements as requirements_lib
from packaging import specifiers
from packaging import utils as packaging_utils
from packaging import version as version_lib
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Every shell script of the repository (shellcheck reads the sourced run_steps.sh too).
SCRIPTS = ['.ci/run'] + sorted(
    os.path.relpath(os.path.join(d, f), REPO) for sub in ('launch', 'benchmarks', 'tests')
    for d, _, files in os.walk(os.path.join(REPO, sub)) for f in files if f.endswith('.sh'))


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
  assert install[-1].startswith('set -eo pipefail; cd sbt_jax; ')
  assert _setup_python(install[-1]) >= version_lib.Version('3.11')
  main = shlex.split(run[-1].split('nohup ')[1].split(' >')[0])
  assert main == ['.venv/bin/python', '-m', 'sbt_jax.main', '--config',
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


def _setup_python(line):
  """The Python version that a set-up line makes .venv with; asserts that the line refuses an
  older interpreter before it installs anything."""
  made = re.search(r'"\$uv" venv -q --python (\d+)\.(\d+) \.venv', line)
  check = re.search(r'sys\.version_info < \((\d+), (\d+)\)', line)
  assert made and check and made.groups() == check.groups(), line
  assert line.index('sys.version_info') < line.index('pip install'), line
  return version_lib.Version('.'.join(made.groups()))


def _setup_lines(tmp_path):
  """{'tpu': set-up line of `tpu.sh all --dry-run`, 'gpu': that of `gpu.sh --setup --dry-run`}."""
  tpu = _run(['launch/tpu.sh', 'all', '--dry-run', '--workdir', 'gs://b/w'], tmp_path)
  gpu = _run(['launch/gpu.sh', '--setup', '--dry-run'], tmp_path)
  assert tpu.returncode == 0 and gpu.returncode == 0, tpu.stderr + gpu.stderr
  (tpu_line,) = [c[-1] for c in _commands(tpu.stdout) if 'pip install' in c[-1]]
  (gpu_cmd,) = _commands(gpu.stdout)
  assert gpu_cmd[:2] == ['bash', '-c']
  return {'tpu': tpu_line, 'gpu': gpu_cmd[-1]}


def _pins():
  with open(os.path.join(REPO, 'requirements.txt')) as f:
    lines = [l.split('#')[0].strip() for l in f]
  return dict(l.split('==') for l in lines if l)


def _accelerator_table():
  """{package: (version, Requires-Python or None)} of accelerator_requires_python.txt."""
  with open(os.path.join(REPO, 'accelerator_requires_python.txt')) as f:
    rows = [l.split() for l in f if l.strip() and not l.startswith('#')]
  return {packaging_utils.canonicalize_name(name): (v, None if spec == '-' else spec)
          for name, v, spec in rows}


def _requires_python():
  """{package: Requires-Python} of every pin (read from the installed package: its version
  must be the pin's) and of every accelerator package of the table."""
  found = {}
  for name, pinned in _pins().items():
    try:
      meta = importlib.metadata.metadata(name)
    except importlib.metadata.PackageNotFoundError:
      pytest.fail(f'{name} is pinned but not installed: run launch/setup.sh')
    assert meta['Version'] == pinned, f'{name} {meta["Version"]} installed, {pinned} pinned'
    found[name] = meta['Requires-Python']
  for name, (_, spec) in _accelerator_table().items():
    found[name] = spec
  return {name: specifiers.SpecifierSet(spec or '') for name, spec in found.items()}


def test_accelerator_table_matches_the_pinned_jax_extras():
  table = _accelerator_table()
  local = {packaging_utils.canonicalize_name(n) for n in _pins()}
  for extra in ('tpu', 'cuda12'):
    for line in importlib.metadata.requires('jax'):
      req = requirements_lib.Requirement(line)
      name = packaging_utils.canonicalize_name(req.name)
      if not req.marker or not req.marker.evaluate({'extra': extra}) or name in local:
        continue
      if name not in table:  # a plain dependency installed here (e.g. requests)
        assert importlib.metadata.version(name), f'{name} (jax[{extra}]) is not in the table'
        continue
      assert req.specifier.contains(table[name][0], prereleases=True), (name, req.specifier)


def test_setup_python_satisfies_every_pins_requires_python(tmp_path):
  requires = _requires_python()
  for launcher, line in _setup_lines(tmp_path).items():
    python = _setup_python(line)
    refused = {n: str(s) for n, s in requires.items() if not s.contains(python)}
    assert not refused, f'{launcher} set-up makes Python {python}; these need more: {refused}'
  # The check can fail: tpu-ubuntu2204-base's Python 3.10 is refused by the pins.
  assert [n for n, s in requires.items() if not s.contains('3.10')]


@pytest.mark.parametrize('venv', ['3.11', '3.10', 'none'])
def test_setup_line_checks_the_python_before_installing(tmp_path, venv):
  """Runs the set-up line with a fake uv (logs its calls; `uv venv` links this Python) and a
  .venv whose Python claims `venv` (none: uv makes it)."""
  line = _setup_lines(tmp_path)['gpu']
  home, repo = tmp_path / 'home', tmp_path / 'repo'
  (home / '.local' / 'bin').mkdir(parents=True)
  (repo / '.venv' / 'bin').mkdir(parents=True)
  uv = home / '.local' / 'bin' / 'uv'
  uv.write_text(f'#!/bin/sh\necho "$*" >> "$HOME/uv.log"\n'
                f'[ "$1" != venv ] || ln -s {sys.executable} .venv/bin/python\n')
  uv.chmod(0o755)
  shutil.copy(os.path.join(REPO, 'requirements.txt'), repo)
  if venv != 'none':
    major, minor = venv.split('.')
    python = repo / '.venv' / 'bin' / 'python'
    python.write_text(f'#!/bin/sh\n[ "$1" != -V ] || {{ echo "Python {venv}.4"; exit 0; }}\n'
                      f'exec {sys.executable} -c "import sys; sys.version_info = '
                      f'({major}, {minor}, 4); $2"\n')
    python.chmod(0o755)
  assert line.startswith('set -eo pipefail; ')
  result = subprocess.run(['bash', '-c', line], cwd=repo, capture_output=True, text=True,
                          env=dict(os.environ, HOME=str(home)), timeout=60, check=False)
  calls = (home / 'uv.log').read_text().splitlines() if (home / 'uv.log').exists() else []
  if venv == '3.10':
    assert result.returncode == 1 and not calls
    assert result.stderr.strip() == ('set-up: .venv has Python 3.10.4; the pins of requirements.txt'
                                     ' need Python >= 3.11 (remove .venv and re-run)')
    return
  assert result.returncode == 0, result.stderr
  installs = [c for c in calls if c.startswith('pip install')]
  assert len(installs) == 2 and '-r requirements.txt jax[cuda12]==' in installs[0]
  assert ('venv -q --python 3.11 .venv' in calls) == (venv == 'none')
