"""A synthetic Referred Visual Search dataset whose condition decides the answer.

Products of the ten categories are drawn procedurally; outfits of 3–5 of them are worn by a
figure in 1–2 scenes, and each scene is a complex image of every product in it. See
``docs/data.md``.
"""

from referred.data.synth.outfits import SynthConfig
from referred.data.synth.writer import OUTFITS_FILE, SynthReport, write_synthetic_dataset

__all__ = ["OUTFITS_FILE", "SynthConfig", "SynthReport", "write_synthetic_dataset"]
