"""The PM regularizer derived by sympy from the PM property (docs/theory.md §3).

Nothing is typed in: the ODE comes from the KKT condition with ``pi = P_r`` substituted,
its general solution from ``sympy.dsolve``, concavity from ``sympy.diff``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import sympy as sp
from sympy.core.function import AppliedUndef
from sympy.printing.conventions import requires_partial
from sympy.printing.mathml import MathMLPresentationPrinter

from ..errors import PmrlhfTypeError

MATHML_NAMESPACE = "http://www.w3.org/1998/Math/MathML"


class _MathMLPrinter(MathMLPresentationPrinter):
    """sympy's presentation MathML with two of its slips mended (sympy 1.14).

    It lowercases undefined functions (``R(pi)`` printed as ``r(pi)`` reads as the reward),
    and writes a second derivative's denominator as ``d^2 pi`` instead of ``d pi^2``.
    """

    def _print_Function(self, e):
        mrow = super()._print_Function(e)
        if isinstance(e, AppliedUndef):
            mrow.firstChild.firstChild.data = e.func.__name__
        return mrow

    def _print_Derivative(self, e):
        mrow = super()._print_Derivative(e)
        fraction = mrow.firstChild
        mark = "&#x2202;" if requires_partial(e.expr) else self.mathml_tag(e)
        denominator = self.dom.createElement("mrow")
        for symbol, count in reversed(e.variable_count):
            d = self.dom.createElement("mo")
            d.appendChild(self.dom.createTextNode(mark))
            denominator.appendChild(d)
            variable = self._print(symbol)
            if count >= 2:
                power = self.dom.createElement("msup")
                power.appendChild(variable)
                power.appendChild(self._print(count))
                variable = power
            denominator.appendChild(variable)
        fraction.replaceChild(denominator, fraction.lastChild)
        return mrow


def to_mathml(expr: sp.Basic) -> str:
    """``expr`` as a display ``<math>`` element (presentation MathML)."""
    if not isinstance(expr, sp.Basic):
        raise PmrlhfTypeError(f"expr must be a sympy object, got {type(expr).__name__}")
    body = _MathMLPrinter().doprint(expr)
    return f'<math xmlns="{MATHML_NAMESPACE}" display="block">{body}</math>'


@dataclass(frozen=True)
class PMDerivation:
    """The derivation, step by step.

    Attributes
    ----------
    symbol : sympy.Symbol
        The positive symbol ``pi`` for a response's probability.
    ode : sympy.Eq
        ``d/dpi [pi R(pi)] = -log(pi) + c``.
    general_solution : sympy.Expr
        ``-log(pi) + C1 + C2/pi``, with exactly the two integration constants free.
    regularizer : sympy.Expr
        The chosen solution ``-log(pi)`` (``C1 = C2 = 0``).
    constants : tuple of sympy.Symbol
        ``(C1, C2)``.
    steps : tuple of (str, sympy object)
        KKT condition, PM substitution, ODE, general solution, concavity, objective,
        maximizer.
    """

    symbol: sp.Symbol
    ode: sp.Eq
    general_solution: sp.Expr
    regularizer: sp.Expr
    constants: tuple[sp.Symbol, sp.Symbol]
    steps: tuple[tuple[str, sp.Basic], ...]

    def to_markdown(self) -> str:
        """Markdown with one display-math block per step."""
        lines = ["# The PM regularizer, derived (docs/theory.md §3)", ""]
        for i, (title, obj) in enumerate(self.steps, 1):
            lines += [f"{i}. **{title}**", "", f"   $$ {sp.latex(obj)} $$", ""]
        return "\n".join(lines)

    def to_latex(self) -> str:
        """A LaTeX ``enumerate`` with one display equation per step."""
        body = "\n".join(
            f"  \\item {title}:\n  \\[ {sp.latex(obj)} \\]" for title, obj in self.steps
        )
        return "\\begin{enumerate}\n" + body + "\n\\end{enumerate}\n"

    def to_json(self) -> str:
        """JSON with each step as sympy's string, LaTeX and presentation-MathML forms."""
        payload = {
            "regularizer": str(self.regularizer),
            "general_solution": str(self.general_solution),
            "ode": str(self.ode),
            "steps": [
                {
                    "title": title,
                    "sympy": str(obj),
                    "latex": sp.latex(obj),
                    "mathml": to_mathml(obj),
                }
                for title, obj in self.steps
            ],
        }
        return json.dumps(payload, indent=2)


def derive_pm_regularizer() -> PMDerivation:
    """Derive the PM regularizer ``R(pi) = -log pi`` from the PM property (docs/theory.md §3).

    1. KKT at an interior maximizer of ``sum_y pi(y) [r(y) + R(pi(y))]``:
       ``r + R(pi) + pi R'(pi) = lambda``.
    2. PM forces ``pi = P_r``, i.e. ``r = log pi + log Z``.
    3. Hence the ODE ``d/dpi [pi R(pi)] = -log pi + c`` with ``c = lambda - log Z``.
    4. ``dsolve``: ``R(pi) = -log pi + C1 + C2/pi``.
    5. ``d^2/dpi^2 [pi R(pi)] = -1/pi < 0``: strictly concave, so the maximizer is unique.
    6. With ``C1 = C2 = 0`` the objective is ``E_pi[r] + H(pi)``; its maximizer is softmax.
    """
    pi = sp.Symbol("pi", positive=True)
    r, lam, c = sp.symbols("r lambda c", real=True)
    Z = sp.Symbol("Z", positive=True)
    R = sp.Function("R")
    C1, C2 = sp.symbols("C1 C2", real=True)

    kkt = sp.Eq(r + R(pi) + pi * sp.Derivative(R(pi), pi), lam)
    substituted = kkt.subs(r, sp.log(pi) + sp.log(Z))
    # The R terms are d/dpi[pi R(pi)]; move everything else right and name lambda - log Z = c.
    r_terms = R(pi) + pi * sp.Derivative(R(pi), pi)
    rhs = sp.expand(substituted.rhs - (substituted.lhs - r_terms)).subs(lam, c + sp.log(Z))
    ode = sp.Eq(sp.Derivative(pi * R(pi), pi), sp.simplify(rhs))

    solution = sp.dsolve(sp.Eq(sp.expand(ode.lhs.doit()), ode.rhs), R(pi))
    ok, residual = sp.checkodesol(sp.Eq(sp.expand(ode.lhs.doit()), ode.rhs), solution)
    if not ok:  # pragma: no cover - would mean a sympy regression
        raise RuntimeError(f"dsolve returned a non-solution (residual {residual})")
    # dsolve names its one constant C1 and keeps the ODE's c; rename so that the general
    # solution reads -log(pi) + C1 + C2/pi with exactly two free constants.
    dsolve_constant = next(s for s in solution.rhs.free_symbols if s.name == "C1")
    general = sp.expand(sp.simplify(solution.rhs))
    general = sp.expand(general.subs({dsolve_constant: C2}).subs(c, C1 - 1))
    general = sp.collect(general, pi)

    f = sp.expand(pi * general)
    second_derivative = sp.simplify(sp.diff(f, pi, 2))
    if not second_derivative.is_negative:  # pragma: no cover
        raise RuntimeError(f"pi R(pi) is not strictly concave: {second_derivative}")
    concavity = sp.Eq(sp.Derivative(pi * R(pi), (pi, 2)), second_derivative, evaluate=False)

    regularizer = sp.simplify(general.subs({C1: 0, C2: 0}))

    y, n = sp.symbols("y n", integer=True, positive=True)
    p, rr = sp.IndexedBase("pi"), sp.IndexedBase("r")
    objective = sp.Eq(
        sp.Function("J")(p),
        sp.Sum(p[y] * (rr[y] + regularizer.subs(pi, p[y])), (y, 1, n)),
    )
    # Stationarity of J with R = -log pi: r - log pi - 1 = lambda, solved for pi.
    stationarity = sp.Eq(r + regularizer + pi * sp.diff(regularizer, pi), lam)
    maximizer = sp.Eq(pi, sp.solve(stationarity, pi)[0])

    steps = (
        ("KKT condition at an interior maximizer", kkt),
        ("Substitute the PM policy pi = P_r, i.e. r = log(pi) + log(Z)", substituted),
        ("ODE forced for every pi in (0, 1), with c = lambda - log(Z)", ode),
        ("General solution (sympy.dsolve)", sp.Eq(R(pi), general)),
        ("Concavity: the second derivative of pi R(pi) is negative on (0, 1)", concavity),
        ("PM objective with C1 = C2 = 0: reward plus entropy", objective),
        ("Stationary point: pi proportional to exp(r), i.e. softmax(r)", maximizer),
    )
    return PMDerivation(pi, ode, general, regularizer, (C1, C2), steps)
