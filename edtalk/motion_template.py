"""Motion templates: a driving clip reduced once to its motion coefficients, saved as a small .npz.

A template drives a render exactly as the clip it came from would (same coefficients, so the same
frames) without decoding, detecting or encoding the clip again: save a head-motion or expression
clip once (`--save_motion`), then give the .npz to `--pose_driving_path`, `--exp_driving_path` or
`--lip_driving_path` in any number of renders.

Format (numpy .npz, no pickled objects), version 1:
    version    int    format version; files of a newer version are refused, not misread
    fps        float  frames per second of the coefficient tracks (the pipeline's 25)
    source     str    file name of the clip the motion came from
    model      str    'full' or 'lip_pose': the generator kind that computed the coefficients
    generator  str    fingerprint of that generator's encoder and motion heads (see `fingerprint`)
    lip, pose[, exp]  float32 (N, 20), (N, 6), (N, 10): mouth, head pose, expression per frame
                      (no `exp` from the lip-pose model, which has no expression bank)
"""

import hashlib
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .errors import EDTalkError
from .files import write_atomically

VERSION = 1
SUFFIX = ".npz"
PARTS = ("lip", "pose", "exp")
FIELDS = ("version", "fps", "source", "model", "generator")


class TemplateError(EDTalkError):
    """A motion template is missing, unreadable, corrupt, of a newer format, or does not fit the generator."""


@dataclass
class MotionTemplate:
    """Per-frame motion of one driving clip. coefficients: {part: (N, dim) float32} for the parts the
    generator reads; fps: their frame rate; source: the clip's file name; model / generator: which
    generator computed them (kind and weight fingerprint)."""

    coefficients: dict[str, np.ndarray]
    fps: float
    source: str
    model: str
    generator: str

    @property
    def frames(self) -> int:
        return len(next(iter(self.coefficients.values())))


def is_template(path: str | Path) -> bool:
    """True for a file that names a motion template (by its .npz extension), not an image or video."""
    return Path(path).suffix.lower() == SUFFIX


def check_template_path(path: str | Path) -> Path:
    """Check, before any work, that a template can be written at `path`; TemplateError (one line) if not."""
    path = Path(path)
    if not is_template(path):
        raise TemplateError(f"--save_motion must end in {SUFFIX} (a motion template), got {path}")
    if path.is_dir():
        raise TemplateError(f"--save_motion {path} is a folder: give a file name ending in {SUFFIX}")
    if not path.parent.is_dir():
        raise TemplateError(f"the folder of --save_motion {path} does not exist: {path.parent}")
    return path


def fingerprint(modules: list[torch.nn.Module]) -> str:
    """16 hex digits of SHA-256 over the parameters and buffers of `modules` (name, shape and bytes):
    equal for the same weights on any device, different for another or a fine-tuned checkpoint."""
    digest = hashlib.sha256()
    for module in modules:
        for name, tensor in module.state_dict().items():
            data = tensor.detach().to("cpu", torch.float32).contiguous()
            digest.update(f"{name}{tuple(data.shape)}".encode())
            digest.update(data.numpy().tobytes())
    return digest.hexdigest()[:16]


def motion_fingerprint(gen: torch.nn.Module) -> str:
    """`fingerprint` of a generator's weights that turn frames into coefficients (encoder and motion
    heads): what motion templates and the Audio2Pose / Audio2Exp checkpoints record."""
    heads = [gen.enc, gen.fc, gen.lip_fc, gen.pose_fc] + ([gen.exp_fc] if gen.has_expression else [])
    return fingerprint(heads)


def save_template(template: MotionTemplate, path: str | Path) -> Path:
    """Write `template` to `path` (checked with `check_template_path`), atomically."""
    path = check_template_path(path)
    fields = {
        "version": np.array(VERSION),
        "fps": np.array(float(template.fps)),
        "source": np.array(template.source),
        "model": np.array(template.model),
        "generator": np.array(template.generator),
    }
    arrays = {part: np.asarray(c, np.float32) for part, c in template.coefficients.items()}
    with write_atomically(path) as file:
        np.savez(file, **fields, **arrays)
    return path


def load_template(path: str | Path) -> MotionTemplate:
    """Read and check a motion template; TemplateError (one line naming the file) for a missing,
    unreadable or corrupt file, or one written by a newer version."""
    path = Path(path)
    if not path.is_file():
        raise TemplateError(f"motion template not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as data:
            content = {key: data[key] for key in data.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as exc:
        raise TemplateError(f"{path} is not a motion template (not a readable .npz file: {exc})") from None
    if "version" not in content:
        raise TemplateError(f"{path} is not a motion template (no 'version' field); make one with --save_motion")
    version = int(_scalar(content, "version", "iu", path))
    if version > VERSION:
        raise TemplateError(
            f"{path} is a motion template of format version {version}, newer than this EDTalk reads "
            f"({VERSION}): update EDTalk, or save the template again with this one"
        )
    missing = [key for key in (*FIELDS, "lip", "pose") if key not in content]
    if missing:
        raise TemplateError(f"{path} is corrupt: no {', '.join(missing)}")
    coefficients = {part: content[part] for part in PARTS if part in content}
    lengths = {len(c) if c.ndim == 2 and c.dtype.kind == "f" else 0 for c in coefficients.values()}
    if len(lengths) != 1 or lengths == {0}:
        raise TemplateError(f"{path} is corrupt: its coefficients are not float (N, dim) arrays of one length N >= 1")
    if not all(np.isfinite(c).all() for c in coefficients.values()):
        raise TemplateError(f"{path} is corrupt: its coefficients are not all finite")
    fps = float(_scalar(content, "fps", "iuf", path))
    if not fps > 0:
        raise TemplateError(f"{path} is corrupt: frame rate {fps}")
    text = {key: str(_scalar(content, key, "U", path)) for key in ("source", "model", "generator")}
    return MotionTemplate({part: c.astype(np.float32) for part, c in coefficients.items()}, fps, **text)


def _scalar(content: dict[str, np.ndarray], key: str, kinds: str, path: Path) -> np.ndarray:
    """The single value stored under `key`, if its numpy dtype kind is one of `kinds`."""
    value = content[key]
    if value.shape != () or value.dtype.kind not in kinds:
        raise TemplateError(f"{path} is corrupt: '{key}' is not a single {'text' if kinds == 'U' else 'number'}")
    return value[()]
