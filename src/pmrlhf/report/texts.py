"""What each result shows and how it relates to the paper's claim (two or three sentences)."""

THEORY_TEXT = (
    "Requiring that the maximizer of sum_y pi(y) [r(y) + R(pi(y))] be softmax(r) for every "
    "reward forces the ODE d/dpi [pi R(pi)] = -log pi + c; sympy's dsolve gives "
    "R(pi) = -log pi + C1 + C2/pi, and pi R(pi) is strictly concave, so the PM property holds "
    "for every member of the family and -log pi is the canonical choice (THEORY.md §3).",
    "The table below maximizes the objective numerically (no closed form involved): the PM "
    "family lands on softmax(r) to solver precision, the counter-examples do not.",
)

EXPERIMENT_TEXT = {
    "collapse": (
        "preference collapse vs beta",
        (
            "KL-regularized RLHF keeps the minority only at beta = 1 with a uniform reference; as "
            "beta shrinks its minority mass falls far below the preference distribution's, and a "
            "reference that already matches the preferences makes it worse (THEORY.md §2).",
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
            "reward model's gap to the population's first-choice distribution (THEORY.md §6).",
        ),
    ),
    "token_tree": (
        "token-level toy language",
        (
            "On an enumerable token tree, token-level PM reproduces sequence-level PM, but puts "
            "mass on implausible sequences; conditional PM with threshold alpha keeps PM among "
            "plausible sequences and damps the rest by their reference probability (THEORY.md §4).",
        ),
    ),
    "pairwise_vs_rankings": (
        "pairwise comparisons vs Plackett-Luce rankings",
        (
            "Full rankings carry more information per annotation than single comparisons, so "
            "the PL fit reaches a given accuracy of the reward with fewer annotations.",
        ),
    ),
}

LM_TEXT = (
    "A real causal language model is fine-tuned with RLOO against the task's exact reward, "
    "from the same start and seed, with the KL, PM and conditional-PM penalties of THEORY.md §4; "
    "candidate probabilities are computed exactly by teacher forcing.",
    "KL-RLHF at small beta concentrates on the majority answer, PM and conditional PM keep the "
    "minority answers near their preference probabilities; the pairwise preference-matching "
    "divergence (THEORY.md §5) quantifies the gap, as in the paper's 29-41% improvement.",
)
