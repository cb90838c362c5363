import copy

import numpy as np
import pytest
import torch

from oneclass.errors import OneClassError
from oneclass.networks import build_encoder
from oneclass.networks.fused import can_normalise_then_pool, normalise_then_pool, upsample_then_conv
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
    import oneclass.networks.lenet as lenet  # the name the decoder calls

    original = lenet.upsample_then_conv
    monkeypatch.setattr(
        lenet, "upsample_then_conv", lambda x, conv: calls.append(x.shape[2:]) or original(x, conv)
    )
    build_encoder("ae", (1, 28, 28), 8).decoder(torch.zeros(2, 8))
    assert calls == [(7, 7), (14, 14)]
    calls.clear()
    assert build_encoder("ae", (1, 30, 30), 8).decoder(torch.zeros(2, 8)).shape == (2, 1, 30, 30)
    assert calls == [(15, 15)]


@pytest.mark.parametrize("channels_last", [True, False])
def test_encoder_stage_equals_conv_batchnorm_leakyrelu_maxpool(channels_last):
    """The encoder as Deep SVDD writes it (Conv -> BN -> LeakyReLU -> MaxPool), in training mode:
    same output, same gradient to the input and the weights, same running statistics, whether
    the fused batch norm + pooling runs (NHWC, the default) or not (NCHW)."""
    torch.manual_seed(0)
    body = build_encoder("ae", (1, 28, 28), 8).body.train()
    if not channels_last:
        body = body.to(memory_format=torch.contiguous_format)
    reference = copy.deepcopy(body)
    x = torch.randn(6, 1, 28, 28, requires_grad=True)
    expected = x
    for conv, norm, pool, activation in zip(*[iter(list(reference.layers))] * 4, strict=True):
        assert isinstance(pool, torch.nn.MaxPool2d) and isinstance(activation, torch.nn.LeakyReLU)
        expected = pool(activation(norm(conv(expected))))
    expected = expected.flatten(1)
    got = body(x)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    upstream = torch.randn_like(got)
    grads = torch.autograd.grad(got, (x, *body.parameters()), upstream)
    expected_grads = torch.autograd.grad(expected, (x, *reference.parameters()), upstream)
    for grad, grad_expected in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(grad, grad_expected, rtol=1e-3, atol=1e-4)  # float32 sums of ~5000 terms
    for buffer, buffer_expected in zip(body.buffers(), reference.buffers(), strict=True):
        torch.testing.assert_close(buffer, buffer_expected, rtol=1e-5, atol=1e-6)


def test_normalise_then_pool_matches_batch_norm_then_max_pool_in_double():
    torch.manual_seed(0)
    norm = torch.nn.BatchNorm2d(5, eps=1e-4, affine=False).double().train()
    reference = copy.deepcopy(norm)
    pool = torch.nn.MaxPool2d(2)
    x = (torch.randn(4, 5, 6, 10, dtype=torch.double) * 3 + 7).to(memory_format=torch.channels_last)
    x.requires_grad_(True)
    assert can_normalise_then_pool(x, norm, pool)
    got, expected = normalise_then_pool(x, norm), pool(reference(x))
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-10)
    upstream = torch.randn_like(got)
    (grad,) = torch.autograd.grad(got, x, upstream)
    (grad_expected,) = torch.autograd.grad(expected, x, upstream)
    torch.testing.assert_close(grad, grad_expected, rtol=0, atol=1e-10)
    torch.testing.assert_close(norm.running_mean, reference.running_mean, rtol=0, atol=1e-12)
    torch.testing.assert_close(norm.running_var, reference.running_var, rtol=0, atol=1e-12)
    assert norm.num_batches_tracked == reference.num_batches_tracked == 1
    # where it does not apply, the encoder falls back to the two layers
    assert not can_normalise_then_pool(x.contiguous(), norm, pool)  # NCHW memory
    assert not can_normalise_then_pool(x[:, :, :5], norm, pool)  # odd height
    assert not can_normalise_then_pool(x, norm.eval(), pool)  # running statistics


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
