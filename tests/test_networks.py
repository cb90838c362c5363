import numpy as np
import pytest
import torch

from oneclass.errors import OneClassError
from oneclass.networks import build_encoder
from oneclass.networks.lenet import upsample_then_conv
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


@pytest.mark.parametrize("kernel", [3, 5, 7])
@pytest.mark.parametrize("bias", [False, True])
def test_upsample_then_conv_equals_the_two_steps(kernel, bias):
    """The decoder's fused path: same values and the same gradients (to the weights and the
    input) as nearest 2x upsampling followed by the convolution, on a non-square input."""
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(4, 6, kernel, padding=kernel // 2, bias=bias).double()
    x = torch.randn(3, 4, 7, 9, dtype=torch.double, requires_grad=True)
    expected = conv(torch.nn.functional.interpolate(x, scale_factor=2, mode="nearest"))
    fused = upsample_then_conv(x, conv)
    assert fused.shape == expected.shape == (3, 6, 14, 18)
    torch.testing.assert_close(fused, expected, rtol=0, atol=1e-12)
    upstream = torch.randn_like(expected)
    inputs = (x, *conv.parameters())
    for got, want in zip(
        torch.autograd.grad(fused, inputs, upstream),
        torch.autograd.grad(expected, inputs, upstream),
        strict=True,
    ):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-10)


def test_decoder_takes_the_fused_path_only_for_exact_doubling(monkeypatch):
    """28 -> 14 -> 7 doubles exactly (fused); 30 -> 15 -> 7 does not (7 -> 15 upsamples as is)."""
    calls = []
    import oneclass.networks.lenet as lenet

    original = lenet.upsample_then_conv
    monkeypatch.setattr(
        lenet, "upsample_then_conv", lambda x, conv: calls.append(x.shape[2:]) or original(x, conv)
    )
    build_encoder("ae", (1, 28, 28), 8).decoder(torch.zeros(2, 8))
    assert calls == [(7, 7), (14, 14)]
    calls.clear()
    assert build_encoder("ae", (1, 30, 30), 8).decoder(torch.zeros(2, 8)).shape == (2, 1, 30, 30)
    assert calls == [(15, 15)]


def test_encoder_pools_before_the_activation_with_the_same_values():
    """Conv -> BN -> LeakyReLU -> MaxPool, as Deep SVDD writes it, in training mode (batch
    statistics) and with the gradient to the input."""
    torch.manual_seed(0)
    body = build_encoder("ae", (1, 28, 28), 8).body.train()
    x = torch.randn(6, 1, 28, 28, requires_grad=True)
    expected = x
    stages = list(body.layers)
    for conv, norm, pool, activation in zip(*[iter(stages)] * 4, strict=True):
        assert isinstance(pool, torch.nn.MaxPool2d) and isinstance(activation, torch.nn.LeakyReLU)
        expected = pool(activation(norm(conv(expected))))
    got = body(x)
    torch.testing.assert_close(got, expected.flatten(1), rtol=0, atol=0)
    upstream = torch.randn_like(got)
    (grad,) = torch.autograd.grad(got, x, upstream)
    (grad_expected,) = torch.autograd.grad(expected.flatten(1), x, upstream)
    torch.testing.assert_close(grad, grad_expected, rtol=1e-5, atol=1e-6)


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
