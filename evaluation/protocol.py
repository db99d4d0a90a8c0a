r"""The paper's protocol: render the test clips of a pre-processed set with our models, then score them.

    python -m evaluation.protocol --data /data/edtalk_mead --raw /data/MEAD_front \
        --mode audio --ckpt_dir ckpts --out results/mead_audio --syncnet ckpts/syncnet_v2.model

For every clip of the test split, `<data>/lists/test.json` (made by data_preprocess/prepare_dataset.py;
training selects its checkpoints on the separate `val` split, so these clips are unseen), the
aligned frames in the lmdb, with the clip's own audio cut from the raw video (`--raw`, the folder
prepare_dataset read), become `<out>/reference/<clip>.mp4`; its first frame is the source.
- `--mode video`: self-reconstruction. Mouth, pose and expression come from the reference clip.
- `--mode audio`: the mouth comes from the clip's audio (Audio2Lip); pose and expression from the
  reference clip, so the frames stay comparable with the reference (PSNR, SSIM, LMD).
Renders go to `<out>/generated/<clip>.mp4` (an existing one is kept: the run resumes), then every
metric whose weights are given is computed as `python -m evaluation` does, and the table has the
published EDTalk numbers beside ours where the paper has them.
"""

import json
import re
import sys
from pathlib import Path

import numpy as np
import soundfile
from PIL import Image
from tqdm import tqdm

from data_preprocess.lmdb_store import LmdbReader
from data_preprocess.sources import find_videos
from edtalk.audio import load_wav
from edtalk.errors import EDTalkError
from edtalk.output import write_mp4
from edtalk.pipeline import TalkingHeadPipeline
from edtalk.video_io import VideoWriter

from .cli import add_metric_flags, check_out_folder, config_from_args, parser_from_doc, run
from .report import write_report
from .runner import evaluate_pairs

SAMPLES_PER_FRAME = 640  # 16 kHz audio, 25 fps
SPLIT = "test"  # the only split reported: train and val clips shaped the model and its checkpoint choice
MEAD_CLIP = re.compile(r"^[MW]\d{3}#")  # MEAD clip names start with the actor: M003#angry#level_1#001
PUBLISHED = {
    ("MEAD", "audio"): {
        "label": "EDTalk (paper)",
        "source": "EDTalk (Tan et al., ECCV 2024), Table 1, MEAD audio-driven, as quoted by FixTalk; "
        "the paper's other columns are not quoted there",
        "values": {"PSNR": 21.628, "SSIM": 0.722, "M-LMD": 1.537, "F-LMD": 1.290, "LSE-C": 8.115},
    },
}


class ClipSource:
    """The clips of one split of a prepared set, with their audio cut from the raw videos."""

    def __init__(self, data: Path, split: str, raw: Path | None):
        list_path = data / "lists" / f"{split}.json"
        if not list_path.is_file():
            raise EDTalkError(f"no split list {list_path} (run data_preprocess/prepare_dataset.py)")
        try:
            self.reader = LmdbReader(data / "lmdb")
        except FileNotFoundError as exc:
            raise EDTalkError(str(exc)) from None
        self.names = json.loads(list_path.read_text())
        self.raw = {} if raw is None else {v.key: v for v in find_videos(raw)}
        self._audio_key, self._audio = None, None

    def frames(self, name: str) -> np.ndarray:
        """(T, 256, 256, 3) uint8 RGB aligned frames of a clip."""
        return np.stack([self.reader.frame(name, i) for i in range(self.reader.length(name))])

    def audio(self, name: str, num_frames: int) -> np.ndarray | None:
        """The clip's 16 kHz audio (num_frames * 640 samples, zero-padded), or None without --raw / a soundtrack."""
        info = self.reader.info(name)
        raw = self.raw.get(info["video"])
        if raw is None or not info.get("has_audio"):
            return None
        if self._audio_key != raw.key:  # clips of one video come in a row: decode it once
            self._audio_key, self._audio = raw.key, load_wav(raw.audio or raw.video)
        first = info["start_frame"] * SAMPLES_PER_FRAME
        piece = self._audio[first : first + num_frames * SAMPLES_PER_FRAME]
        return np.pad(piece, (0, num_frames * SAMPLES_PER_FRAME - len(piece)))


def prepare_reference(clips: ClipSource, name: str, folder: Path) -> tuple[Path, Path, Path | None]:
    """Write the reference clip (mp4 with its audio), its first frame and its audio; returns their paths."""
    video, source, wav = folder / "reference" / f"{name}.mp4", folder / "sources" / f"{name}.png", None
    frames = clips.frames(name)
    audio = clips.audio(name, len(frames))
    if audio is not None:
        wav = folder / "audio" / f"{name}.wav"
        if not wav.is_file():
            wav.parent.mkdir(parents=True, exist_ok=True)
            soundfile.write(str(wav), audio, 16000, subtype="PCM_16")
    if not video.is_file():  # kept on a rerun: its size and mtime key the score cache
        with VideoWriter(video, 25.0, wav, num_frames=len(frames)) as writer:
            writer.write(frames)
    if not source.is_file():
        source.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(frames[0]).save(source)
    return video, source, wav


def render_clip(
    pipe: TalkingHeadPipeline, mode: str, reference: Path, source: Path, wav: Path | None, out: Path, progress: bool
):
    """Render one test clip with our model into `out` (audio: mouth from `wav`; video: from the reference),
    with a progress bar of its frames unless `progress` is False."""
    if mode == "audio" and wav is None:
        raise EDTalkError(f"{reference.stem}: no audio for the audio-driven mode (give --raw, the raw dataset folder)")
    drivers = {"pose": reference, "exp": reference}
    drivers.update({"audio": wav} if mode == "audio" else {"lip": reference, "audio": wav})
    with tqdm(desc=f"{reference.stem}: rendering", unit="frame", leave=False, disable=not progress) as bar:

        def advance(written: int, total: int) -> None:
            bar.total = total
            bar.update(written - bar.n)

        write_mp4(pipe, out, on_batch=advance, source=source, **drivers)


def main(argv: list[str] | None = None) -> int:
    parser = parser_from_doc("python -m evaluation.protocol", __doc__)
    parser.add_argument("--data", required=True, help="a set made by data_preprocess/prepare_dataset.py")
    parser.add_argument("--raw", help="the raw dataset folder prepare_dataset read (for the clips' audio)")
    parser.add_argument("--mode", choices=("audio", "video"), default="audio", help="(default: %(default)s)")
    parser.add_argument("--ckpt_dir", default="ckpts", help="EDTalk.pt and Audio2Lip.pt (default: %(default)s)")
    parser.add_argument("--out", default="results", help="output folder (default: %(default)s)")
    parser.add_argument("--limit", type=int, help="only the first N clips of the split")
    parser.add_argument(
        "--dataset_name",
        help="names the published row to show: MEAD (default when every clip is named like a MEAD clip, M003#...)",
    )
    add_metric_flags(parser)
    args = parser.parse_args(argv)

    def body() -> int:
        out, config = check_out_folder(args.out), config_from_args(args)
        clips = ClipSource(Path(args.data), SPLIT, Path(args.raw) if args.raw else None)
        names = clips.names[: args.limit] if args.limit else clips.names
        pipe, pairs = None, []  # the models load only if some clip is not rendered yet
        for name in tqdm(names, desc=f"rendering {SPLIT} ({args.mode})", unit="clip", disable=args.quiet):
            reference, source, wav = prepare_reference(clips, name, out)
            generated = out / "generated" / f"{name}.mp4"
            if not generated.is_file():
                pipe = pipe or TalkingHeadPipeline(args.ckpt_dir, device=args.device, crop=False, progress=False)
                render_clip(pipe, args.mode, reference, source, wav, generated, not args.quiet)
            pairs.append((generated, reference))
        results = evaluate_pairs(pairs, out, config, not args.quiet)
        dataset = args.dataset_name or ("MEAD" if all(MEAD_CLIP.match(n) for n in names) else Path(args.data).name)
        published = PUBLISHED.get((dataset, args.mode))
        paths = write_report(results, out, f"EDTalk, {dataset} {SPLIT}, {args.mode}-driven", published)
        print(paths[2].read_text())
        return 0

    return run(body)


if __name__ == "__main__":
    sys.exit(main())
