"""benchmarks/run_steps.sh's archive and restore, through selfboottok_horizon.sh, with a fake
python that writes what each step would (no training)."""
import os
import subprocess

import pytest

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Stands in for .venv/bin/python: logs its arguments, writes each step's output files.
_FAKE_PYTHON = r'''#!/usr/bin/env bash
echo "$*" >> "$CALLS"
arg() { local k=$1; shift; while [ $# -gt 0 ]; do [ "$1" = "$k" ] && { echo "$2"; return; }; shift; done; }
case "$*" in
  *sbt_jax.main*) w=$(arg --workdir "$@"); mkdir -p "$w/checkpoints/3000"
    echo '{"eval/loss": 1.5}' > "$w/eval_final.json"; echo ckpt > "$w/checkpoints/3000/x" ;;
  *sbt_jax.evaluate*) d=$(arg --out_dir "$@"); mkdir -p "$d"
    echo '{"metrics": {"psnr": 15.0}}' > "$d/results.json" ;;
  *generator_fd.py*) g=$(arg --gen_workdirs "$@") t=$(arg --tokenizer_workdir "$@")
    d=$g/eval_fd/n10000${t:+_$(basename "$t")}
    [ -z "$(arg --aligner_workdir "$@")" ] || d=$g/eval_fd/n10000_aligner
    mkdir -p "$d"; echo '{"metrics": {"gfd_vgg@10000": 20.0}}' > "$d/results.json" ;;
  *) echo "unexpected: $*" >&2; exit 3 ;;
esac
'''


def _drive(tmp_path, seeds_root, *seeds, script='selfboottok_horizon.sh', **extra_env):
  fake = tmp_path / 'python'
  fake.write_text(_FAKE_PYTHON)
  fake.chmod(0o755)
  calls = tmp_path / 'calls.txt'
  calls.write_text('')
  env = dict(os.environ, PYTHON=str(fake), CALLS=str(calls), SEEDS_ROOT=str(seeds_root),
             ADV_ROOT=str(seeds_root.parent / 'adv'), ARCHIVE=str(tmp_path / 'runs'),
             RESULTS=str(tmp_path / 'r.jsonl'), SBT_VARIANT='', **extra_env)
  subprocess.run(['bash', f'benchmarks/{script}', *seeds], cwd=_ROOT, env=env,
                 check=True, capture_output=True, text=True)
  return calls.read_text().splitlines()


def _files(root):
  return sorted(os.path.relpath(os.path.join(d, f), root)
                for d, _, fs in os.walk(root) for f in fs)


def test_finished_runs_are_archived_without_checkpoints_and_restored_elsewhere(tmp_path):
  calls = _drive(tmp_path, tmp_path / 'machine1' / 'seeds', '0')
  # Per row: train, eval(s), MaskGIT, gFD; SelfBootTok has a generate-mode eval too.
  assert len(calls) == 4 + 5
  assert _files(tmp_path / 'runs') == [
      'seeds/gen_sbt_ot_3x_s0/eval_fd/n10000/results.json',
      'seeds/gen_sbt_ot_3x_s0/eval_final.json',
      'seeds/gen_titok8_3x_s0/eval_fd/n10000/results.json',
      'seeds/gen_titok8_3x_s0/eval_final.json',
      'seeds/sbt_ot_3x_s0/eval/test_all/results.json',
      'seeds/sbt_ot_3x_s0/eval/test_all_generate/results.json',
      'seeds/sbt_ot_3x_s0/eval_final.json',
      'seeds/titok8_3x_s0/eval/test_all/results.json',
      'seeds/titok8_3x_s0/eval_final.json']

  # A new checkout (empty workdirs but one file, same archive): nothing runs, the results
  # are back, and the file that was there is kept.
  machine2 = tmp_path / 'machine2' / 'seeds'
  mine = machine2 / 'titok8_3x_s0' / 'eval' / 'test_all' / 'results.json'
  mine.parent.mkdir(parents=True)
  mine.write_text('mine')
  assert _drive(tmp_path, machine2, '0') == []
  assert _files(machine2) == [f.split('/', 1)[1] for f in _files(tmp_path / 'runs')]
  assert mine.read_text() == 'mine'
  assert (machine2 / 'titok8_3x_s0' / 'eval_final.json').read_text() == (
      tmp_path / 'runs' / 'seeds' / 'titok8_3x_s0' / 'eval_final.json').read_text()


def test_a_row_is_restored_only_with_its_generator(tmp_path):
  _drive(tmp_path, tmp_path / 'machine1' / 'seeds', '0')
  # The generator's results did not make it into the archive: restoring the tokenizer
  # alone would leave its MaskGIT nothing to encode with, so the whole row runs again.
  for f in _files(tmp_path / 'runs' / 'seeds' / 'gen_titok8_3x_s0'):
    os.remove(tmp_path / 'runs' / 'seeds' / 'gen_titok8_3x_s0' / f)
  machine2 = tmp_path / 'machine2' / 'seeds'
  calls = _drive(tmp_path, machine2, '0')
  assert len(calls) == 4
  assert all('titok8_3x_s0' in c for c in calls)
  assert '--config configs/selfboottok_fmnist.py:titok' in calls[0]
  assert (machine2 / 'titok8_3x_s0' / 'checkpoints').is_dir()  # trained, not restored
  assert not (machine2 / 'sbt_ot_3x_s0' / 'checkpoints').exists()  # restored


def test_the_seeds_driver_archives_each_of_its_four_rows(tmp_path):
  calls = _drive(tmp_path, tmp_path / 'machine1' / 'seeds', '1',
                 script='selfboottok_seeds.sh')
  assert len(calls) == 4 * 4 + 2  # + SelfBootTok's two generate-mode evals
  archived = _files(tmp_path / 'runs')
  assert 'adv/gen_titok8_s1/eval_fd/n10000/results.json' in archived
  for run in ('titok16_s1', 'sbt_ot_s1', 'sbt_latent_s1'):
    assert f'seeds/gen_{run}/eval_final.json' in archived
  assert 'seeds/sbt_latent_s1/eval/test_all_generate/results.json' in archived
  assert _drive(tmp_path, tmp_path / 'machine2' / 'seeds', '1',
                script='selfboottok_seeds.sh') == []


def test_variants_retrain_the_archived_base_run_they_need_checkpoints_of(tmp_path):
  _drive(tmp_path, tmp_path / 'machine1' / 'seeds', '0', script='selfboottok_seeds.sh')
  # A new checkout: sbt_ot_s0, TiTok-8 and their MaskGITs come back from the archive,
  # without the checkpoints the fine-tunes and the aligner start from: trained again.
  machine2 = tmp_path / 'machine2' / 'seeds'
  calls = _drive(tmp_path, machine2, '0', script='selfboottok_variants.sh')
  trained = [c.split('--workdir ')[1].split()[0] for c in calls if 'sbt_jax.main' in c]
  assert [os.path.basename(w) for w in trained] == [
      'sbt_ema_s0', 'gen_sbt_ema_s0', 'sbt_softlocal_s0', 'gen_sbt_softlocal_s0',
      'sbt_ot_s0', 'gen_sbt_ot_s0', 'sbt_ot_ft_s0', 'sbt_ot_aligner_s0',
      'sbt_ot_ft_nogen_s0', 'sbt_ot_ft_nod_s0', 'titok8_s0', 'gen_titok8_s0', 'titok8_ft_s0',
      'titok8_ft_nod_s0']
  archived = _files(tmp_path / 'runs')
  for f in ('seeds/sbt_ot_ft_s0/eval/test_all_generate/results.json',
            'seeds/sbt_ot_aligner_s0/eval_final.json',
            'seeds/sbt_ot_s0/eval/test_all_generate_aligner_t1/results.json',
            'seeds/gen_sbt_ot_s0/eval_fd/n10000_aligner/results.json',
            'seeds/gen_sbt_ot_s0/eval_fd/n10000_sbt_ot_ft_s0/results.json',
            'seeds/gen_sbt_softlocal_s0/eval_fd/n10000/results.json',
            'adv/titok8_ft_s0/eval/test_all/results.json',
            'seeds/sbt_ot_ft_nod_s0/eval/test_all_generate/results.json',
            'seeds/gen_sbt_ot_s0/eval_fd/n10000_sbt_ot_ft_nogen_s0/results.json',
            'adv/gen_titok8_s0/eval_fd/n10000_titok8_ft_s0/results.json',
            'adv/gen_titok8_s0/eval_fd/n10000_titok8_ft_nod_s0/results.json'):
    assert f in archived, f
  # A third checkout: everything comes from the archive, nothing runs.
  assert _drive(tmp_path, tmp_path / 'machine3' / 'seeds', '0',
                script='selfboottok_variants.sh') == []
  assert (tmp_path / 'machine3' / 'seeds' / 'gen_sbt_ot_s0' / 'eval_fd' / 'n10000_aligner'
          / 'results.json').exists()


def test_variants_without_the_base_run_say_so_in_one_line(tmp_path):
  with pytest.raises(subprocess.CalledProcessError) as e:
    _drive(tmp_path, tmp_path / 'seeds', '0', script='selfboottok_variants.sh')
  assert e.value.returncode == 2
  assert e.value.stderr.strip().endswith('sbt_ot_s0: run selfboottok_seeds.sh 0 first')
  assert (tmp_path / 'calls.txt').read_text() == ''


def test_variants_run_only_the_readings_asked_for(tmp_path):
  machine1 = tmp_path / 'machine1' / 'seeds'
  _drive(tmp_path, machine1, '0', script='selfboottok_seeds.sh')
  calls = _drive(tmp_path, machine1, '0', script='selfboottok_variants.sh',
                 READINGS='titok8_ft')
  # The base runs' checkpoints are here: only the two fine-tunes (with D, then without),
  # each with its eval and its gFD, run.
  assert len(calls) == 6 and all('titok8_ft_s0' in c for c in calls[:3])
  assert all('titok8_ft_nod_s0' in c for c in calls[3:])
  assert '--config configs/selfboottok_fmnist.py:titok,finetune' in calls[0]
  assert calls[0].endswith(f'--config.train.init_from={tmp_path}/machine1/adv/titok8_s0 '
                           '--config.train.eval_num_images=1000')
  assert calls[3].endswith(f'--config.train.init_from={tmp_path}/machine1/adv/titok8_s0 '
                           '--config.adversarial.enabled=False '
                           '--config.train.eval_num_images=1000')
  assert not (machine1 / 'sbt_ema_s0').exists()
  assert 'ema' not in ' '.join(_drive(tmp_path, machine1, '0', script='selfboottok_variants.sh',
                                      READINGS='from_ot softlocal'))
  # The fine-tune's two halves: with D but no generate-mode training, and the reverse.
  calls = _drive(tmp_path, machine1, '0', script='selfboottok_variants.sh', READINGS='ft_parts')
  trains = [c for c in calls if 'sbt_jax.main' in c]
  assert len(calls) == 8 and len(trains) == 2
  assert 'sbt_ot_ft_nogen_s0' in trains[0] and '--config.loss.w_generate=0' in trains[0]
  assert 'sbt_ot_ft_nod_s0' in trains[1] and '--config.adversarial.enabled=False' in trains[1]
  assert all(':finetune' in c and 'init_from=' in c for c in trains)
  with pytest.raises(subprocess.CalledProcessError) as e:
    _drive(tmp_path, machine1, '0', script='selfboottok_variants.sh', READINGS='ema emma')
  assert e.value.returncode == 2
  assert e.value.stderr.strip() == (
      "READINGS: unknown reading 'emma' (choose from ema softlocal from_ot ft_parts titok8_ft)")
