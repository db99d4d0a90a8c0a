"""Finding the raw videos (and their separate audio files) of a dataset folder.

Layouts (as in the official README), chosen automatically by their folder names:
- MEAD: `<root>/Original_video/<actor#emotion#level#clip>.mp4`, audio in `<root>/audio/<same>.wav`
- HDTF: `<root>/original_videos/<name>.mp4`, audio in `<root>/audios/<name>.wav`
- any other folder: every video file below it, with its own audio track (or a `<stem>.wav` beside it)

Within any other folder, MEAD as it is downloaded (`<actor>/video/<view>/<emotion>/level_<n>/<clip>.mp4`,
audio in `<actor>/audio/<emotion>/level_<n>/<clip>.m4a`) is recognised by its path: the clip is named
`<actor>#<emotion>#level_<n>#<clip>` (plus `#<view>` for the views other than front), as in the
official MEAD layout, so that the train/test split keeps each actor on one side and the emotion
label travels with every clip.
"""

import re
from dataclasses import dataclass
from pathlib import Path

VIDEO_EXTENSIONS = {".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v"}
LAYOUTS = {"mead": ("Original_video", "audio"), "hdtf": ("original_videos", "audios")}
MEAD_DOWNLOAD = re.compile(
    r"(?:^|.*/)(?P<actor>[^/]+)/video/(?P<view>[^/]+)/(?P<emotion>[^/]+)/(?P<level>level_\d+)/[^/]+$"
)
AUDIO_EXTENSIONS = (".wav", ".m4a")


@dataclass(frozen=True)
class RawVideo:
    """video: the file; audio: a separate audio file or None (use the video's track); key: the
    path relative to the dataset root (identifies the video across runs); stem: clip-name prefix."""

    video: Path
    audio: Path | None
    key: str
    stem: str


def detect_layout(root: Path) -> str:
    for layout, (video_dir, _) in LAYOUTS.items():
        if (root / video_dir).is_dir():
            return layout
    return "flat"


def find_videos(root: str | Path, layout: str = "auto") -> list[RawVideo]:
    """Every raw video of the dataset, sorted by path."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset folder not found: {root}")
    layout = detect_layout(root) if layout == "auto" else layout
    if layout in LAYOUTS:
        video_dir, audio_dir = (root / d for d in LAYOUTS[layout])
        candidates = sorted(p for p in video_dir.iterdir() if p.suffix.lower() in VIDEO_EXTENSIONS)
    else:
        audio_dir = None
        candidates = sorted(p for p in root.rglob("*") if p.suffix.lower() in VIDEO_EXTENSIONS and p.is_file())
    stems = [p.stem for p in candidates]
    videos = []
    for path in candidates:
        key = path.relative_to(root).as_posix()
        mead = MEAD_DOWNLOAD.match(key)
        if mead:
            videos.append(_mead_download(path, key, mead))
            continue
        # clip names must be unique: a stem shared by videos in different folders takes their path
        stem = path.stem if stems.count(path.stem) == 1 else key.rsplit(".", 1)[0].replace("/", "_")
        beside = (audio_dir or path.parent) / f"{path.stem}.wav"
        videos.append(RawVideo(path, beside if beside.is_file() else None, key, stem))
    return videos


def _mead_download(path: Path, key: str, found: re.Match) -> RawVideo:
    """A video of MEAD's download layout, named actor#emotion#level#clip (#view unless front)."""
    actor, view, emotion, level = found.group("actor", "view", "emotion", "level")
    stem = "#".join([actor, emotion, level, path.stem] + ([] if view == "front" else [view]))
    audio_folder = path.parents[4] / "audio" / emotion / level
    audio = next((a for a in (audio_folder / f"{path.stem}{ext}" for ext in AUDIO_EXTENSIONS) if a.is_file()), None)
    return RawVideo(path, audio, key, stem)
