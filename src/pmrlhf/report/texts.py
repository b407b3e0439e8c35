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
            "re-imports the reference's bias. Its weight jumps from pi_ref to 1 at the "
            "threshold (docs/theory.md §4, 'The threshold is a cliff'), so a token just below "
            "alpha is damped by its whole reference probability where KL damps it only "
            "relative to its neighbours: that is why a too-high alpha (0.5 here) ends further "
            "from the preferences than KL itself (negative reductions). At beta < 1 every "
            "policy is sharpened towards softmax(r/beta), which dominates the divergence.",
        ),
    ),
}
