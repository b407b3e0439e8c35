"""pmrlhf: preference-matching RLHF.

Layers (nothing imports upward): ``pmrlhf.theory`` (exact math) <- ``pmrlhf.simulate``
(numbers) <- ``pmrlhf.lm_experiments`` (models); figures and reports on top.
"""

from .errors import FolderBusyError, PmrlhfTypeError, PmrlhfUserError

__version__ = "0.1.0"

__all__ = ["FolderBusyError", "PmrlhfTypeError", "PmrlhfUserError", "__version__"]
