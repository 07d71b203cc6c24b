"""Is the asked item in the photo at all? "Not in this photo" for referred search.

A referred search always returns the nearest products, even when the shopper asks for a hat
on a photo without one. A :class:`PresenceHead` answers the question beside the search: the
calibrated probability that an item of the asked condition is worn in the scene, from frozen
features of the scene (:func:`presence_features`) and the model's own condition token, so it
works for categories and texts alike. It is fitted on scenes whose worn categories are known
(:func:`fit_presence`; the synthetic generator records them), calibrated on the validation
split (Platt scaling, :mod:`referred.presence.calibration`) and saved beside the model
(``presence.safetensors`` + ``presence.json``), where :func:`referred.load_model` finds it.
"""

from referred.presence.calibration import expected_calibration_error, fit_platt, roc_auc
from referred.presence.features import feature_kind, presence_features
from referred.presence.head import Presence, PresenceHead
from referred.presence.io import attach, load_head, save_head

__all__ = [
    "Presence",
    "PresenceHead",
    "attach",
    "expected_calibration_error",
    "feature_kind",
    "fit_platt",
    "load_head",
    "presence_features",
    "roc_auc",
    "save_head",
]
