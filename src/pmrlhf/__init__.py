"""pmrlhf: preference-matching RLHF.

Layers (nothing imports upward): ``pmrlhf.theory`` (exact math) <- ``pmrlhf.simulate``
(numbers) <- ``pmrlhf.lm_experiments`` (models); figures and reports on top.
"""

__version__ = "0.1.0"
