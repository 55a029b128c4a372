"""Stage registry: config.stage -> the task class the shared loop trains.

Only trainers/loop.py looks a task up; everything else reads runs through sbt_jax/runs.py.
"""
from sbt_jax.trainers import aligner
from sbt_jax.trainers import generator
from sbt_jax.trainers import tokenizer

TASKS = {'tokenizer': tokenizer.TokenizerTask, 'aligner': aligner.AlignerTask,
         'generator': generator.GeneratorTask}


def get_task(stage: str):
  if stage not in TASKS:
    raise ValueError(f'Unknown config.stage={stage!r}; known: {", ".join(TASKS)}')
  return TASKS[stage]
