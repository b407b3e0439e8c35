"""What each result shows and how it relates to the paper's claim (two or three sentences)."""

DERIVATION_TEXT = (
    "Requiring that the maximizer of sum_y pi(y) [r(y) + R(pi(y))] be softmax(r) for every "
    "reward forces the ODE d/dpi [pi R(pi)] = -log pi + c; sympy's dsolve gives "
    "R(pi) = -log pi + C1 + C2/pi, and pi R(pi) is strictly concave, so the PM property holds "
    "for every member of the family and -log pi is the canonical choice (docs/theory.md §3).",
    "The table below maximizes the objective numerically (no closed form involved): the PM "
    "family lands on softmax(r) to solver precision, the counter-examples do not.",
)

EXPERIMENT_TEXT = {
    "collapse": (
        "preference collapse vs beta",
        (
            "KL-regularized RLHF keeps the minority only at beta = 1 with a uniform reference; as "
            "beta shrinks its minority mass falls far below the preference distribution's, and a "
            "reference that already matches the preferences makes it worse (docs/theory.md §2).",
            "The PM optimum lies on the diagonal for every majority share: it gives the minority "
            "exactly its preference probability, the paper's central claim.",
        ),
    ),
    "finite_data": (
        "finite preference data",
        (
            "With a BTL reward fitted from a finite number of comparisons, the PM policy's "
            "distance to the true preference distribution shrinks with the data, while the KL "
            "policy's stays large however much data there is: the bias is in the algorithm, "
            "not in the reward estimate.",
        ),
    ),
    "heterogeneous": (
        "heterogeneous annotator populations",
        (
            "With several annotator groups the fitted BTL reward is a projection: PM matches "
            "softmax(r_hat) exactly (the algorithm's gap is zero), and what remains is the "
            "reward model's gap to the population's first-choice distribution (docs/theory.md §6).",
        ),
    ),
    "token_tree": (
        "token-level toy language",
        (
            "On an enumerable token tree, token-level PM reproduces sequence-level PM, but puts "
            "mass on implausible sequences; conditional PM with threshold alpha keeps PM among "
            "plausible sequences and damps the rest by their reference probability "
            "(docs/theory.md §4).",
        ),
    ),
    "pairwise_vs_rankings": (
        "pairwise comparisons vs Plackett-Luce rankings",
        (
            "Full rankings carry more information per annotation than single comparisons, so "
            "the PL fit reaches a given accuracy of the reward with fewer annotations.",
        ),
    ),
    "biased_reference": (
        "odds inherited from a biased reference",
        (
            "The KL optimum's odds are the reference's odds times the preference odds to the "
            "power 1/beta (docs/theory.md §2), so a reference that favours one response passes its "
            "bias straight to the aligned policy, even at beta = 1; the dots are policies trained "
            "by sampled REINFORCE, which land on the closed forms.",
            "PM ignores the reference entirely; conditional PM ignores it while both responses are "
            "plausible and damps a response only once its reference probability drops below alpha.",
        ),
    ),
    "implied_preferences": (
        "implied pairwise preferences (histograms)",
        (
            "The simulation analogue of the paper's histograms: for every pair of meaningful "
            "responses of many toy-language prompts, the preference each model implies for the "
            "reward's favourite. KL-RLHF at small beta piles the pairs at 1 (collapse) and at "
            "beta = 1 still smears them with the reference's bias; PM and conditional PM "
            "reproduce the reward model's histogram.",
            "The titles give the price: plain PM keeps only a few percent of its mass on "
            "meaningful sequences, conditional PM keeps as much as the reference.",
        ),
    ),
    "beta_alpha_grid": (
        "pairwise PMD and reward over beta x alpha",
        (
            "The analogue of the paper's table: pairwise preference-matching divergence to the "
            "reward model and reward collected, for KL-RLHF and conditional PM at every beta and "
            "alpha, with the reduction of the divergence relative to KL-RLHF at the same beta "
            "(the paper reports 29-41% for OPT-1.3B and Llama-2-7B).",
            "Conditional PM helps when alpha sits below the probability the reference gives "
            "plausible tokens; a threshold above it treats plausible tokens as implausible and "
            "re-imports the reference's bias. At beta < 1 every policy is sharpened towards "
            "softmax(r/beta), which dominates the divergence.",
        ),
    ),
}

LM_INTRO = (
    "A real causal language model is fine-tuned with RLOO against the task's exact reward "
    "(a completion is a candidate iff its token ids are the candidate's, docs/theory.md §7), "
    "from the same SFT reference per seed, with the KL, PM and conditional-PM penalties of "
    "docs/theory.md §4. Every candidate's probability is computed exactly by teacher forcing, "
    "and each method's exact optimum given the trained reference is computed beside it "
    "(docs/theory.md §7). Pairwise PMD is this project's definition (unbounded; "
    "docs/theory.md §5); abs pref gap, the mean |sigma(r_a - r_b) - pi_a/(pi_a + pi_b)|, is its "
    "bounded companion. Numbers are means over seeds with a 95% Student-t interval "
    "(docs/theory.md §8)."
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


def _interval(values: dict, key: str) -> str:
    mean = values.get("mean", {}).get(key)
    lo, hi = values.get("ci95", {}).get(key, (None, None))
    if lo is None or hi is None or lo != lo:  # null or nan: one seed
        return _num(mean)
    return f"{_num(mean)} [{_num(lo)}, {_num(hi)}]"


def _find(summary: dict, regularizer: str, beta: float | None = None):
    for name, values in summary.get("methods", {}).items():
        if values.get("regularizer") == regularizer and (beta is None or values["beta"] == beta):
            return name, values
    return None, None


def _below(a: dict, b: dict, key: str) -> bool | None:
    """True when a's 95% interval of ``key`` lies entirely below b's, False when they
    overlap, None when there is no interval (one seed) or a value is missing."""
    try:
        a_hi, b_lo = a["ci95"][key][1], b["ci95"][key][0]
    except (KeyError, TypeError, IndexError):
        return None
    if a_hi is None or b_lo is None or a_hi != a_hi or b_lo != b_lo:
        return None
    return a_hi < b_lo


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
        elif share < 0.5:
            verdict = f" ({_num(100 * share, '.1f')}% of it): preference collapse."
        else:
            verdict = f" ({_num(100 * share, '.0f')}% of it): no collapse in this run."
        sentences.append(
            f"{name} leaves the minority answers {_num(mass)} of the candidate mass where the "
            f"preferences give them {_num(target)}" + verdict
        )
    cpm_name, cpm = _find(summary, "cpm", 1.0)
    for other_name, other in ((kl_small[0], kl_small[1]), _find(summary, "kl", 1.0)):
        if cpm is None or other is None:
            continue
        verdict = _below(cpm, other, "pairwise_pmd")
        text = (
            f"{cpm_name}'s pairwise PMD {_interval(cpm, 'pairwise_pmd')} against {other_name}'s "
            f"{_interval(other, 'pairwise_pmd')}: "
        )
        if verdict is True:
            text += "its interval lies entirely below"
        elif verdict is False:
            text += "the intervals overlap, so this difference is no result"
        else:
            text += "one seed, no interval"
        optimum_a = cpm["mean"].get("optimum_pairwise_pmd")
        optimum_b = other["mean"].get("optimum_pairwise_pmd")
        if optimum_a is not None and optimum_b is not None:
            text += f" (their exact optima: {_num(optimum_a)} vs {_num(optimum_b)})"
        sentences.append(text + ".")
    kl_name, kl = _find(summary, "kl", 1.0)
    if cpm is not None and kl is not None:
        text = (
            f"At matched beta 1, TV to the preference distribution: {cpm_name} "
            f"{_interval(cpm, 'tv_to_target')} against {kl_name} {_interval(kl, 'tv_to_target')}"
        )
        verdict = _below(cpm, kl, "tv_to_target")
        if verdict is True:
            text += (
                ": conditional PM lies entirely below; KL's optimum keeps the reference's odds "
                "(pi_ref e^{r/beta}), conditional PM's replaces them on plausible answers"
            )
        elif verdict is False:
            text += ": the intervals overlap"
        optimum_a = cpm["mean"].get("optimum_tv_to_target")
        optimum_b = kl["mean"].get("optimum_tv_to_target")
        if optimum_a is not None and optimum_b is not None:
            text += f" (their exact optima: {_num(optimum_a)} vs {_num(optimum_b)})"
        sentences.append(text + ".")
    pm_name, pm = _find(summary, "pm", 1.0)
    if pm is not None:
        sentences.append(
            f"{pm_name} keeps {_num(pm['mean'].get('coverage'))} of its mass on the candidate "
            f"answers (its optimum: {_num(pm['mean'].get('optimum_coverage'))}): plain PM "
            "rewards entropy on every token and spreads over text that is not an answer, which "
            "is why conditional PM exists (docs/theory.md §4)."
        )
    paragraphs.append(" ".join(sentences))
    reference = methods.get("reference (SFT)")
    if reference is not None:
        labels = {
            "tv_to_target": "TV to the target",
            "pairwise_abs_gap": "abs pref gap",
            "pairwise_pmd": "pairwise PMD (ours)",
        }
        parts, beaten_on = [], {}
        for key, label in labels.items():
            value = reference["mean"].get(key)
            beaten = [
                n for n, v in rl.items()
                if value is not None and v["mean"].get(key) is not None and v["mean"][key] > value
            ]  # fmt: skip
            beaten_on[key] = set(beaten)
            if beaten:
                parts.append(f"on {label} ({_num(value)}) than {', '.join(beaten)}")
        if parts:
            text = "The SFT reference itself is closer to the preferences " + "; ".join(parts)
            if beaten_on["pairwise_pmd"] != beaten_on["pairwise_abs_gap"]:
                text += (
                    ". The unbounded PMD and the bounded gap disagree here: the PMD is driven "
                    "by answers with little mass, its log-odds growing without bound as a "
                    "probability goes to zero"
                )
            paragraphs.append(text + ".")
    flagged = []
    for name, values in methods.items():
        for j, prompt in enumerate(values.get("prompts", []), start=1):
            if prompt.get("collapsed_seeds"):
                flagged.append(f"{name} on prompt {j} ({prompt['collapsed_seeds']} seed(s))")
    if flagged:
        paragraphs.append(
            "More than 90% of the candidate mass on one answer: " + "; ".join(flagged) + "."
        )
    return paragraphs
