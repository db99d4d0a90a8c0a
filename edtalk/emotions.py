"""Named emotions and their mixes: "happy", "Happy:0.6", "happy:0.6,surprised:0.4".

A mix is a weighted sum of predefined expression weights (ckpt_dir/predefined_exp_weights): each
weight is that emotion's intensity, so "happy:0.5" is half as strong as "happy" and the weights
need not sum to 1. Parsing lives here, apart from the pipeline, so that the demos' flags, the web
UI and the API all accept and reject the same strings with the same messages.
"""

import math

from networks.audio2exp import EMOTIONS  # the one list of emotion names (MEAD's, in Audio2Exp's class order)

from .errors import EDTalkError

__all__ = ["EMOTIONS", "check_expression_scale", "parse_emotion_mix"]


def parse_emotion_mix(spec: str) -> dict[str, float]:
    """'happy:0.6,surprised:0.4' -> {'happy': 0.6, 'surprised': 0.4}; a name alone has weight 1.
    Names are case-insensitive ('Happy' is 'happy').

    Raises EDTalkError (one line, quoting the spec) for an empty part, a weight that is not a
    finite number >= 0, a name given twice, or a mix whose weights are all 0. Whether each name
    exists is checked where the weights are loaded (the message lists the available ones).
    """
    mix: dict[str, float] = {}
    for part in spec.split(","):
        name, sep, weight = (s.strip() for s in part.partition(":"))
        name = name.lower()
        if not name:
            raise EDTalkError(f"emotion mix '{spec}': an empty name (write e.g. happy:0.6,surprised:0.4)")
        try:
            value = float(weight) if sep else 1.0
        except ValueError:
            raise EDTalkError(f"emotion mix '{spec}': the weight of {name} is not a number: '{weight}'") from None
        if not math.isfinite(value) or value < 0:
            raise EDTalkError(f"emotion mix '{spec}': the weight of {name} must be a number >= 0, got {weight}")
        if name in mix:
            raise EDTalkError(f"emotion mix '{spec}': {name} is given twice")
        mix[name] = value
    if not any(mix.values()):
        raise EDTalkError(f"emotion mix '{spec}': every weight is 0")
    return mix


def check_expression_scale(scale: float) -> float:
    """The expression scale (SadTalker's --expression_scale), checked: a finite number >= 0."""
    if not math.isfinite(scale) or scale < 0:
        raise EDTalkError(f"the expression scale must be a number >= 0, got {scale}")
    return float(scale)
