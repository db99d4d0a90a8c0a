"""Shared training pieces: discriminator schema, VGG19 keys and perceptual loss, loss terms."""

import torch

from networks.discriminator import Discriminator
from train import losses
from train.vgg19 import VGG19, VGGLoss, gaussian_downsample


def test_discriminator_keys_and_output():
    disc = Discriminator()
    sd = disc.state_dict()
    expected = {
        "convs.0.0.weight": (64, 3, 1, 1),
        "convs.0.1.bias": (1, 64, 1, 1),
        "convs.1.conv1.0.weight": (64, 64, 3, 3),
        "convs.1.conv2.0.kernel": (4, 4),
        "convs.6.skip.1.weight": (512, 512, 1, 1),
        "final_conv.0.weight": (512, 513, 3, 3),
        "final_conv.1.bias": (1, 512, 1, 1),
        "final_linear.0.weight": (512, 8192),
        "final_linear.0.bias": (512,),
        "final_linear.1.weight": (1, 512),
        "final_linear.1.bias": (1,),
    }
    assert {k: tuple(sd[k].shape) for k in expected} == expected
    assert not any(k.startswith("convs.7") for k in sd)
    with torch.no_grad():
        assert disc(torch.zeros(3, 3, 256, 256)).shape == (3, 1)


def test_vgg19_has_torchvision_keys_and_loads_them(tmp_path):
    vgg = VGG19()
    convs = [0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34]
    keys = {f"features.{i}.{p}" for i in convs for p in ("weight", "bias")}
    assert {k for k in vgg.state_dict() if k.startswith("features.")} == keys
    donor = VGG19()
    state = {k: torch.randn_like(v) for k, v in donor.state_dict().items() if k.startswith("features.")}
    state["classifier.0.weight"] = torch.zeros(4096, 25088)  # torchvision files carry the classifier too
    torch.save(state, tmp_path / "vgg19.pth")
    vgg.load(tmp_path / "vgg19.pth")
    assert torch.equal(vgg.features[34].weight, state["features.34.weight"])
    feats = vgg(torch.zeros(1, 3, 64, 64))
    assert [tuple(f.shape[1:]) for f in feats] == [(64, 64, 64), (128, 32, 32), (256, 16, 16), (512, 8, 8), (512, 4, 4)]


def test_perceptual_loss_is_zero_only_for_equal_images():
    torch.manual_seed(0)
    loss = VGGLoss(VGG19())
    a, b = torch.rand(1, 3, 128, 128) * 2 - 1, torch.rand(1, 3, 128, 128) * 2 - 1
    assert loss(a, a).item() == 0
    b.requires_grad_(True)
    with torch.enable_grad():  # the suite runs without gradients by default
        value = loss(b, a)
        value.backward()
    assert value.item() > 0 and b.grad.abs().sum() > 0
    assert gaussian_downsample(a, 0.25).shape == (1, 3, 32, 32)


def test_gan_and_consistency_losses():
    logits = torch.tensor([[2.0], [-1.0]])
    assert torch.isclose(losses.g_nonsaturating(logits), torch.nn.functional.softplus(-logits).mean())
    assert losses.d_nonsaturating(torch.full((4, 1), 20.0), torch.full((4, 1), -20.0)) < 1e-6
    v = torch.randn(3, 512)
    assert torch.isclose(losses.latent_consistency(v, v), 3 * torch.exp(torch.tensor(-1.0)))
