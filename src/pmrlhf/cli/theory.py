"""``pmrlhf derive`` and ``pmrlhf check``."""

from __future__ import annotations

import json
import sys

from .._validation import DEFAULT_SEED


def register(subparsers) -> None:
    derive = subparsers.add_parser(
        "derive", help="print the sympy derivation of the PM regularizer"
    )
    derive.add_argument(
        "--format",
        choices=("markdown", "latex", "json"),
        default="markdown",
        help="how the derivation is printed",
    )
    derive.set_defaults(handler=_derive)

    check = subparsers.add_parser(
        "check", help="numerically check the PM property for PM and counter-examples"
    )
    check.add_argument(
        "--n-responses", type=int, default=4, help="responses of each random reward vector"
    )
    check.add_argument(
        "--trials", type=int, default=20, help="random reward vectors checked per regularizer"
    )
    check.add_argument("--seed", type=int, default=DEFAULT_SEED, help="seed of the random rewards")
    check.add_argument("--json", action="store_true", help="print JSON instead of a table")
    check.set_defaults(handler=_check)


def _derive(args) -> int:
    from ..theory import derive_pm_regularizer

    derivation = derive_pm_regularizer()
    text = {
        "markdown": derivation.to_markdown,
        "latex": derivation.to_latex,
        "json": derivation.to_json,
    }[args.format]()
    print(text)
    return 0


def _check(args) -> int:
    from ..theory.checks import pm_property_table

    table = pm_property_table(
        n_responses=args.n_responses,
        trials=args.trials,
        seed=args.seed,
        progress=sys.stderr.isatty(),  # a bar on a terminal; nothing in logs and pipes
    )
    if args.json:
        print(json.dumps(table.to_dict(orient="records"), indent=2))
    else:
        print(table.to_string(index=False))
    expected = table["passed"] == table["should_pass"]
    return 0 if bool(expected.all()) else 1
