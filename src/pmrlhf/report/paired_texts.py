"""Method-vs-method sentences: each cites the paired per-seed difference of
``summary["paired"]`` with its 95% interval and the difference the exact optima predict
(docs/theory.md §7, §8). Every metric compared here is a distance: lower is closer."""

from __future__ import annotations

LABELS = {
    "tv_to_target": "TV to the target",
    "pairwise_abs_gap": "abs pref gap",
    "pairwise_pmd": "pairwise PMD (ours)",
}
# Optima closer than this in TV to the target predict no difference a CPU run can see.
NO_DIFFERENCE = 0.01


def _g(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.3g}"


def _interval(entry: dict) -> tuple[float, float] | None:
    lo, hi = entry.get("ci95", (None, None))
    if lo is None or hi is None or lo != lo or hi != hi:  # null or nan: one seed
        return None
    return lo, hi


def verdict(entry: dict, a: str, b: str) -> str:
    """Which of ``a`` and ``b`` is closer, by the sign of the paired interval of ``a - b``."""
    bounds = _interval(entry)
    if bounds is None:
        return "one seed, no interval: no result"
    lo, hi = bounds
    if lo > 0:
        return f"{b} is closer (the interval lies above 0)"
    if hi < 0:
        return f"{a} is closer (the interval lies below 0)"
    return "the interval contains 0: no result"


def find_pair(summary: dict, a: str, b: str, metric: str) -> dict | None:
    for entry in summary.get("paired", []):
        if (entry["a"], entry["b"], entry["metric"]) == (a, b, metric):
            return entry
    return None


def paired_sentence(summary: dict, entry: dict) -> str:
    """``a - b`` in a metric, mean [95% t-interval] over the seeds, paired, beside the
    optima's prediction, its verdict, and the same over prompts where there are several."""
    a, b, metric = entry["a"], entry["b"], entry["metric"]
    n = len(entry["per_seed"])
    bounds = _interval(entry)
    interval = "" if bounds is None else f" [{_g(bounds[0])}, {_g(bounds[1])}]"
    text = (
        f"{a} minus {b} in {LABELS[metric]}: predicted {_g(entry.get('predicted'))} by "
        f"the exact optima, measured {_g(entry['mean'])}{interval} (paired over {n} "
        f"seed(s)): {verdict(entry, a, b)}"
    )
    across = entry.get("across_prompts")
    if across and len(across.get("per_prompt", [])) > 1 and _interval(across):
        lo, hi = across["ci95"]
        text += (
            f"; over the {len(across['per_prompt'])} prompts (each with its own reference "
            f"odds; seed means) {_g(across['mean'])} [{_g(lo)}, {_g(hi)}]"
        )
    return text + "."


def mechanism_sentence(summary: dict, entry: dict) -> str | None:
    """Why KL and conditional PM differ, or why they cannot here, from the optima alone."""
    methods = summary.get("methods", {})
    a, b = methods[entry["a"]], methods[entry["b"]]
    predicted = entry.get("predicted")
    if entry["metric"] != "tv_to_target" or predicted is None:
        return None
    if a["regularizer"] == b["regularizer"] == "cpm" and a["alpha"] != b["alpha"]:
        low, high = sorted((a["alpha"], b["alpha"]))
        return (
            f"The two thresholds differ on the answers whose reference probability lies between "
            f"{low:g} and {high:g}: matched to the preferences at alpha {low:g}, damped by "
            f"their whole reference probability at alpha {high:g}, where KL damps them only "
            "relative to the other answers (docs/theory.md §4, 'The threshold is a cliff'); "
            f"the optima differ by {abs(predicted):.3g}."
        )
    if {a["regularizer"], b["regularizer"]} != {"kl", "cpm"}:
        return None
    if abs(predicted) <= NO_DIFFERENCE:
        return (
            f"The two optima differ by {abs(predicted):.3g} in TV to the target: the reference "
            "is close to uniform over the answers, and with a uniform reference KL's optimum "
            "pi_ref e^{r/beta} at beta 1 is softmax(r) itself (docs/theory.md §2), so no "
            "difference is predicted and none can be seen."
        )
    return (
        f"The optima differ by {abs(predicted):.3g}: KL's optimum pi_ref e^{{r/beta}} keeps the "
        "reference's odds, conditional PM's replaces them by the preferences on the answers "
        "the reference finds plausible (above alpha) and keeps them below alpha "
        "(docs/theory.md §2, §4)."
    )


def method_vs_method(summary: dict) -> list[str]:
    """The sentences of every matched-beta pair in TV to the target (the claim), then the
    pairs across beta in pairwise PMD (collapse), each citing its paired interval."""
    sentences, said = [], set()
    for entry in summary.get("paired", []):
        if entry["metric"] != "tv_to_target" or not entry.get("matched_beta"):
            continue
        sentences.append(paired_sentence(summary, entry))
        mechanism = mechanism_sentence(summary, entry)
        reason = mechanism.split(":", 1)[-1] if mechanism else None
        if reason in said:  # the same reason, said once
            mechanism = (
                f"(The optima differ by {abs(entry['predicted']):.3g}, for the same reason.)"
            )
        elif reason:
            said.add(reason)
        if mechanism:
            sentences.append(mechanism)
    methods = summary.get("methods", {})
    for entry in summary.get("paired", []):
        if entry["metric"] != "pairwise_pmd" or entry.get("matched_beta"):
            continue
        a, b = methods[entry["a"]], methods[entry["b"]]
        if {a["regularizer"], b["regularizer"]} == {"kl", "cpm"}:
            sentences.append(
                paired_sentence(summary, entry)[:-1] + " (not at matched beta: KL at a small "
                "beta is how RLHF is run in practice)."
            )
    return sentences
