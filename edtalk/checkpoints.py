"""Loading the official EDTalk checkpoints (and training checkpoints in the same format).

Official containers: `EDTalk.pt` and `EDTalk_lip_pose.pt` hold {'gen': state_dict},
`Audio2Lip.pt` holds {'audio2lip': state_dict}. Files are read with `weights_only=True`; a pickled
`argparse.Namespace` (the official training scripts store one as 'args') is explicitly allowed.
"""

import argparse
import logging
from pathlib import Path

import numpy as np
import torch

from networks import Audio2Lip, Generator, GeneratorConfig
from networks.audio2exp import Audio2Exp
from networks.audio2pose import Audio2Pose
from networks.decoder import DECODER_CHANNELS

from .device import resolve_device
from .emotions import EMOTIONS
from .errors import CheckpointError

log = logging.getLogger(__name__)

HF_REPO = "tanhshuai0219/EDTalk"
HF_URL = f"https://huggingface.co/{HF_REPO}"

# File name -> what it is; used in messages and by download_ckpts.py.
CHECKPOINTS = {
    "EDTalk.pt": "full generator (mouth + pose + expression)",
    "EDTalk_lip_pose.pt": "lip-pose generator (mouth + pose, no expression)",
    "Audio2Lip.pt": "audio-to-mouth network",
}
EXPRESSIONS = EMOTIONS  # the predefined expression weights are named after the emotions
EXPRESSION_DIR = "predefined_exp_weights"
AUDIO2EXP_FILE = "Audio2Exp.pt"  # trained by the user (train/train_audio2exp.py), not downloadable
AUDIO2POSE_FILE = "Audio2Pose.pt"  # trained by the user (train/train_audio2pose.py), not downloadable

DEFAULT_CKPT_DIR = Path(__file__).resolve().parents[1] / "ckpts"  # the repository's, from any working directory

FULL, LIP_POSE = "full", "lip_pose"
_KIND_FILE = {FULL: "EDTalk.pt", LIP_POSE: "EDTalk_lip_pose.pt"}
_PREFIXES = ("module.", "_orig_mod.")


def where_to_get(name: str, ckpt_dir: str | Path = DEFAULT_CKPT_DIR) -> str:
    """One sentence telling the user how to obtain checkpoint file `name` into folder `ckpt_dir`."""
    ckpt_dir = Path(ckpt_dir)
    flag = "" if ckpt_dir.resolve() == DEFAULT_CKPT_DIR else f" --ckpt_dir {ckpt_dir}"
    return (
        f"get {name} with `python download_ckpts.py{flag}` or by hand from {HF_URL} "
        f"(put it in {ckpt_dir / name}; see ckpts/README.md)"
    )


def read_checkpoint(path: str | Path, what: str = "checkpoint", hint: str | None = None) -> dict:
    """The dict in a torch file, loaded as plain data (weights only; an official file's
    argparse.Namespace is allowed): the one reader of every weight file the project takes.

    what: how the messages name the file ("checkpoint", "SyncNet weights"); hint: what to do when it
    is missing (default: where to get an official EDTalk file, else "check the path"). Raises a
    one-line CheckpointError for a missing, truncated, corrupt or non-dict file, or one that holds
    pickled Python objects (not loaded, for safety).
    """
    path = Path(path)
    official = path.name in CHECKPOINTS
    if not path.is_file():
        hint = hint or (where_to_get(path.name, path.parent) if official else "check the path")
        raise CheckpointError(f"{what} not found: {path}; {hint}")
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for truncated or foreign files; its text is not for users
        if "Unsupported global" in str(exc):
            raise CheckpointError(
                f"cannot read {what} {path}: it holds pickled Python objects, which are not loaded for safety "
                "(weight files hold only tensors)"
            ) from None
        fix = f"re-download {path.name}; {where_to_get(path.name, path.parent)}" if official else "re-save or copy it"
        raise CheckpointError(f"cannot read {what} {path}: file is truncated or corrupt: {fix}") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{what} {path} is a {type(data).__name__}, not a dict of weights")
    return data


def strip_prefixes(state: dict) -> dict:
    """A state dict without the DataParallel / DistributedDataParallel ('module.') and torch.compile
    ('_orig_mod.') prefixes of its keys: the one place that removes them."""
    out = {}
    for key, value in state.items():
        for prefix in _PREFIXES:
            if key.startswith(prefix):
                key = key[len(prefix) :]
        out[key] = value
    return out


def _state_dict(data: dict, entry: str, path: Path, expected: str) -> dict:
    if entry not in data:
        found = (
            "an Audio2Lip checkpoint" if "audio2lip" in data else "a generator checkpoint" if "gen" in data else None
        )
        what = found or f"a file with entries {sorted(map(str, data))[:6]}"
        raise CheckpointError(f"{path} is {what}, but {expected} was expected")
    return strip_prefixes(data[entry])


def generator_kind(state: dict) -> str:
    """'full' if the state dict has the expression bank, else 'lip_pose'."""
    return FULL if "direction_exp.weight" in state else LIP_POSE


def _generator_config(state: dict, path: Path) -> GeneratorConfig:
    """Sizes read from tensor shapes (lip_fc.2.weight is (20, 512), dec.input.input (1, 512, 4, 4), ...)."""
    try:
        style = state["fc.0.weight"].shape[0]
        lip = state["lip_fc.2.weight"].shape[0]
        pose = state["pose_fc.2.weight"].shape[0]
        first_width = state["dec.input.input"].shape[1]
    except KeyError as exc:
        raise CheckpointError(f"{path} is not an EDTalk generator checkpoint (no {exc.args[0]})") from None
    exp = state["exp_fc.2.weight"].shape[0] if "exp_fc.2.weight" in state else 0
    divisor = max(1, DECODER_CHANNELS[4] // first_width)
    return GeneratorConfig(style_dim=style, lip_dim=lip, pose_dim=pose, exp_dim=exp, channel_divisor=divisor)


def _load_strict(module: torch.nn.Module, state: dict, path: Path, network: str = "the network") -> None:
    """Load `state` into `module`, every key and shape exactly; else a one-line CheckpointError
    naming `path`, the `network` and the first difference."""
    try:
        result = module.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # a shape mismatch
        raise CheckpointError(f"{path} does not match {network}: {str(exc).splitlines()[-1].strip()}") from None
    problems = []
    if result.missing_keys:
        problems.append(f"{len(result.missing_keys)} missing keys (e.g. {result.missing_keys[0]})")
    if result.unexpected_keys:
        problems.append(f"{len(result.unexpected_keys)} unexpected keys (e.g. {result.unexpected_keys[0]})")
    if problems:
        raise CheckpointError(f"{path} does not match {network}: {'; '.join(problems)}")


def load_generator(path: str | Path, device: str | torch.device = "cpu", kind: str | None = None) -> Generator:
    """Load EDTalk.pt (full) or EDTalk_lip_pose.pt (lip-pose) as a Generator in eval mode.

    The kind is told apart from the keys. With `kind` ('full' or 'lip_pose') a checkpoint of the
    other kind raises CheckpointError saying which file the mode needs.
    """
    path = Path(path)
    state = _state_dict(read_checkpoint(path), "gen", path, "a generator checkpoint ('gen' entry)")
    found = generator_kind(state)
    if kind is not None and found != kind:
        need = {
            FULL: "the full generator EDTalk.pt (expression control)",
            LIP_POSE: "the lip-pose generator EDTalk_lip_pose.pt",
        }
        raise CheckpointError(
            f"{path} holds the {'full' if found == FULL else 'lip-pose'} generator, but this mode needs {need[kind]}"
        )
    config = _generator_config(state, path)
    gen = Generator(config)
    _load_strict(gen, state, path)
    log.debug("loaded %s generator from %s", found, path)
    return gen.to(resolve_device(device)).eval()


def _load_network(
    path: str | Path, entry: str, name: str, build, device: str | torch.device, hint: str | None = None
) -> torch.nn.Module:
    """The network in the `entry` of the checkpoint at `path`, in eval mode on `device`: `build(state)`
    makes it with the sizes read from the tensor shapes, then every key and shape must match.
    A missing key `build` needs means the file is not an `name` checkpoint (one-line CheckpointError)."""
    path = Path(path)
    state = _state_dict(read_checkpoint(path, hint=hint), entry, path, f"an {name} checkpoint ('{entry}' entry)")
    try:
        model = build(state)
    except KeyError as exc:
        raise CheckpointError(f"{path} is not an {name} checkpoint (no {exc.args[0]})") from None
    _load_strict(model, state, path)
    return model.to(resolve_device(device)).eval()


def _trained_by(script: str) -> str:
    """What to do when a checkpoint that our training script makes is missing."""
    return f"train one with train/{script} and copy its checkpoints/best.pt there (see ckpts/README.md)"


def trained_against(path: str | Path) -> str | None:
    """The fingerprint of the generator an Audio2Exp / Audio2Pose checkpoint was trained against
    (its "generator_fingerprint" entry, see motion_template.fingerprint), or None for older files."""
    found = read_checkpoint(path).get("generator_fingerprint")
    return str(found) if found is not None else None


def load_audio2lip(path: str | Path, device: str | torch.device = "cpu") -> Audio2Lip:
    """Load Audio2Lip.pt as an Audio2Lip network in eval mode."""

    def build(state: dict) -> Audio2Lip:
        return Audio2Lip(lip_dim=state["mapping.weight"].shape[0] if "mapping.weight" in state else 20)

    return _load_network(path, "audio2lip", "Audio2Lip", build, device)


def load_audio2exp(path: str | Path, device: str | torch.device = "cpu") -> Audio2Exp:
    """Load Audio2Exp.pt (a checkpoint of train/train_audio2exp.py, its 'audio2exp' entry) as an
    Audio2Exp network in eval mode; its sizes are read from the tensor shapes."""

    def build(state: dict) -> Audio2Exp:
        exp_dim, width = state["exp_head.weight"].shape
        emotions = state["emotion_head.weight"].shape[0]
        depth = sum(k.startswith("temporal.") and k.endswith(".conv.weight") for k in state)
        return Audio2Exp(exp_dim=exp_dim, num_emotions=emotions, width=width, depth=depth)

    return _load_network(path, "audio2exp", "Audio2Exp", build, device, _trained_by("train_audio2exp.py"))


def load_audio2pose(path: str | Path, device: str | torch.device = "cpu") -> Audio2Pose:
    """Load Audio2Pose.pt (a checkpoint of train/train_audio2pose.py, its 'audio2pose' entry) as an
    Audio2Pose flow in eval mode; its sizes are read from the tensor shapes."""

    def build(state: dict) -> Audio2Pose:
        pose_dim = state["pose_mean"].shape[0]
        audio_dim = state["audio.net.5.weight"].shape[0]
        hidden, audio_window = state["audio_proj.weight"].shape
        history = (state["rnn.weight_ih_l0"].shape[1] - hidden - 2 * pose_dim - 1) // pose_dim  # minus the style
        steps = sum(k.startswith("flow.") and k.endswith(".lower") for k in state)
        return Audio2Pose(pose_dim, audio_dim, (audio_window // audio_dim - 1) // 2, history, hidden, steps)

    return _load_network(path, "audio2pose", "Audio2Pose", build, device, _trained_by("train_audio2pose.py"))


def load_expression_weight(path: str | Path, exp_dim: int = 10) -> torch.Tensor:
    """One predefined expression `.npy` file -> (1, exp_dim) float32 tensor."""
    path = Path(path)
    if not path.is_file():
        hint = where_to_get(f"{EXPRESSION_DIR}/{path.name}", path.parent.parent)
        raise CheckpointError(f"expression weights not found: {path}; {hint}")
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise CheckpointError(f"cannot read expression weights {path}: {exc}") from None
    if arr.size != exp_dim:
        raise CheckpointError(f"expression weights {path} have shape {arr.shape}, expected (1, {exp_dim})")
    return torch.from_numpy(np.asarray(arr, dtype=np.float32).reshape(1, exp_dim))


def load_expression_weights(folder: str | Path, names: tuple[str, ...] | None = None) -> dict[str, torch.Tensor]:
    """Predefined emotions from a folder of `<name>.npy` files -> {name: (1, 10) tensor}.

    names=None loads every `.npy` in the folder (the official set: angry, contempt, disgusted, fear,
    happy, neutral, sad, surprised). Asking for a name that is not there raises CheckpointError
    listing the available ones.
    """
    folder = Path(folder)
    if not folder.is_dir():
        hint = where_to_get(f"{EXPRESSION_DIR}/", folder.parent)
        raise CheckpointError(f"expression weight folder not found: {folder}; {hint}")
    available = sorted(p.stem for p in folder.glob("*.npy"))
    for name in names or ():
        if name not in available:
            raise CheckpointError(f"no expression '{name}' in {folder}; available: {', '.join(available) or 'none'}")
    return {name: load_expression_weight(folder / f"{name}.npy") for name in (names or available)}
