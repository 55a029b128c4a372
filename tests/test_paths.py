"""gs:// everywhere: every stage and command on a fake Cloud Storage (tests/fake_gcs.py), and
no builtin open()/os.path on a user's path anywhere in sbt_jax (all go through paths.py)."""
import json
import os
import pathlib
import re

import numpy as np
import pytest

from configs import generator_fmnist
from configs import titok_fmnist
from sbt_jax import evaluate
from sbt_jax import paths
from sbt_jax import runs
from sbt_jax.sampling import generate
from sbt_jax.sampling import restored
from sbt_jax.trainers import loop
from tests import fake_gcs

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / 'sbt_jax'

# What may touch the local file system directly: paths.py itself, and the builders of the
# Debian-packaged datasets (they read /usr/share files that launch/setup.sh installs).
ALLOWED = {'paths.py', 'data/fashion_mnist_deb.py', 'data/photo_tiles_deb.py'}
FORBIDDEN = {
    'builtin open()': re.compile(r'(?<![\w.])open\('),
    'os.path': re.compile(r'\bos\.path\b'),
    'pathlib': re.compile(r'\bpathlib\b'),
    'os file operations': re.compile(
        r'\bos\.(makedirs|mkdir|replace|rename|remove|unlink|listdir|scandir|walk|stat)\('),
    'shutil': re.compile(r'\bshutil\b'),
    'np.savez to a path': re.compile(r'\bnp\.savez(_compressed)?\('),
    'np.load of a path': re.compile(r'\bnp\.load\((?!raw\b|io\.BytesIO|f\b)'),
    'PIL on a path': re.compile(r'\bImage\.open\((?!raw\b|f\b|io\.BytesIO)'),
}


def _code_lines(path: pathlib.Path):
  """(line number, code) of a file, comments removed."""
  for number, line in enumerate(path.read_text().splitlines(), 1):
    yield number, line.split('#', 1)[0]


def test_no_direct_file_access_outside_paths_module():
  found = []
  for path in sorted(PACKAGE.rglob('*.py')):
    rel = path.relative_to(PACKAGE).as_posix()
    if rel in ALLOWED:
      continue
    for number, code in _code_lines(path):
      found += [f'{rel}:{number}: {what}: {code.strip()}'
                for what, pattern in FORBIDDEN.items() if pattern.search(code)]
  assert not found, 'use sbt_jax/paths.py for user paths:\n' + '\n'.join(found)


def test_the_grep_finds_what_it_forbids(tmp_path):
  """The patterns catch the forms they are for (and let paths.py's own forms through)."""
  bad = ["with open(p) as f:", "os.path.join(a, b)", "np.savez(p, x=x)", "np.load(p)",
         "Image.open(p)", "os.makedirs(d)", "import pathlib"]
  good = ["with paths.open_file(p, 'rb') as raw, np.load(raw) as d:", "Image.open(f)",
          "image_grid.save_png(p, x)", "zf.open(name)"]
  hits = lambda code: [w for w, pattern in FORBIDDEN.items() if pattern.search(code)]
  assert all(hits(code) for code in bad)
  assert not any(hits(code) for code in good)


def test_paths_helpers_on_local_and_fake_gcs(tmp_path):
  with fake_gcs.mounted(tmp_path / 'gcs') as fs:
    for root in (str(tmp_path / 'local'), 'gs://bucket/x'):
      f = paths.join(root, 'a', 'b.npz')
      paths.save_npz(f, ids=np.arange(3))
      np.testing.assert_array_equal(paths.load_npz(f)['ids'], np.arange(3))
      paths.write_json(paths.join(root, 'r.json'), {'k': 1})
      assert paths.read_json(paths.join(root, 'r.json')) == {'k': 1}
      assert paths.isdir(paths.join(root, 'a')) and paths.isfile(f)
      assert not paths.isfile(paths.join(root, 'a')) and not paths.exists(f + '.tmp')
      assert paths.listdir(root) == [paths.join(root, 'a'), paths.join(root, 'r.json')]
      assert paths.name(f) == 'b.npz' and paths.stem(f) == 'b'
    assert os.path.isfile(fs.local('gs://bucket/x/a/b.npz'))
    assert paths.resolve('gs://bucket/x') == 'gs://bucket/x'
    with pytest.raises(ValueError, match='not valid JSON'):
      paths.write_text('gs://bucket/bad.json', '{')
      paths.read_json('gs://bucket/bad.json')


def test_every_stage_and_command_on_gs(fmnist_data_dir, tmp_path):
  """tokenizer -> generator (token cache) -> sample -> evaluate, every workdir and output
  on gs://; nothing of it lands on the local disk outside the fake bucket."""
  tok_dir, gen_dir = 'gs://bucket/runs/tok', 'gs://bucket/runs/gen'
  cwd = os.getcwd()
  os.chdir(tmp_path)  # a relative write (a bug) would land here; checked at the end
  try:
    with fake_gcs.mounted(tmp_path / 'gcs') as fs:
      c = titok_fmnist.get_config('runlocal')
      c.data.data_dir = fmnist_data_dir
      c.loss.perceptual_weight = 0.0
      c.train.num_steps, c.train.eval_every, c.train.checkpoint_every = 2, -1, 2
      loop.train_and_evaluate(c, tok_dir)
      assert runs.load_config(tok_dir).stage == 'tokenizer'

      g = generator_fmnist.get_config('runlocal')
      g.data.data_dir = fmnist_data_dir
      g.generator.tokenizer_workdir = tok_dir
      g.generator.use_token_cache = True
      g.generator.attention_impl = 'xla'
      g.train.num_steps, g.train.checkpoint_every = 2, 2
      loop.train_and_evaluate(g, gen_dir)
      assert runs.read_tokenizer_record(gen_dir) == (tok_dir, 2)
      caches = paths.listdir(paths.join(gen_dir, 'token_cache'))
      assert caches and all(p.startswith('gs://bucket/runs/gen/token_cache/') for p in caches)

      gen = restored.RestoredGenerator(gen_dir)
      labels = generate.class_balanced_labels(10, gen.num_classes)
      images, ids = gen.sample(labels, seed=0)
      written = restored.write_samples('gs://bucket/samples', images, labels, ids,
                                       gen.num_classes)
      assert written['npz'] == 'gs://bucket/samples/samples.npz'
      assert paths.load_npz(written['npz'])['ids'].shape == ids.shape

      out = evaluate.evaluate(tok_dir, ['psnr', 'fd_vgg', 'codebook'], num_images=8,
                              sample_fn=gen.sample_fn(), num_samples=10,
                              save_reference='gs://bucket/reference')
      assert out['files']['json'].startswith(tok_dir + '/eval/')
      assert paths.read_json(out['files']['json'])['step'] == 2

      local = lambda p: fs.local(p)
      for f in ('runs/tok/config.json', 'runs/tok/metrics.jsonl', 'runs/gen/tokenizer.json',
                'runs/gen/images/samples_0000002.png', 'samples/grid.png',
                'samples/samples.npz', 'reference/vgg16_relu5_3_gap.npz'):
        assert os.path.isfile(local('gs://bucket/' + f)), f
      assert os.listdir(local(tok_dir + '/checkpoints')) == ['2']
      assert sorted(os.listdir(local(gen_dir + '/checkpoints'))) == ['2']
      with open(local(tok_dir + '/metrics.jsonl')) as f:
        assert any('train/loss' in json.loads(line) for line in f)
      assert any(p.startswith(gen_dir + '/checkpoints') for p in fs.touched)
  finally:
    os.chdir(cwd)
  assert sorted(os.listdir(tmp_path)) == ['gcs']
