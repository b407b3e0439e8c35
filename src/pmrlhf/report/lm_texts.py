"""The language-model section's prose: every statement decided by the numbers of a
comparison's ``summary.json`` (means with 95% intervals; docs/theory.md §8)."""

from ..lm_experiments.evaluate.summary import COLLAPSE
from .paired_texts import method_vs_method

# Our threshold for "preference collapse": the minority answers keep less than this share of
# the mass the preferences give them.
COLLAPSE_SHARE = 0.5

LM_INTRO = (
    "A real causal language model is fine-tuned with RLOO against the task's exact reward "
    "(a completion is a candidate iff its token ids are the candidate's, docs/theory.md §7), "
    "from the same SFT reference per seed, with the KL, PM and conditional-PM penalties of "
    "docs/theory.md §4. Every candidate's probability is computed exactly by teacher forcing, "
    "and each method's exact optimum given the trained reference is computed beside it "
    "(docs/theory.md §7). Pairwise PMD is this project's definition (unbounded; "
    "docs/theory.md §5); abs pref gap, the mean |sigma(r_a - r_b) - pi_a/(pi_a + pi_b)|, is its "
    "bounded companion. Numbers are means over seeds with a 95% Student-t interval "
    "(docs/theory.md §8). Full-batch SFT of a pretrained model does not depend on the seed, so "
    "every seed starts from the same reference: the intervals measure RL's run-to-run "
    "variation around that reference, not how a result changes with the reference; a "
    "difference between two methods cites the paired per-seed interval, and where prompts "
    "differ in their reference odds the interval over prompts as well."
)


ESTIMATOR_TEXT = {
    "expected": "The penalty's gradient is the exact expectation over the vocabulary at every "
    "sampled history, its score-function part counting only the penalties after each token "
    '(docs/theory.md §4, "Gradients").',
    "sampled": "The sampled tokens' summed penalty is subtracted from the reward, as TRL does "
    '(docs/theory.md §4, "Gradients").',
}


def _num(value, spec: str = ".3g") -> str:
    """``value`` formatted by ``spec``; ``n/a`` for ``null`` (a value that was not finite)."""
    return "n/a" if value is None else format(value, spec)


def _find(summary: dict, regularizer: str, beta: float | None = None):
    for name, values in summary.get("methods", {}).items():
        if values.get("regularizer") == regularizer and (beta is None or values["beta"] == beta):
            return name, values
    return None, None


def _bound(values: dict, key: str, side: int) -> float | None:
    """The lower (``side`` 0) or upper (1) end of ``key``'s 95% interval; None when there is
    none (one seed: null or nan) or the value is missing."""
    try:
        bound = values["ci95"][key][side]
    except (KeyError, TypeError, IndexError):
        return None
    return None if bound is None or bound != bound else bound


def lm_paragraphs(summary: dict) -> list[str]:
    """The LM section's prose, every statement decided by the numbers of ``summary.json``."""
    methods = summary.get("methods", {})
    paragraphs = [LM_INTRO]
    estimator = summary.get("config", {}).get("rl", {}).get("penalty_gradient")
    if estimator in ESTIMATOR_TEXT:
        paragraphs[0] += " " + ESTIMATOR_TEXT[estimator]
    rl = {n: v for n, v in methods.items() if v.get("regularizer")}
    if not rl:
        return paragraphs
    converged, far = [], []
    for name, values in rl.items():
        distance = values.get("mean", {}).get("tv_to_optimum")
        if distance is None:
            continue
        (converged if distance <= 0.1 else far).append(f"{name} ({_num(distance, '.3f')})")
    sentences = []
    if converged:
        sentences.append(
            "Within 0.1 (mean TV) of its exact optimum given the reference: "
            + ", ".join(converged)
            + "."
        )
    if far:
        sentences.append(
            "Further than 0.1 from its optimum, so its numbers describe training, not the "
            "objective: " + ", ".join(far) + "."
        )
    sentences += _far_prompts(summary, rl)
    paragraphs.append(" ".join(sentences))
    sentences = []
    kl_small = next(
        ((n, v) for n, v in rl.items() if v["regularizer"] == "kl" and v["beta"] < 1), (None, None)
    )
    if kl_small[0]:
        name, values = kl_small
        mass = values["mean"].get("minority_mass")
        target = values["mean"].get("target_minority_mass")
        share = None if mass is None or not target else mass / target
        if share is None:
            verdict = "."
        elif share < COLLAPSE_SHARE:
            verdict = (
                f" ({_num(100 * share, '.3g')}% of it): preference collapse by our threshold "
                f"(the minority keeps less than {COLLAPSE_SHARE:.0%} of its preferred share)."
            )
        else:
            verdict = (
                f" ({_num(100 * share, '.0f')}% of it): no collapse by our threshold (less "
                f"than {COLLAPSE_SHARE:.0%} of its preferred share)."
            )
        sentences.append(
            f"{name} leaves the minority answers {_num(mass)} of the candidate mass where the "
            f"preferences give them {_num(target)}" + verdict
        )
    sentences += method_vs_method(summary)
    pm_name, pm = _find(summary, "pm", 1.0)
    if pm is not None:
        sentences.append(
            f"{pm_name} keeps {_num(pm['mean'].get('coverage'))} of its mass on the candidate "
            f"answers (its optimum: {_num(pm['mean'].get('optimum_coverage'))}): plain PM "
            "rewards entropy on every token and spreads over text that is not an answer, which "
            "is why conditional PM exists (docs/theory.md §4). Its candidate metrics are "
            f"renormalised from {_num(pm['mean'].get('coverage'), '.2g')} of the mass and "
            "describe almost nothing it generates; it is left out of the collapse flags."
        )
    paragraphs.append(" ".join(sentences))
    reference = methods.get("reference (SFT)")
    if reference is not None:
        paragraphs += _reference_paragraph(reference, rl)
    flagged = []
    for name, values in methods.items():
        if values.get("regularizer") == "pm":  # renormalised from almost no mass
            continue
        for j, prompt in enumerate(values.get("prompts", []), start=1):
            if prompt.get("collapsed_seeds"):
                flagged.append(f"{name} on prompt {j} ({prompt['collapsed_seeds']} seed(s))")
    if flagged:
        paragraphs.append(
            f"Collapsed prompts (our flag: more than {COLLAPSE:.0%} of the candidate mass on one "
            "answer): " + "; ".join(flagged) + "."
        )
    return paragraphs


def _far_prompts(summary: dict, rl: dict) -> list[str]:
    """Prompts where a method's seed-mean TV to its optimum exceeds 0.1, each beside the
    reference's own distance to that optimum (where RL started)."""
    from ..lm_experiments.evaluate.optima import tv_with_other

    reference = summary.get("methods", {}).get("reference (SFT)", {}).get("prompts", [])
    far = []
    for name, values in rl.items():
        for j, cells in enumerate(values.get("per_seed_prompts", [])):
            distances = [c["tv_to_optimum"] for c in cells if "tv_to_optimum" in c]
            if not distances or sum(distances) / len(distances) <= 0.1:
                continue
            text = f"{name} on prompt {j + 1} ({sum(distances) / len(distances):.3f}"
            optimum = values["prompts"][j].get("optimum")
            if j < len(reference) and optimum:
                mass = reference[j]["mass"]
                start = tv_with_other([*mass, max(1 - sum(mass), 0.0)], optimum)
                text += f"; the reference starts {start:.3f} from it"
            far.append(text + ")")
    if not far:
        return []
    return [
        "Per prompt, further than 0.1 from the optimum (seed mean of TV): "
        + "; ".join(far)
        + ". There RL has not reached its objective in these steps, and the measured "
        "difference to another method is not the optima's."
    ]


REFERENCE_LABELS = {
    "tv_to_target": "TV to the target",
    "pairwise_abs_gap": "abs pref gap",
    "pairwise_pmd": "pairwise PMD (ours)",
}


def _reference_paragraph(reference: dict, rl: dict) -> list[str]:
    """Where the SFT reference (one deterministic value per metric) is closer to the
    preferences than an RL method: "beats" when the method's whole 95% interval lies above
    the reference's value (its mean, with one seed), "within" when only its mean does. The
    unbounded PMD and the bounded gap "disagree" when a method is beaten on one of them and
    its mean is at or below the reference's on the other."""
    parts, beaten_on, better_on, within = [], {}, {}, []
    for key, label in REFERENCE_LABELS.items():
        value = reference["mean"].get(key)
        beaten, level, better_on[key] = [], [], set()
        for name, values in rl.items():
            mean = values["mean"].get(key)
            if value is None or mean is None:
                continue
            if mean <= value:
                better_on[key].add(name)
                continue
            lo = _bound(values, key, 0)
            (beaten if lo is None or lo > value else level).append(name)
        beaten_on[key] = set(beaten)
        if beaten:
            parts.append(f"on {label} ({_num(value)}) than {', '.join(beaten)}")
        if level:
            within.append(f"{', '.join(level)} on {label}")
    paragraphs = []
    if parts:
        text = "The SFT reference itself is closer to the preferences " + "; ".join(parts)
        text += " (each of these methods' 95% interval lies entirely above the reference)"
        pmd, gap = "pairwise_pmd", "pairwise_abs_gap"
        if beaten_on[pmd] & better_on[gap] or beaten_on[gap] & better_on[pmd]:
            text += (
                ". The unbounded PMD and the bounded gap disagree here: the PMD is driven "
                "by answers with little mass, its log-odds growing without bound as a "
                "probability goes to zero"
            )
        paragraphs.append(text + ".")
    if within:
        paragraphs.append(
            "Further from the preferences than the reference on average, but with the "
            "reference's value inside its 95% interval, so no result: " + "; ".join(within) + "."
        )
    return paragraphs
