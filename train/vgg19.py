"""VGG19 feature extractor in plain torch (torchvision-compatible keys) and the perceptual loss.

No pretrained weights can be downloaded here: pass the path of torchvision's `vgg19-dcbb9e9d.pth`
(or any state dict with keys `features.N.weight/bias`) to `VGG19.load`; tests use random weights.
"""

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .checkpoint import read

# torchvision's VGG19 "E" configuration: channel counts, "M" = 2x2 max-pool.
VGG19_CONFIG = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M")
TAPS = (2, 7, 12, 21, 30)  # outputs of relu1_1, relu2_1, relu3_1, relu4_1, relu5_1 (ends of features slices)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class VGG19(nn.Module):
    """forward(images (B, 3, H, W) in [-1, 1]) -> the five relu*_1 feature maps (frozen, ImageNet-normalised)."""

    def __init__(self):
        super().__init__()
        layers, in_ch = [], 3
        for v in VGG19_CONFIG:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(in_ch, v, 3, padding=1), nn.ReLU(inplace=True)]
                in_ch = v
        self.features = nn.Sequential(*layers)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        self.requires_grad_(False)

    def load(self, path: str | Path) -> "VGG19":
        """Load torchvision-format weights (`features.*` keys; classifier keys are ignored)."""
        state = read(path, "VGG19 weights")
        state = {k: v for k, v in state.items() if k.startswith("features.")}
        self.features.load_state_dict({k.removeprefix("features."): v for k, v in state.items()})
        return self

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        x = ((images.clamp(-1, 1) + 1) / 2 - self.mean) / self.std
        outs, start = [], 0
        for end in TAPS:
            x = self.features[start:end](x)
            outs.append(x)
            start = end
        return outs


def gaussian_downsample(images: torch.Tensor, scale: float) -> torch.Tensor:
    """Anti-aliased downscaling (FOMM's AntiAliasInterpolation2d): Gaussian blur, then subsample."""
    if scale == 1:
        return images
    sigma = (1 / scale - 1) / 2
    size = 2 * round(sigma * 4) + 1
    x = torch.arange(size, dtype=images.dtype, device=images.device) - (size - 1) / 2
    k1 = torch.exp(-(x**2) / (2 * sigma**2))
    kernel = k1[:, None] * k1[None, :]
    kernel = (kernel / kernel.sum()).expand(images.shape[1], 1, size, size)
    out = F.conv2d(F.pad(images, [size // 2] * 4), kernel, groups=images.shape[1])
    step = int(1 / scale)
    return out[:, :, ::step, ::step]


class VGGLoss(nn.Module):
    """Multi-scale perceptual loss: sum over scales 1, 1/2, 1/4, 1/8 and the five taps of
    weight * mean |phi(recon) - phi(target)| (official weights: 10 each)."""

    def __init__(self, vgg: VGG19, scales=(1, 0.5, 0.25, 0.125), weights=(10, 10, 10, 10, 10)):
        super().__init__()
        self.vgg = vgg
        self.scales = scales
        self.weights = weights

    def forward(self, recon: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        loss = recon.new_zeros(())
        for scale in self.scales:
            fake = self.vgg(gaussian_downsample(recon, scale))
            real = self.vgg(gaussian_downsample(target, scale))
            for w, a, b in zip(self.weights, fake, real):
                loss = loss + w * (a - b.detach()).abs().mean()
        return loss
