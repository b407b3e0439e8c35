"""The main job: run every stage, then write REPORT.md / REPORT.html (top layer).

Imports every layer below it; nothing imports it.
"""

from .pipeline import reproduce
from .reproduce_config import ReproduceConfig
from .stages import STAGES

__all__ = ["STAGES", "ReproduceConfig", "reproduce"]
