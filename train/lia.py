"""LIA's released VoxCeleb model (`vox.pt`) as the start of stage 1, on the lip-pose layout.

The official README starts stage 1 from LIA's VoxCeleb checkpoint (github wyhsirius/LIA, `vox.pt`:
{'gen', 'dis', 'g_optim', 'd_optim', 'args'}). Its generator is LIA's layout: one 20-d motion
head `enc.fc` (4 EqualLinear 512->512, then EqualLinear 512->20) and one 20-column bank
`dec.direction`. Our stage 1 trains the lip-pose layout (shared `fc`, `lip_fc` 20-d, `pose_fc` 6-d,
a 26-column `direction_lipnonlip`), so the shared parts are mapped onto it, as the commented-out
code of the official mouth-pose trainer sketches:

    LIA 'gen' key                         lip-pose generator key
    enc.net_app.*                         enc.net_app.*            (appearance encoder, unchanged)
    enc.fc.0..3.*  (EqualLinear 512->512) fc.0..3.*                (shared motion MLP)
    enc.fc.4.*     (EqualLinear 512->20)  dropped                  (LIA's 20-d motion head)
    dec.direction.weight  [512, 20]       dropped                  (LIA's motion bank)
    dec.* (all other decoder keys)        dec.*                    (flow/StyleGAN decoder, unchanged)
    -                                     lip_fc.*, pose_fc.*, direction_lipnonlip.weight:
                                          keep the fresh initialisation of the model being built

'dis' is LIA's StyleGAN2 discriminator, the same layout as ours (`networks/discriminator.py`), and
is carried unchanged; 'g_optim', 'd_optim' and 'args' are dropped (`--init` starts weights only).

Every generator stage's `--init` takes vox.pt as it is (recognised by `enc.fc.4.weight` and
`dec.direction.weight`); in the full-generator stage the expression parts also keep their
(identity) initialisation. The command

    python -m train.lia vox.pt lia_lip_pose.pt

writes {'gen': the mapped tensors, 'dis': ..., 'converted_from': 'LIA'} (about half the size of
vox.pt: no optimiser state), which `--init` accepts in the same way. It has no trained mouth/pose
heads, so `edtalk.load_generator` and the audio stage's `--generator` refuse it: rendering from it
would show random motion.
"""

import argparse
import re
import sys
from pathlib import Path

import torch

from edtalk.checkpoints import strip_prefixes
from edtalk.files import write_atomically

from .checkpoint import load

LIA_MARKERS = ("enc.fc.4.weight", "dec.direction.weight")  # present in LIA's generator only
FRESH = ("lip_fc.", "pose_fc.", "direction_lipnonlip.")  # lip-pose keys LIA has no counterpart for
CONVERTED = "LIA"  # value of the 'converted_from' entry of a converted file
_SHARED_FC = re.compile(r"enc\.fc\.([0-3])\.(.+)")


def is_lia_generator(state: dict) -> bool:
    """True for a state dict of LIA's generator layout (keys without DataParallel prefixes)."""
    return all(key in state for key in LIA_MARKERS)


def is_converted(checkpoint: dict) -> bool:
    """True for a file written by `python -m train.lia` (mapped tensors only, no heads)."""
    return checkpoint.get("converted_from") == CONVERTED


def convert_generator(state: dict) -> dict:
    """LIA generator state dict -> the partial lip-pose state dict of the table in the module doc.

    Pure: the tensors are the same objects, only the keys change. Raises ValueError for a key that
    none of the rules covers (not LIA's layout).
    """
    out, unknown = {}, []
    for key, value in state.items():
        shared = _SHARED_FC.fullmatch(key)
        if key.startswith("enc.net_app."):
            out[key] = value
        elif shared:
            out[f"fc.{shared[1]}.{shared[2]}"] = value
        elif key.startswith(("enc.fc.4.", "dec.direction.")):
            continue
        elif key.startswith("dec."):
            out[key] = value
        else:
            unknown.append(key)
    if unknown:
        raise ValueError(f"not LIA's generator layout: unexpected keys {unknown[:3]}")
    return out


def convert_checkpoint(checkpoint: dict) -> dict:
    """LIA checkpoint {'gen', 'dis', ...} -> {'gen': mapped tensors, 'dis', 'converted_from': 'LIA'}."""
    out = {"gen": convert_generator(strip_prefixes(checkpoint["gen"])), "converted_from": CONVERTED}
    if "dis" in checkpoint:
        out["dis"] = strip_prefixes(checkpoint["dis"])
    return out


def check_fits(converted: dict, source: str) -> None:
    """A converted checkpoint loads into a fresh lip-pose generator (only the FRESH keys missing)
    and discriminator; one-line SystemExit naming `source` otherwise."""
    from networks import LIP_POSE, Generator
    from networks.discriminator import Discriminator

    try:
        result = Generator(LIP_POSE).load_state_dict(converted["gen"], strict=False)
        if "dis" in converted:
            Discriminator().load_state_dict(converted["dis"])
    except RuntimeError as exc:
        raise SystemExit(f"{source} does not fit the lip-pose layout: {str(exc).strip().splitlines()[-1]}") from None
    missing = [k for k in result.missing_keys if not k.startswith(FRESH)]
    if missing or result.unexpected_keys:
        raise SystemExit(f"{source} does not fit: missing {missing[:3]}, unexpected {result.unexpected_keys[:3]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m train.lia",
        description="Map LIA's vox.pt onto the lip-pose generator layout, for --init of a training stage.",
    )
    parser.add_argument("src", help="LIA checkpoint (vox.pt)")
    parser.add_argument("dst", help="output file (e.g. lia_lip_pose.pt)")
    args = parser.parse_args(argv)
    data = load(args.src)
    if "gen" not in data or not is_lia_generator(strip_prefixes(data["gen"])):
        raise SystemExit(f"{args.src} is not LIA's checkpoint (no 'gen' entry with {' and '.join(LIA_MARKERS)})")
    try:
        converted = convert_checkpoint(data)
    except ValueError as exc:
        raise SystemExit(f"{args.src}: {exc}") from None
    check_fits(converted, args.src)
    dst = Path(args.dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    with write_atomically(dst) as file:
        torch.save(converted, file)
    dis = "'dis' carried" if "dis" in converted else "no 'dis' in the source"
    print(
        f"wrote {dst}: {len(converted['gen'])} generator tensors mapped (enc.fc.4 and dec.direction dropped; "
        f"lip_fc, pose_fc, direction_lipnonlip keep their initialisation), {dis}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
