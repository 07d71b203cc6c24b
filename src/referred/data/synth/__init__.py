"""A synthetic Referred Visual Search dataset whose condition decides the answer.

Products of the ten categories are drawn procedurally, each unique in details its generic
captions do not name; outfits of 3–5 of them are worn by a posed figure in 1–2 scenes, and
each scene is a complex image of every product in it. Rendering styles vary, and one is kept
out of training for a held-out-style test set. See ``docs/data.md``.
"""

from referred.data.synth.outfits import SynthConfig
from referred.data.synth.rows import OUTFITS_FILE, PRODUCTS_FILE
from referred.data.synth.styles import HELDOUT_STYLE, STYLES
from referred.data.synth.writer import HELDOUT_DIR, SynthReport, write_synthetic_dataset

#: Bumped whenever the same config draws different images (caches compare it).
GENERATOR_VERSION = 2

__all__ = [
    "GENERATOR_VERSION",
    "HELDOUT_DIR",
    "HELDOUT_STYLE",
    "OUTFITS_FILE",
    "PRODUCTS_FILE",
    "STYLES",
    "SynthConfig",
    "SynthReport",
    "write_synthetic_dataset",
]
