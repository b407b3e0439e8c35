"""The theory's part of README's free-text block, printed before the measurement: what each
threshold ``alpha`` makes plausible in the reference's token probabilities, and each
method's exact optimum on the held-out pairs given the actual reference and reward model
(``summary["reference_tokens"]`` and ``summary["optima"]`` of ``lm paper``'s audit;
docs/theory.md §4)."""

from __future__ import annotations

import pandas as pd

from ..lm_experiments.train.method import REFERENCE

PREDICTION_COLUMNS = {
    "pairs_pmd_vs_population": "pairwise PMD vs population (ours)",
    "pairs_gap_vs_population": "pairs gap vs population",
    "pairs_pmd_vs_reward": "pairwise PMD vs reward model",
    "pairs_gap_vs_reward": "pairs gap vs reward model",
    "reference_pairs_gap_vs_optimum": "reference's gap to this optimum",
}


def alpha_table(summary: dict) -> pd.DataFrame:
    """One row per threshold: the share of the held-out responses' tokens the reference
    finds plausible, the share of responses that are wholly plausible, and how much of the
    reference's pairwise log-odds cPM's optimum keeps."""
    rows = []
    for alpha, entry in sorted(summary["reference_tokens"].items(), key=lambda kv: float(kv[0])):
        rows.append(
            {
                "alpha": f"{float(alpha):g}"
                + (" (used)" if float(alpha) == summary["alpha"] else ""),
                "tokens with pi_ref > alpha": f"{entry['plausible_tokens']:.3g}",
                "responses wholly plausible": f"{entry['plausible_responses']:.3g}",
                "reference log-odds kept by cPM's optimum": f"{entry['reference_odds_kept']:.3g}",
            }
        )
    return pd.DataFrame(rows)


def alpha_sentence(summary: dict) -> str:
    """What the run's ``alpha`` does, from :func:`alpha_table`'s numbers."""
    used = next(
        (e for a, e in summary["reference_tokens"].items() if float(a) == summary["alpha"]), None
    )
    if used is None:
        return ""
    return (
        f"At alpha {summary['alpha']:g} the reference finds {used['plausible_tokens']:.0%} of "
        "the tokens of the held-out responses plausible and "
        f"{used['plausible_responses']:.0%} of the responses plausible in every token, so "
        "conditional PM's optimum keeps "
        f"{used['reference_odds_kept']:.2f} of the reference's pairwise log-odds (KL's keeps "
        "1, PM's 0): the log-odds of two free-text answers are carried by the few tokens the "
        "reference finds unlikely. A lower alpha makes more tokens plausible and moves cPM "
        "toward PM; a higher one toward KL."
    )


def prediction_table(summary: dict) -> pd.DataFrame:
    """Each method's optimum, scored on the held-out pairs like a policy (no interval: it
    is computed, not sampled), with the reference's distance to it."""
    rows = []
    for name, optimum in summary["optima"].items():
        row = {"optimum of": name}
        row |= {
            label: f"{optimum[key]:.3g}" if key in optimum else "–"
            for key, label in PREDICTION_COLUMNS.items()
        }
        rows.append(row)
    rm = summary.get("reward_model", {})
    reference = summary["policies"].get(REFERENCE, {}).get("pairs_gap_vs_reward")
    if "pmd_vs_population" in rm and reference is not None:
        # PM's optimum at beta 1 implies the reward model's preferences exactly (§3).
        values = [rm["pmd_vs_population"], rm["gap_vs_population"], 0.0, 0.0, reference["mean"]]
        row = {"optimum of": "PM b=1 (not trained): the reward model's own preferences"}
        rows.append(
            row
            | {
                label: f"{v:.3g}"
                for label, v in zip(PREDICTION_COLUMNS.values(), values, strict=True)
            }
        )
    return pd.DataFrame(rows)


def prediction_sentences(summary: dict) -> list[str]:
    """The paper's claim as the optima state it, per beta at which both KL and cPM ran:
    which optimum is closer to the population, beside the reference's own distance."""
    optima, policies = summary["optima"], summary["policies"]
    reference = policies.get(REFERENCE, {}).get("pairs_pmd_vs_population", {}).get("mean")
    key = "pairs_pmd_vs_population"
    by_beta: dict[str, dict[str, float]] = {}
    for name, optimum in optima.items():
        kind, _, rest = name.partition(" b=")
        if key in optimum and rest:
            by_beta.setdefault(rest.split(" ")[0], {})[kind] = optimum[key]
    target = summary.get("reward_model", {}).get("pmd_vs_population")
    lines = []
    for beta, kinds in by_beta.items():
        if "KL" not in kinds or "cPM" not in kinds:
            continue
        holds = kinds["cPM"] < kinds["KL"]
        text = (
            f"At beta {beta}, KL's optimum is at pairwise PMD {kinds['KL']:.3g} from the "
            f"population and conditional PM's at {kinds['cPM']:.3g}"
            + (f" (the reference: {reference:.3g})" if reference is not None else "")
            + (
                ": the theory predicts conditional PM the closer, as the paper claims"
                if holds
                else ": the theory predicts KL the closer here, against the paper's claim"
            )
        )
        if holds and target is not None and kinds["KL"] > target:
            share = (kinds["KL"] - kinds["cPM"]) / (kinds["KL"] - target)
            text += (
                f", by {share:.0%} of the way from KL's optimum to the reward model's own "
                f"preferences ({target:.3g}, PM's optimum at beta 1)"
            )
        lines.append(text + ".")
    return lines
