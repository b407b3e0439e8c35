"""Reading and checking task files; the format is described once, in :mod:`.tasks`.

:func:`read_task_file` finds a built-in task or reads a YAML/JSON file;
:func:`check_task_data` checks every field and names the bad one (file and field) in a
:class:`~pmrlhf.errors.PmrlhfUserError`. :func:`~pmrlhf.lm_experiments.data.tasks.load_task`
runs both.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np

from ..._validation import check_known_keys, check_simplex
from ..._yaml import load_yaml_text, read_data_file
from ...errors import PmrlhfUserError

BUILTIN_TASKS = ("three_answers", "two_answers", "multi_group", "biased_reference")
DEFAULT_TASK = "three_answers"
TASK_KEYS = ("name", "description", "prompts", "off_candidate_margin")
PROMPT_KEYS = ("messages", "candidates", "population", "sft_weights")
POPULATION_KEYS = ("weights", "utilities")
MESSAGE_KEYS = ("role", "content")


def read_task_file(name_or_path) -> tuple[object, str]:
    """The content of a built-in task (by name) or of a task file (``.yaml``, ``.yml``,
    ``.json``), and its source: the name or the path.

    Raises
    ------
    PmrlhfUserError
        An unknown name; a folder, a binary or non-UTF-8 file, one over 1 MiB, one that
        does not parse or passes the nesting and alias bounds (:mod:`pmrlhf._yaml`, which
        reads YAML 1.2 booleans and floats: ``[Yes, No]`` are strings, ``3e-5`` a float).
    FileNotFoundError
        A path that does not exist.
    """
    name = str(name_or_path)
    if name in BUILTIN_TASKS:
        text = resources.files(__package__).joinpath("builtin_tasks", f"{name}.yaml").read_text()
        return load_yaml_text(text, source=f"task {name}"), name
    path = Path(name)
    if not path.exists():
        if path.suffix in (".yaml", ".yml", ".json"):
            raise FileNotFoundError(f"task file {path} does not exist")
        raise PmrlhfUserError(
            f"unknown task {name!r}: use {', '.join(BUILTIN_TASKS)} or a file path"
        )
    return read_data_file(path, name="task file"), str(path)


def _check_messages(messages, where: str) -> None:
    """Chat messages: a non-empty list of ``{role: str, content: str}`` mappings."""
    if not isinstance(messages, list) or not messages:
        raise PmrlhfUserError(
            f"{where}.messages must be a non-empty list of {{role, content}} mappings"
        )
    for j, message in enumerate(messages):
        if not isinstance(message, dict) or not {"role", "content"} <= set(message):
            raise PmrlhfUserError(
                f"{where}.messages[{j}] must be a {{role, content}} mapping, got {message!r}"
            )
        check_known_keys(message, MESSAGE_KEYS, where=f"{where}.messages[{j}]")
        for key in ("role", "content"):
            if not isinstance(message[key], str):
                raise PmrlhfUserError(
                    f"{where}.messages[{j}].{key} must be a string, got {message[key]!r}"
                )


def _population_message(where: str, message: str) -> str:
    """``Population.from_dict``'s message with the field's full name in front."""
    if message.startswith(("weights ", "utilities ")):
        return f"{where}.population.{message}"
    if message.startswith("population "):
        return f"{where}.{message}"
    return f"{where}.population: {message}"


def _check_numbers(value, where: str) -> None:
    """A number or (nested) lists of numbers: no strings (``"1"``), bools or mappings, which
    numpy would convert or misreport."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, bool) or not isinstance(item, int | float):
            raise PmrlhfUserError(f"{where} must be numbers, got {item!r}")


def _check_population_numbers(population, where: str) -> None:
    """Known keys and numbers only in a prompt's ``population`` mapping (its shape is
    :meth:`Population.from_dict`'s to check)."""
    if not isinstance(population, dict):
        return  # Population.from_dict names what is missing
    check_known_keys(population, POPULATION_KEYS, where=f"{where}.population")
    for key in POPULATION_KEYS:
        if key in population:
            _check_numbers(population[key], f"{where}.population.{key}")


def check_task_data(data, source: str) -> dict:
    """Check the parsed content of a task file; return the fields of a
    :class:`~pmrlhf.lm_experiments.data.tasks.SyntheticTask`, its ``prompts`` as a list of
    :class:`~pmrlhf.lm_experiments.data.tasks.TaskPrompt` fields. Every message names the file and
    the field."""
    # Here, not at the top: the command line reads DEFAULT_TASK from this module for its
    # parsers and should not load scipy to do so.
    from ...simulate.population import Population

    if not isinstance(data, dict):
        raise PmrlhfUserError(f"task {source}: expected a mapping at the top level")
    check_known_keys(data, TASK_KEYS, where=f"task {source}")
    for key in ("name", "description"):
        if key in data and not isinstance(data[key], str):
            raise PmrlhfUserError(f"task {source}: {key} must be a string, got {data[key]!r}")
    prompts = data.get("prompts")
    if not isinstance(prompts, list) or not prompts:
        raise PmrlhfUserError(f"task {source}: 'prompts' must be a non-empty list")
    parsed = []
    for i, item in enumerate(prompts):
        where = f"task {source}: prompts[{i}]"
        if not isinstance(item, dict):
            raise PmrlhfUserError(f"{where} must be a mapping, got {type(item).__name__}")
        check_known_keys(item, PROMPT_KEYS, where=where)
        messages, candidates = item.get("messages"), item.get("candidates")
        _check_messages(messages, where)
        if (
            not isinstance(candidates, list)
            or len(candidates) < 2
            or not all(isinstance(c, str) and c.strip() for c in candidates)
        ):
            raise PmrlhfUserError(f"{where}.candidates must list at least 2 non-empty strings")
        if len(set(candidates)) != len(candidates):
            raise PmrlhfUserError(f"{where}.candidates has duplicates")
        _check_population_numbers(item.get("population"), where)
        try:
            population = Population.from_dict(item.get("population"))
        except (ValueError, TypeError) as err:
            raise PmrlhfUserError(_population_message(where, str(err))) from None
        if population.n_items != len(candidates):
            raise PmrlhfUserError(
                f"{where}.population.utilities cover {population.n_items} items but there are "
                f"{len(candidates)} candidates"
            )
        sft_weights = item.get("sft_weights")
        if sft_weights is not None:
            _check_numbers(sft_weights, f"{where}.sft_weights")
            try:
                sft_weights = check_simplex(sft_weights, f"{where}.sft_weights")
            except (ValueError, TypeError) as err:
                raise PmrlhfUserError(str(err)) from None
            if sft_weights.shape != (len(candidates),):
                raise PmrlhfUserError(
                    f"{where}.sft_weights has {sft_weights.size} entries but there are "
                    f"{len(candidates)} candidates"
                )
            sft_weights = tuple(float(w) for w in sft_weights)
        parsed.append(
            {
                "messages": tuple(messages),
                "candidates": tuple(candidates),
                "population": population,
                "sft_weights": sft_weights,
            }
        )
    margin = data.get("off_candidate_margin", 3.0)
    if isinstance(margin, bool) or not isinstance(margin, int | float) or not 0 < margin < np.inf:
        raise PmrlhfUserError(
            f"task {source}: off_candidate_margin must be a positive finite number, got {margin!r}"
        )
    return {
        "name": str(data.get("name", Path(source).stem)),
        "prompts": parsed,
        "description": str(data.get("description", "")),
        "off_candidate_margin": float(margin),
        "source": source,
    }
