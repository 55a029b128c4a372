"""The package's shape: no import cycles, dependencies that point one way, no family branches.

Reads sbt_jax/ with `ast` (nothing is imported or run), so it is fast and checks the
imports inside functions too.
"""
import ast
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / 'sbt_jax'
# The stage trainers: none may import another (what they share lives below them).
STAGE_TRAINERS = ('sbt_jax.trainers.tokenizer', 'sbt_jax.trainers.aligner',
                  'sbt_jax.trainers.generator')
# The only modules that may look up a stage's Task.
GET_TASK_CALLERS = ('sbt_jax.trainers.loop', 'sbt_jax.main')


def _modules(package: pathlib.Path = PACKAGE) -> dict[str, pathlib.Path]:
  """Dotted module name -> file, for every .py under the package."""
  out = {}
  for path in sorted(package.rglob('*.py')):
    parts = list(path.relative_to(package.parent).with_suffix('').parts)
    if parts[-1] == '__init__':
      parts = parts[:-1]
    out['.'.join(parts)] = path
  return out


def _resolve(name: str, modules) -> str | None:
  """The longest known module that `name` (a dotted import target) refers to."""
  while name and name not in modules:
    name = name.rpartition('.')[0]
  return name or None


def import_graph(modules) -> dict[str, set[str]]:
  """Module -> the sbt_jax modules it imports (module-level and inside functions)."""
  graph = {}
  for name, path in modules.items():
    deps = set()
    is_package = path.name == '__init__.py'
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
      targets = []
      if isinstance(node, ast.Import):
        targets = [a.name for a in node.names]
      elif isinstance(node, ast.ImportFrom):
        base = node.module or ''
        if node.level:  # relative import
          anchor = name if is_package else name.rpartition('.')[0]
          for _ in range(node.level - 1):
            anchor = anchor.rpartition('.')[0]
          base = f'{anchor}.{base}' if base else anchor
        # `from pkg import mod` imports pkg.mod when it is a module, else a name of pkg.
        targets = [f'{base}.{a.name}' if f'{base}.{a.name}' in modules else base
                   for a in node.names]
      for target in targets:
        resolved = _resolve(target, modules) if target.startswith('sbt_jax') else None
        if resolved and resolved != name:
          deps.add(resolved)
    graph[name] = deps
  return graph


def find_cycle(graph) -> list[str] | None:
  """One import cycle as [a, b, ..., a], or None."""
  state, stack = {}, []

  def visit(node):
    state[node] = 'open'
    stack.append(node)
    for dep in sorted(graph.get(node, ())):
      if state.get(dep) == 'open':
        return stack[stack.index(dep):] + [dep]
      if dep not in state:
        cycle = visit(dep)
        if cycle:
          return cycle
    state[node] = 'done'
    stack.pop()
    return None

  for node in sorted(graph):
    if node not in state:
      cycle = visit(node)
      if cycle:
        return cycle
  return None


def rule_violations(graph) -> list[str]:
  """'a imports b' for every edge that points the wrong way."""
  def under(module, package):
    return module == package or module.startswith(package + '.')

  bad = []
  for src, deps in graph.items():
    for dst in deps:
      if under(src, 'sbt_jax.models') and not under(dst, 'sbt_jax.models'):
        bad.append(f'{src} imports {dst} (models/ imports only models/)')
      if under(src, 'sbt_jax.data') and under(dst, 'sbt_jax.models'):
        bad.append(f'{src} imports {dst} (data/ never imports models/)')
      for lower in ('sbt_jax.sampling', 'sbt_jax.evaluators'):
        if under(src, lower) and under(dst, 'sbt_jax.trainers'):
          bad.append(f'{src} imports {dst} ({lower} never imports trainers/)')
      if src in STAGE_TRAINERS and dst in STAGE_TRAINERS:
        bad.append(f'{src} imports {dst} (a stage trainer imports another)')
  return sorted(bad)


def get_task_callers(modules) -> set[str]:
  callers = set()
  for name, path in modules.items():
    for node in ast.walk(ast.parse(path.read_text())):
      if isinstance(node, ast.Call):
        func = node.func
        called = func.attr if isinstance(func, ast.Attribute) else getattr(func, 'id', '')
        if called == 'get_task':
          callers.add(name)
  return callers


def test_no_import_cycles():
  assert find_cycle(import_graph(_modules())) is None


def test_dependencies_point_one_way():
  assert rule_violations(import_graph(_modules())) == []


def test_only_the_loop_looks_up_tasks():
  assert get_task_callers(_modules()) <= set(GET_TASK_CALLERS)


def test_no_family_branches_outside_models():
  pattern = re.compile(r"model\.name ==|== 'tatok'|== 'selfboottok'|== 'titok'")
  hits = [f'{path.relative_to(ROOT)}:{i}' for name, path in _modules().items()
          if not name.startswith('sbt_jax.models')
          for i, line in enumerate(path.read_text().splitlines(), 1) if pattern.search(line)]
  assert hits == []


def _write(root: pathlib.Path, files: dict[str, str]) -> pathlib.Path:
  for rel, text in files.items():
    path = root / 'sbt_jax' / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
  return root / 'sbt_jax'


@pytest.mark.parametrize('files,expected', [
    ({'__init__.py': '', 'a.py': 'from sbt_jax import b\n',
      'b.py': 'def f():\n  from sbt_jax import a\n'}, 'cycle'),
    ({'__init__.py': '', 'models/__init__.py': '', 'models/m.py': 'from sbt_jax import runs\n',
      'runs.py': ''}, 'models/ imports only models/'),
    ({'__init__.py': '', 'data/__init__.py': '', 'models/__init__.py': '', 'models/m.py': '',
      'data/d.py': 'from sbt_jax.models import m\n'}, 'data/ never imports models/'),
    ({'__init__.py': '', 'evaluators/__init__.py': '', 'trainers/__init__.py': '',
      'trainers/state.py': '', 'evaluators/e.py': 'import sbt_jax.trainers.state\n'},
     'never imports trainers/'),
    ({'__init__.py': '', 'trainers/__init__.py': '', 'trainers/generator.py': '',
      'trainers/aligner.py': 'from sbt_jax.trainers import generator\n'},
     'a stage trainer imports another'),
])
def test_the_checks_catch_bad_graphs(tmp_path, files, expected):
  """Each rule fails on a tiny package that breaks it (so a broken rule cannot pass)."""
  graph = import_graph(_modules(_write(tmp_path, files)))
  found = ['cycle'] if find_cycle(graph) else rule_violations(graph)
  assert any(expected in v for v in found), found


def test_get_task_check_catches_a_caller(tmp_path):
  package = _write(tmp_path, {'__init__.py': '',
                              'inference.py': 'from sbt_jax import trainers\n'
                                              'task = trainers.get_task("tokenizer")\n'})
  assert get_task_callers(_modules(package)) == {'sbt_jax.inference'}
