"""The main job: run every stage, then write REPORT.md / REPORT.html (top layer).

Imports every layer below it; nothing imports it.
"""

from .pipeline import STAGES, ReproduceConfig, reproduce

__all__ = ["STAGES", "ReproduceConfig", "reproduce"]
