"""The command-line tools report a user's mistake in one `error:` line (exit status 2, no
traceback) before any work, and write nothing: each case is one `python -m sbt_jax.X`."""
import json
import os
import subprocess
import sys

import numpy as np
from PIL import Image
import pytest

from sbt_jax import cli
from sbt_jax.data import image_folder

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(module, *args):
  env = dict(os.environ, PYTHONPATH=REPO)
  env.pop(cli._TRACEBACK_ENV, None)  # pylint: disable=protected-access
  return subprocess.run([sys.executable, '-m', module, *map(str, args)], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=300, check=False)


def _error_line(proc) -> str:
  """The `error:` line the tool ended with; fails unless it is a clean user error."""
  assert proc.returncode == cli.EXIT_USER_ERROR, (proc.returncode, proc.stderr[-3000:])
  assert 'Traceback' not in proc.stderr, proc.stderr[-3000:]
  last = [line for line in proc.stderr.splitlines() if line.strip()][-1]
  assert last.startswith('error: '), proc.stderr[-3000:]
  return last


@pytest.fixture(scope='module')
def fake_workdir(tmp_path_factory):
  """A tokenizer 'workdir' holding only config.json: enough for every check that comes
  before restoring (and no checkpoint, for the restore's own error)."""
  from configs import titok_fmnist  # pylint: disable=g-import-not-at-top
  workdir = tmp_path_factory.mktemp('fake_run')
  (workdir / 'config.json').write_text(
      json.dumps(titok_fmnist.get_config('runlocal').to_dict()))
  return workdir


def _good_images(folder):
  folder.mkdir(parents=True, exist_ok=True)
  rs = np.random.RandomState(0)
  Image.fromarray((rs.rand(40, 30, 3) * 255).astype(np.uint8)).save(folder / 'good.png')
  Image.fromarray((rs.rand(28, 28) * 255).astype(np.uint8)).save(folder / 'good.jpg')
  return folder


def _bad_file(folder, kind):
  path = folder / f'{kind}.png'
  if kind == 'truncated':
    data = (folder / 'good.png').read_bytes()
    path.write_bytes(data[:len(data) // 2])
  elif kind == 'empty':
    path.write_bytes(b'')
  else:  # A text file named .png.
    path.write_text('this is not an image\n')
  return path


@pytest.mark.parametrize('module,kinds', [
    ('sbt_jax.reconstruct', ['truncated']),
    ('sbt_jax.reconstruct', ['empty']),
    ('sbt_jax.encode', ['text']),
    ('sbt_jax.reconstruct', ['truncated', 'empty', 'text', 'missing']),
])
def test_unreadable_images_are_named_before_any_work(fake_workdir, tmp_path, module, kinds):
  folder = _good_images(tmp_path / 'images')
  bad = [tmp_path / 'missing.png' if k == 'missing' else _bad_file(folder, k) for k in kinds]
  images = ','.join(map(str, [folder] + [p for p in bad if not p.exists()]))
  out_flag, out = (('--out_dir', tmp_path / 'out' / 'recon') if module.endswith('reconstruct')
                   else ('--out', tmp_path / 'out' / 'ids.npz'))
  line = _error_line(_run(module, '--workdir', fake_workdir, '--images', images, out_flag, out))
  for path in bad:
    assert str(path) in line
  assert 'good.' not in line
  # Reached before the restore: this workdir has no checkpoint to complain about.
  assert 'checkpoint' not in line.lower()
  assert not (tmp_path / 'out').exists()


def test_missing_workdir(tmp_path):
  folder = _good_images(tmp_path / 'images')
  line = _error_line(_run('sbt_jax.reconstruct', '--workdir', tmp_path / 'no_such_run',
                          '--images', folder, '--out_dir', tmp_path / 'out'))
  assert 'no_such_run' in line
  assert not (tmp_path / 'out').exists()


def test_missing_checkpoint_keeps_the_old_output(fake_workdir, tmp_path):
  folder = _good_images(tmp_path / 'images')
  out = tmp_path / 'ids.npz'
  out.write_bytes(b'an earlier result')
  line = _error_line(_run('sbt_jax.encode', '--workdir', fake_workdir, '--images', folder,
                          '--out', out))
  assert 'No checkpoints' in line and str(fake_workdir) in line
  assert out.read_bytes() == b'an earlier result'
  assert sorted(os.listdir(tmp_path)) == ['ids.npz', 'images']


def test_wrong_shaped_ids(fake_workdir, tmp_path):
  ids = tmp_path / 'ids.npz'
  np.savez(ids, ids=np.zeros((2, 5), np.int32))  # This TiTok decodes [B, 8].
  line = _error_line(_run('sbt_jax.decode', '--workdir', fake_workdir, '--ids', ids,
                          '--out_dir', tmp_path / 'out'))
  assert '(2, 5)' in line and '[B, 8]' in line
  assert not (tmp_path / 'out').exists()


@pytest.mark.parametrize('args,message', [
    (['--config', 'configs/titok_fmnist.py:runlocal', '--config.data.channels=2'],
     'Invalid config: data.channels=2'),
    (['--config', 'configs/titok_fmnist.py:runlocal', '--config.data.chanels=1'],
     'Unknown config field --config.data.chanels'),
    (['--config', 'configs/no_such_config.py'], 'no_such_config.py'),
])
def test_main_config_errors(tmp_path, args, message):
  line = _error_line(_run('sbt_jax.main', *args, '--workdir', tmp_path / 'w'))
  assert message in line
  assert not (tmp_path / 'w').exists()


def test_one_line_reduces_an_embedded_traceback():
  text = ('flag --config=c.py:x: Error whilst parsing config file:\n\nTraceback (most recent '
          'call last):\n  File "c.py", line 3\nValueError: Unknown variants')
  assert cli.one_line(text) == ('flag --config=c.py:x: Error whilst parsing config file: '
                                'ValueError: Unknown variants')


def test_decode_images_reports_every_bad_file(tmp_path):
  folder = _good_images(tmp_path)
  bad = [_bad_file(folder, k) for k in ('truncated', 'empty', 'text')]
  files = image_folder.list_images(folder)
  images, problems = image_folder.decode_images(files)
  assert images is None
  reasons = dict(problems)
  assert set(reasons) == set(map(str, bad))
  assert reasons[str(bad[1])] == 'empty file'
  assert reasons[str(bad[2])] == 'not an image file'
  assert 'truncated' in reasons[str(bad[0])]
  with pytest.raises(image_folder.ImageFilesError, match='3 of 5 image files'):
    image_folder.check_decoded(problems, len(files))
  good, problems = image_folder.decode_images([folder / 'good.png'], lambda x: x.shape)
  assert good == [(40, 30, 3)] and not problems


def test_user_errors_are_one_line_and_bugs_keep_their_traceback(capsys, monkeypatch):
  monkeypatch.delenv(cli._TRACEBACK_ENV, raising=False)  # pylint: disable=protected-access
  def user_mistake(argv):
    raise FileNotFoundError('run\nnot found')
  with pytest.raises(SystemExit) as e:
    cli._guarded(user_mistake)(['prog'])  # pylint: disable=protected-access
  assert e.value.code == cli.EXIT_USER_ERROR
  assert capsys.readouterr().err == 'error: run not found\n'
  def bug(argv):
    raise KeyError('internal')
  with pytest.raises(KeyError):
    cli._guarded(bug)(['prog'])  # pylint: disable=protected-access
  monkeypatch.setenv(cli._TRACEBACK_ENV, '1')  # pylint: disable=protected-access
  with pytest.raises(FileNotFoundError):
    cli._guarded(user_mistake)(['prog'])  # pylint: disable=protected-access
