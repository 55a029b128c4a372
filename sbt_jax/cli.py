"""How the command-line tools report a user's mistake: one line, no traceback, exit status 2.

Every `python -m sbt_jax.{main,encode,decode,reconstruct,evaluate,sample}` starts with
`cli.run(main)` instead of absl's `app.run(main)`. A user error (a bad or missing flag, an
unknown --config.x field, a missing run, file or checkpoint, an unreadable image, ...) then
prints

  error: <what is wrong, naming the flag, file or field>

as the last line of stderr and exits with status 2 (EXIT_USER_ERROR). The tools make their
cheap checks (flags, the run's config.json, every input file) before restoring, compiling or
creating any output, with the helpers at the end of this module. User errors are the exceptions the library raises for bad input: `UserError`,
ValueError, OSError (FileNotFoundError, PermissionError, ...), checkpointing.CheckpointError,
absl's flags.Error and app.UsageError. Any other exception is a bug and keeps its
traceback (and exit status 1). SBT_JAX_TRACEBACK=1 in the environment shows the traceback of
user errors too (to debug a ValueError that is not the user's).
"""
import os
import re
import sys

from absl import app
from absl import flags

from sbt_jax import paths

EXIT_USER_ERROR = 2
_TRACEBACK_ENV = 'SBT_JAX_TRACEBACK'


class UserError(ValueError):
  """A mistake of the command-line user (bad flag, file, config); reported in one line."""


def _user_error_types() -> tuple:
  types = [UserError, ValueError, OSError, flags.Error, app.UsageError]
  # Imported by whoever raised it; importing it here would load JAX for every CLI error.
  checkpointing = sys.modules.get('sbt_jax.checkpointing')
  if checkpointing is not None:
    types.append(checkpointing.CheckpointError)
  return tuple(types)


def one_line(message: str) -> str:
  """`message` on one line; a traceback embedded in it (ml_collections puts the config
  file's one there) is reduced to its last line, the exception."""
  marker = 'Traceback (most recent call last)'
  if marker in message:
    head, _, tail = message.partition(marker)
    tail_lines = [line.strip() for line in tail.splitlines() if line.strip()]
    message = head.rstrip(' :\n') + (': ' + tail_lines[-1] if tail_lines else '')
  return ' '.join(line.strip() for line in message.splitlines() if line.strip())


def fail(message: str) -> None:
  """Prints `error: message` (one line) to stderr and exits with EXIT_USER_ERROR."""
  sys.stdout.flush()
  print(f'error: {one_line(message)}', file=sys.stderr, flush=True)
  sys.exit(EXIT_USER_ERROR)


def _describe(e: BaseException) -> str:
  message = str(e)
  if isinstance(e, OSError) and e.filename and e.strerror:
    message = f'{e.strerror}: {e.filename!r}'  # open()'s own errors, without [Errno N]
  if not message.strip():
    message = type(e).__name__
  return message


def _bad_override(e: Exception, argv) -> str:
  """ml_collections' KeyError/AttributeError for an unknown --config.a.b field, as a
  message naming the flag (and its did-you-mean hint)."""
  inner = e.args[0] if e.args and isinstance(e.args[0], BaseException) else e
  text = str(inner.args[0]) if inner.args else str(inner)
  first, *rest = text.splitlines() or ['']
  key = first.strip().strip('\'"')
  hint = f' ({one_line(chr(10).join(rest))})' if rest else ''
  from sbt_jax import config_defaults  # pylint: disable=g-import-not-at-top
  for arg in argv[1:]:
    name = arg[2:].split('=', 1)[0] if arg.startswith('--') else ''
    if key in name.split('.')[1:]:
      renamed = config_defaults.renamed_key_hint(name)
      if renamed:
        return f'Unknown config field --{name}: {renamed}'
      return f'Unknown config field --{name}: no field {key!r}{hint}'
  renamed = config_defaults.renamed_key_hint(key)
  if renamed:
    return f'Bad config: {renamed} (set by the config file or an override)'
  return f'Bad --config.* override: {one_line(text)}'


def parse_flags(argv):
  """absl's flag parsing, but a bad flag is one `error:` line (absl prints two)."""
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    required = re.fullmatch(r'flag --(\S+)=None: Flag --\S+ must have a value other than '
                            r'None\.', str(e))
    fail(f'--{required[1]} is required' if required else str(e))
  except (AttributeError, KeyError) as e:  # ml_collections: an unknown --config.x field.
    fail(_bad_override(e, argv))


def _guarded(main):
  def guarded_main(argv):
    try:
      return main(argv)
    except _user_error_types() as e:  # pylint: disable=catching-non-exception
      if os.environ.get(_TRACEBACK_ENV, '') not in ('', '0'):
        raise
      fail(_describe(e))
  return guarded_main


def run(main) -> None:
  """absl's app.run(main) with user errors reported as one `error:` line (exit status 2)."""
  app.run(_guarded(main), flags_parser=parse_flags)


# Cheap checks the tools make before any expensive work (restoring, compiling, writing).


def check_output_dir(flag: str, path: str) -> None:
  """`path` can become the output folder of `flag`: a folder or nothing yet (not created)."""
  if paths.exists(path) and not paths.isdir(path):
    raise UserError(f'{flag}={path!r} exists and is not a folder')


def check_output_file(flag: str, path: str) -> None:
  """`path` can become the output file of `flag` (its folder is created when writing)."""
  if paths.isdir(path):
    raise UserError(f'{flag}={path!r} is a folder; pass a file name')
  parent = paths.parent(path)
  while not paths.exists(parent) and paths.parent(parent) != parent:
    parent = paths.parent(parent)
  if paths.exists(parent) and not paths.isdir(parent):
    raise UserError(f'{flag}={path!r}: {parent!r} is a file, not a folder')


def run_config(flag: str, workdir: str, stage: str | None = None):
  """The config.json of the run in `workdir` (given by `flag`), of that stage if given."""
  from sbt_jax import runs  # pylint: disable=g-import-not-at-top
  if not workdir:
    raise UserError(f'{flag} is empty')
  if not paths.isdir(workdir):
    raise UserError(f'{flag}={workdir!r}: no such folder')
  config = runs.load_config(workdir)
  if stage is not None and config.get('stage') != stage:
    raise UserError(f'{flag}={workdir!r} is the workdir of a {config.get("stage")!r} run, '
                    f"not of a stage={stage!r} run")
  return config


def tokenizer_config(workdir: str, *, aligner_workdir: str | None = None,
                     mode: str = 'compress', rate: float | None = None,
                     temperature: float = 0.0):
  """The config of the tokenizer run in `workdir`, its flags checked against it (the same
  conditions inference.Tokenizer checks after restoring, here before)."""
  from sbt_jax.models import registry  # pylint: disable=g-import-not-at-top
  config = run_config('--workdir', workdir, 'tokenizer')
  name, family = config.model.name, registry.spec(config)
  if aligner_workdir:
    if not family.has_aligner_stage:
      raise UserError(f'--aligner_workdir needs a selfboottok tokenizer; {workdir!r} is '
                      f'{name!r}')
    run_config('--aligner_workdir', aligner_workdir, 'aligner')
  if mode not in family.modes:
    raise UserError(f"--mode={mode} needs a selfboottok tokenizer; {workdir!r} is {name!r}")
  if rate is not None:
    if not family.uses_rate:
      raise UserError(f'--rate is a TaTok setting; {workdir!r} is {name!r}')
    if not 0.0 <= rate <= 1.0:
      raise UserError(f'--rate={rate}: the information-loss rate must be in [0, 1]')
  if temperature < 0:
    raise UserError(f'--temperature={temperature} must be >= 0')
  return config


def check_no_args(argv, hint: str = '') -> None:
  """absl leaves words that are not flags in argv: the tools take none."""
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments {argv[1:]}{hint}')
