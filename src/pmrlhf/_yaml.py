"""The one reader of YAML and JSON files a user writes (task files, run configs).

:func:`load_yaml_text` parses with :class:`StrictLoader`, PyYAML's ``SafeLoader`` with two
YAML 1.1 pitfalls removed and three bounds added:

* booleans are only ``true``/``false``/``True``/``False``/``TRUE``/``FALSE`` (YAML 1.2 core
  schema): ``[Yes, No, on, off, y, n]`` stay strings;
* floats follow the YAML 1.2 core schema: ``3e-5``, ``1e10``, ``.5``, ``-1.5E+3``, ``.inf``,
  ``.nan`` are floats (YAML 1.1 reads ``3e-5`` as a string);
* so do ints: ``010`` is 10 (YAML 1.1: 8), ``0o17`` and ``0x1F`` are octal and hex, and
  ``1:30`` or ``1_000`` stay strings (YAML 1.1: 90 and 1000);
* nesting deeper than :data:`MAX_DEPTH`, and a document whose aliases expand to more than
  :data:`MAX_NODES` nodes (a "billion laughs"), or that refers to itself, are refused
  while composing, before anything is built.

:func:`read_data_file` adds the file checks: a folder, a file over :data:`MAX_FILE_BYTES`,
binary or non-UTF-8 content. Every failure is one line in a
:class:`~pmrlhf.errors.PmrlhfUserError` that names the file or option.
"""

from __future__ import annotations

import json
import re

import yaml

from ._text_files import decode_text, existing_file
from .errors import PmrlhfUserError

MAX_FILE_BYTES = 1 << 20
"""Largest task or config file read (1 MiB)."""
MAX_DEPTH = 50
"""Deepest nesting of lists and mappings accepted."""
MAX_NODES = 10_000
"""Most nodes a document may hold once its aliases are expanded."""

_BOOL = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
_INT = re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$")
_FLOAT = re.compile(
    r"""^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)


class _LimitError(yaml.YAMLError):
    """A bound of :class:`StrictLoader` was passed; the message says which."""


class StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` with YAML 1.2 core booleans, ints and floats, no YAML 1.1
    timestamps (``2024-01-01`` is a string, as in YAML 1.2), and bounds on depth and
    expanded size (module docstring)."""

    yaml_implicit_resolvers = {
        first: [
            (tag, regexp)
            for tag, regexp in resolvers
            if not tag.endswith((":bool", ":int", ":float", ":timestamp", ":value"))
        ]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

    def __init__(self, stream):
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent, index):
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _LimitError(f"nesting deeper than {MAX_DEPTH} levels")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def compose_document(self):
        node = super().compose_document()
        if expanded_size(node) > MAX_NODES:
            raise _LimitError(f"more than {MAX_NODES} nodes once its aliases are expanded")
        return node

    def construct_yaml_int(self, node):
        """YAML 1.2 core ints: decimal (leading zeros too), ``0o`` octal, ``0x`` hex."""
        text = self.construct_scalar(node)
        try:
            if text.startswith(("0o", "0x")):
                return int(text[2:], 8 if text[1] == "o" else 16)
            return int(text, 10)
        except ValueError:  # an explicit !!int on another form
            raise yaml.constructor.ConstructorError(
                None, None, f"{text!r} is not a YAML 1.2 int", node.start_mark
            ) from None


StrictLoader.add_constructor("tag:yaml.org,2002:int", StrictLoader.construct_yaml_int)
StrictLoader.add_implicit_resolver("tag:yaml.org,2002:bool", _BOOL, list("tTfF"))
StrictLoader.add_implicit_resolver("tag:yaml.org,2002:int", _INT, list("-+0123456789"))
StrictLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+.0123456789"))


def expanded_size(node) -> int:
    """Number of nodes under ``node`` (itself included) with every alias expanded, computed
    once per distinct node; stops counting past :data:`MAX_NODES`.

    Raises
    ------
    yaml.YAMLError
        ``node`` contains itself (a recursive alias).
    """
    sizes: dict[int, int] = {}
    visiting: set[int] = set()

    def size(item) -> int:  # recursion depth is bounded by MAX_DEPTH (compose_node)
        key = id(item)
        if key in sizes:
            return sizes[key]
        if key in visiting:
            raise _LimitError("an alias refers to a node that contains it")
        visiting.add(key)
        total = 1
        if isinstance(item, yaml.SequenceNode):
            children = item.value
        elif isinstance(item, yaml.MappingNode):
            children = [part for pair in item.value for part in pair]
        else:
            children = []
        for child in children:
            total += size(child)
            if total > MAX_NODES:
                break
        visiting.discard(key)
        sizes[key] = total
        return total

    return size(node)


def load_yaml_text(text: str, *, source: str):
    """Parse one YAML document with :class:`StrictLoader`.

    Raises
    ------
    PmrlhfUserError
        The text does not parse, nests deeper than :data:`MAX_DEPTH`, or expands past
        :data:`MAX_NODES` nodes; one line naming ``source``.
    """
    try:
        return yaml.load(text, Loader=StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except _LimitError as err:
        raise PmrlhfUserError(f"{source} is refused: {err}") from None
    except yaml.YAMLError as err:
        raise PmrlhfUserError(f"{source} could not be parsed: {_first_line(err)}") from None
    except RecursionError:  # pragma: no cover - compose_node stops at MAX_DEPTH first
        raise PmrlhfUserError(f"{source} is refused: nesting too deep") from None


def load_json_text(text: str, *, source: str):
    """Parse JSON; the bounds of :func:`load_yaml_text` on depth and size apply.

    Raises
    ------
    PmrlhfUserError
        The text does not parse or nests deeper than :data:`MAX_DEPTH`; one line naming
        ``source``.
    """
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise PmrlhfUserError(f"{source} could not be parsed: {_first_line(err)}") from None
    except RecursionError:
        raise PmrlhfUserError(
            f"{source} is refused: nesting deeper than {MAX_DEPTH} levels"
        ) from None
    if _depth(data) > MAX_DEPTH:
        raise PmrlhfUserError(f"{source} is refused: nesting deeper than {MAX_DEPTH} levels")
    return data


def _depth(data) -> int:
    """Nesting depth of parsed JSON, without recursion."""
    deepest, stack = 0, [(data, 1)]
    while stack:
        item, level = stack.pop()
        deepest = max(deepest, level)
        if isinstance(item, dict):
            stack.extend((value, level + 1) for value in item.values())
        elif isinstance(item, list):
            stack.extend((value, level + 1) for value in item)
    return deepest


def read_data_file(path, *, name: str, max_bytes: int = MAX_FILE_BYTES):
    """Read and parse a user's ``.json`` (as JSON) or other (as YAML) file.

    Parameters
    ----------
    path : str or os.PathLike
    name : str
        How messages call it: ``"--config"``, ``"task file"``.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    PmrlhfUserError
        A folder, a file larger than ``max_bytes``, one that cannot be read, binary or
        non-UTF-8 content, and the parse errors of :func:`load_yaml_text`; one line naming
        ``name`` and the path.
    """
    path = existing_file(path, name=name)
    source = f"{name} {path}"
    try:
        with path.open("rb") as handle:
            raw = handle.read(max_bytes + 1)
    except OSError as err:
        raise PmrlhfUserError(f"{source} could not be read: {err.strerror or err}") from None
    if len(raw) > max_bytes:
        raise PmrlhfUserError(f"{source} is refused: larger than {max_bytes} bytes")
    text = decode_text(raw, source=source)
    if path.suffix == ".json":
        return load_json_text(text, source=source)
    return load_yaml_text(text, source=source)


def _first_line(err: BaseException) -> str:
    problem, mark = getattr(err, "problem", None), getattr(err, "problem_mark", None)
    if problem and mark is not None:
        return f"{problem} (line {mark.line + 1}, column {mark.column + 1})"
    text = " ".join(str(err).split("\n")[:1]).strip()
    return text or type(err).__name__
