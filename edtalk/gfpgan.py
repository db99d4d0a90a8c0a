"""Loading the released GFPGAN face-restoration checkpoints (GFPGANv1.4.pth, GFPGANv1.3.pth).

Released files hold {'params_ema': state_dict}; BasicSR training checkpoints hold 'params' and
'params_ema'. As the official loader does, 'params_ema' is taken when present, otherwise
'params', and loaded strictly into :class:`networks.gfpgan.GFPGANv1Clean`.
"""

import logging
from pathlib import Path

import torch

from networks.gfpgan import GFPGANv1Clean

from .checkpoints import _load_strict, read_checkpoint
from .device import resolve_device
from .errors import CheckpointError

log = logging.getLogger(__name__)

GFPGAN_FILE = "GFPGANv1.4.pth"
GFPGAN_URL = f"https://github.com/TencentARC/GFPGAN/releases/download/v1.3.0/{GFPGAN_FILE}"


def gfpgan_where_to_get(path: str | Path) -> str:
    """One sentence telling the user how to obtain the GFPGAN weights at `path`."""
    return f"download {GFPGAN_FILE} (or GFPGANv1.3.pth) from {GFPGAN_URL} and put it at {path} (see ckpts/README.md)"


def _gfpgan_state(data: dict, path: Path) -> dict:
    for entry in ("params_ema", "params"):
        if entry in data and isinstance(data[entry], dict):
            state = data[entry]
            break
    else:
        if "gen" in data or "audio2lip" in data:
            what = "an EDTalk checkpoint"
        else:
            what = f"a file with entries {sorted(map(str, data))[:6]}"
        raise CheckpointError(f"{path} is {what}, not a GFPGAN checkpoint ('params_ema' entry expected)")
    if "conv_body_first.weight" not in state:
        if "conv_body_first.0.weight" in state:
            raise CheckpointError(
                f"{path} holds the original GFPGANv1 architecture, which is not supported: "
                f"use GFPGANv1.4.pth or GFPGANv1.3.pth ({GFPGAN_URL})"
            )
        raise CheckpointError(f"{path} is not a GFPGAN v1.3/v1.4 checkpoint (no conv_body_first.weight)")
    return state


def load_gfpgan(path: str | Path, device: str | torch.device = "cpu") -> GFPGANv1Clean:
    """Load GFPGANv1.4.pth / GFPGANv1.3.pth as a GFPGANv1Clean in eval mode.

    The model maps aligned 512x512 faces (B, 3, 512, 512), RGB in [-1, 1], to restored ones;
    it uses its stored noise maps unless called with randomize_noise=True. A missing, corrupt
    or foreign file raises CheckpointError with a one-line message.
    """
    path = Path(path)
    state = _gfpgan_state(read_checkpoint(path, "GFPGAN checkpoint", gfpgan_where_to_get(path)), path)
    model = GFPGANv1Clean()
    _load_strict(model, state, path, "GFPGAN v1.3/v1.4")  # e.g. another channel multiplier or size
    log.debug("loaded GFPGAN from %s", path)
    return model.to(resolve_device(device)).eval()
