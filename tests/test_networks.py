import numpy as np
import pytest
import torch

from oneclass.errors import OneClassError
from oneclass.networks import build_encoder
from oneclass.training.autoencoder import train_autoencoder


@pytest.mark.parametrize("kind", ["ae", "vae"])
@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 64, 64), (1, 30, 22)])
def test_shapes_follow_the_image_size(kind, shape):
    model = build_encoder(kind, shape, latent_dim=16).eval()
    x = torch.rand(5, *shape)
    assert model.encode(x).shape == (5, 16)
    assert model.decoder(model.encode(x)).shape == (5, *shape)
    assert model.sample_losses(x).shape == (5,)


def test_default_encoder_is_the_deep_svdd_lenet():
    model = build_encoder("ae", (1, 28, 28), 32)
    convs = [m for m in model.body.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.bias) for c in convs] == [
        (1, 8, (5, 5), None),
        (8, 4, (5, 5), None),
    ]
    assert model.to_latent.in_features == 196 and model.to_latent.bias is None


def test_too_small_image_is_refused():
    with pytest.raises(OneClassError, match="too small"):
        build_encoder("ae", (1, 3, 3), 8)


def test_unknown_encoder_and_bad_latent():
    with pytest.raises(OneClassError, match="unknown encoder 'gan'"):
        build_encoder("gan", (1, 28, 28), 8)
    with pytest.raises(OneClassError, match="latent_dim"):
        build_encoder("ae", (1, 28, 28), 0)


@pytest.mark.parametrize("kind", ["ae", "vae"])
def test_training_reduces_the_loss_on_real_digits(kind, digits_small):
    x = digits_small[0][:1000, None]
    torch.manual_seed(0)
    model = build_encoder(kind, (1, 28, 28), 16)
    history = train_autoencoder(
        model,
        x,
        epochs=3,
        batch_size=100,
        lr=3e-3,
        weight_decay=0,
        seed=0,
        device=torch.device("cpu"),
        quiet=True,
    )
    losses = [h["loss"] for h in history]
    assert all(np.isfinite(losses)) and losses[-1] < 0.8 * losses[0]
