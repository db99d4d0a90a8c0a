"""Wav2Lip's checkpoints in the official audio stage: its generator starts Audio2Lip's audio
encoder, its lip-sync expert gives the sync loss.

Wav2Lip's files (github Rudrabha/Wav2Lip) hold {'state_dict', 'optimizer', 'global_step',
'global_epoch'}. In the generator (`wav2lip.pth` / `wav2lip_gan.pth`) the `audio_encoder` is an
nn.Sequential of 13 Conv2d + BatchNorm2d (+ residual) + ReLU blocks, keys
`audio_encoder.N.conv_block.{0,1}.*` (`module.`-prefixed when saved from DataParallel): exactly the
keys and shapes of `Audio2Lip.audio_encoder` (`N.conv_block.{0,1}.*`), which the official trainer
copies across. The expert (`lipsync_expert.pth`, SyncNet_color) has the keys of train/sync.py's
SyncNet (`face_encoder.N.*`, `audio_encoder.N.*`, 14 audio blocks).
"""

from pathlib import Path

from torch import nn

from edtalk.checkpoints import strip_prefixes

from .checkpoint import read

PREFIX = "audio_encoder."


def audio_encoder_state(state: dict) -> dict:
    """The audio encoder's entries of a Wav2Lip generator state dict, keyed as Audio2Lip.audio_encoder."""
    return {k.removeprefix(PREFIX): v for k, v in strip_prefixes(state).items() if k.startswith(PREFIX)}


def load_audio_encoder(encoder: nn.Module, path: str | Path) -> None:
    """Copy the audio encoder of Wav2Lip's generator checkpoint at `path` into `encoder` (weights and
    BatchNorm statistics). Anything that does not match key for key and shape for shape raises a
    one-line SystemExit naming the file."""
    path = Path(path)
    data = read(path, "Wav2Lip checkpoint")
    state = data.get("state_dict", data)
    theirs = audio_encoder_state(state) if isinstance(state, dict) else {}
    ours = encoder.state_dict()
    missing = [k for k in ours if k not in theirs]
    unexpected = [k for k in theirs if k not in ours]
    shapes = [
        f"{k} {tuple(theirs[k].shape)} vs {tuple(v.shape)}"
        for k, v in ours.items()
        if k in theirs and theirs[k].shape != v.shape
    ]
    if missing or unexpected or shapes:
        raise SystemExit(
            f"{path} is not Wav2Lip's generator checkpoint: its {PREFIX}* entries do not match Audio2Lip's audio "
            f"encoder (missing {missing[:3]}, unexpected {unexpected[:3]}, shapes {shapes[:2]})"
        )
    encoder.load_state_dict(theirs)


def load_sync_expert(net: nn.Module, path: str | Path) -> None:
    """Load a lip-sync expert: a train_syncnet.py checkpoint ({'syncnet'}) or Wav2Lip's pretrained
    expert ({'state_dict'}), which the official audio stage uses. One-line SystemExit otherwise."""
    path = Path(path)
    data = read(path, "Wav2Lip checkpoint")
    state = data.get("syncnet", data.get("state_dict"))
    if not isinstance(state, dict):
        raise SystemExit(f"{path} is neither a train_syncnet.py checkpoint nor Wav2Lip's lip-sync expert")
    try:
        net.load_state_dict(strip_prefixes(state))
    except RuntimeError as exc:
        reason = (str(exc).strip().splitlines() or ["?"])[-1].strip()[:200]
        raise SystemExit(f"{path} does not fit the lip-sync expert (Wav2Lip's SyncNet_color): {reason}") from None
