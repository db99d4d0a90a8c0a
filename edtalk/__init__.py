"""EDTalk library: everything between files and tensors (checkpoints, audio, and the pipeline).

>>> import edtalk
>>> gen = edtalk.load_generator("ckpts/EDTalk.pt")          # full or lip-pose, told from keys
>>> a2l = edtalk.load_audio2lip("ckpts/Audio2Lip.pt")
>>> lip = edtalk.predict_from_mel(a2l, torch.from_numpy(edtalk.audio.mel_windows("speech.wav")))  # (T, 20)
>>> frames = edtalk.animate(gen, source, lip[:8], pose=None, exp=happy)                 # (8, 3, 256, 256)

`edtalk.animate`, `edtalk.encode_source` and `edtalk.predict_from_mel` check the tensors (one-line
EDTalkError) before calling the network's own method, which checks nothing.
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
from .inputs import animate, encode_source, predict_from_mel

__all__ = [
    "CHECKPOINTS",
    "EXPRESSIONS",
    "AudioError",
    "CheckpointError",
    "EDTalkError",
    "animate",
    "audio",
    "encode_source",
    "load_audio2exp",
    "load_audio2lip",
    "load_audio2pose",
    "load_expression_weight",
    "load_expression_weights",
    "load_generator",
    "load_gfpgan",
    "predict_from_mel",
    "resolve_device",
]
