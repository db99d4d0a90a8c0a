"""Sizes of the HiSTalk network (one dataclass, stored in every checkpoint).

The paper (HiSTalk, ACM MM 2025; earlier HSFTalk) gives the structure but not every size. Where it
is silent we chose, and each choice is marked "ours" below; all are configurable.
"""

from dataclasses import asdict, dataclass


@dataclass
class HiSTalkConfig:
    num_vertices: int  # V: 5023 (VOCASET/FLAME), 23370 (BIWI), any for custom meshes
    num_styles: int  # training subjects: the speaking-style one-hot (FaceFormer)
    num_landmarks: int = 68  # FLAME's 68 landmarks (paper); same count for fixed vertex sets (ours)
    fps: float = 30.0  # motion frame rate the audio features are resampled to
    audio_encoder: str = "mel"  # 'wav2vec2' (paper) or 'mel' (ours, offline)
    audio_dim: int = 768  # wav2vec 2.0 base hidden size (ignored by the mel encoder)
    num_mels: int = 80  # mel bins of edtalk.audio (mel encoder input)
    mel_fps: float = 80.0  # mel frames per second of edtalk.audio
    d_model: int = 64  # feature width of every Transformer (FaceFormer: 64 for BIWI/VOCASET)
    heads: int = 4  # attention heads (FaceFormer: 4)
    cmg_layers: int = 1  # CMG decoder layers (FaceFormer: 1)
    s2d_branches: int = 3  # S2D decoder branches (ours: three temporal spans, see s2d.py)
    s2d_layers: int = 1  # layers per S2D branch (ours)
    period: int = 30  # periodic positional encoding period in frames (FaceFormer: 25 BIWI, 30 VOCASET)
    frame_window: float = 0.1  # HSF2S frame-level attention span, seconds (ours; ~ one phone's onset)
    phoneme_merge: float = 0.1  # HSF2S frames merged into one phoneme token, seconds (mean phone ~100 ms)
    word_merge: float = 0.4  # phoneme tokens merged into one word token, seconds (mean word ~250-400 ms)
    dropout: float = 0.0  # attention/feed-forward dropout (ours: 0, the sets are small and clips short)

    def to_dict(self) -> dict:
        return asdict(self)
