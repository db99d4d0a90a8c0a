"""EDTalk library: everything between files and tensors (checkpoints, audio, and the pipeline).

>>> import edtalk
>>> gen = edtalk.load_generator("ckpts/EDTalk.pt")          # full or lip-pose, told from keys
>>> a2l = edtalk.load_audio2lip("ckpts/Audio2Lip.pt")
>>> lip = a2l.predict(torch.from_numpy(edtalk.audio.mel_windows("speech.wav")))   # (T, 20)
>>> frames = gen.animate(source, lip[:8], pose=None, exp=happy)                      # (8, 3, 256, 256)
"""

from . import audio
from .checkpoints import (
    CHECKPOINTS,
    EXPRESSIONS,
    load_audio2exp,
    load_audio2lip,
    load_audio2pose,
    load_expression_weight,
    load_expression_weights,
    load_generator,
)
from .device import resolve_device
from .errors import AudioError, CheckpointError, EDTalkError
from .gfpgan import load_gfpgan

__all__ = [
    "CHECKPOINTS",
    "EXPRESSIONS",
    "AudioError",
    "CheckpointError",
    "EDTalkError",
    "audio",
    "load_audio2exp",
    "load_audio2lip",
    "load_audio2pose",
    "load_expression_weight",
    "load_expression_weights",
    "load_generator",
    "load_gfpgan",
    "resolve_device",
]
