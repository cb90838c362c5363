"""Two layer pairs of the LeNet autoencoder computed in fewer passes over memory.

On a CPU the autoencoder's training step is bound by passes over its full-resolution activations
(8 channels at 28x28: too few channels to keep the vector units busy, too many pixels to stay in
cache). Each function here gives the same values and gradients as the layers it replaces
(tested), with fewer of those passes:

- ``upsample_then_conv``: nearest 2x upsampling followed by a convolution, as one convolution at
  the lower resolution and a pixel shuffle (the decoder).
- ``normalise_then_pool``: training-mode batch norm (no affine) followed by 2x2 max pooling, as
  the batch statistics of the input and the pooling of the raw input, normalising only the pooled
  quarter (the encoder). Pooling first is exact because the normalisation is increasing.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _parity_taps(kernel: int) -> torch.Tensor:
    """``(2, taps, kernel)`` 0/1 matrices: row ``q`` maps a kernel applied to a 2x nearest-upsampled
    signal onto the ``taps`` taps it applies to the original signal at output positions of parity q.

    Output ``i = 2 p + q`` of ``conv(upsample(x))`` reads ``upsample(x)[i + a - k // 2] =
    x[p + (q + a - k // 2) // 2]`` for kernel tap ``a``: taps that land on the same ``x`` add up.
    """
    half = kernel // 2
    reach = (half + 1) // 2
    taps = torch.zeros(2, 2 * reach + 1, kernel)
    for parity in (0, 1):
        for a in range(kernel):
            taps[parity, (parity + a - half) // 2 + reach, a] = 1.0
    return taps


def upsample_then_conv(x: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """``conv(interpolate(x, scale_factor=2, mode="nearest"))`` for an odd square kernel with
    "same" padding, computed without the upsampled tensor: one convolution at the input's
    resolution with a kernel per output parity (derived from ``conv.weight``, so the parameters
    and their gradients are the module's own), then a pixel shuffle. About a third of the
    multiply-adds, and no pass over a 4x larger activation.
    """
    weight = conv.weight
    out_ch, in_ch, kernel, _ = weight.shape
    taps = _parity_taps(kernel).to(weight)
    parity_weight = torch.einsum("pta,oiab,qsb->opqits", taps, weight, taps)
    parity_weight = parity_weight.reshape(out_ch * 4, in_ch, taps.shape[1], taps.shape[1])
    bias = None if conv.bias is None else conv.bias.repeat_interleave(4)
    reach = taps.shape[1] // 2
    return F.pixel_shuffle(F.conv2d(x, parity_weight, bias, padding=reach), 2)


def can_normalise_then_pool(x: torch.Tensor, norm: nn.BatchNorm2d, pool: nn.MaxPool2d) -> bool:
    """Whether ``normalise_then_pool`` applies: training-mode batch statistics without affine
    parameters, a plain 2x2 stride-2 pool over even sizes, NHWC (channels_last) float32/float64
    memory on the CPU (on a GPU the native batch norm is fast and this path is not measured)."""
    plain_pool = (
        pool.kernel_size in (2, (2, 2)) and pool.stride in (2, (2, 2)) and pool.padding in (0, (0, 0))
    )
    plain_pool = plain_pool and pool.dilation in (1, (1, 1)) and not pool.ceil_mode
    return (
        norm.training
        and not norm.affine
        and norm.track_running_stats
        and norm.momentum is not None
        and plain_pool
        and x.dim() == 4
        and x.shape[2] % 2 == 0
        and x.shape[3] % 2 == 0
        and x.is_contiguous(memory_format=torch.channels_last)
        and x.device.type == "cpu"
        and x.dtype in (torch.float32, torch.float64)
    )


class _NormalisePool(torch.autograd.Function):
    """``max_pool2d(batch_norm(x), 2)`` for NHWC ``x`` ``(n, c, h, w)``; also returns the batch
    mean and (biased) variance per channel for the running statistics."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, eps: float):
        n, c, h, w = x.shape
        rows = x.permute(0, 2, 3, 1).reshape(-1, c)  # a view for NHWC memory: (n h w, c)
        count = rows.shape[0]
        # float32 column sums (PyTorch sums pairwise: relative error ~1e-7 here, where a float64
        # accumulator or an einsum cost 3-6x more), differenced in float64
        mean = rows.sum(0).double() / count
        square_mean = (rows * rows).sum(0).double() / count
        variance = (square_mean - mean * mean).clamp_min(0)
        invstd = torch.rsqrt(variance + eps).to(x.dtype)
        pooled, indices = F.max_pool2d_with_indices(x, 2)
        mean, variance = mean.to(x.dtype), variance.to(x.dtype)
        out = (pooled - mean[:, None, None]) * invstd[:, None, None]
        ctx.save_for_backward(x, indices, out, mean, invstd)
        ctx.mark_non_differentiable(mean, variance)
        return out, mean, variance

    @staticmethod
    def backward(ctx, grad: torch.Tensor, _grad_mean, _grad_variance):
        x, indices, out, mean, invstd = ctx.saved_tensors
        n, c, h, w = x.shape
        count = n * h * w
        # d out_k / d x_i = [i is k's maximum] / sigma - (1 + xhat_i xhat_k) / (count sigma):
        # the statistics' part is an affine map of x per channel, the pooling part a scatter
        grad_sum = grad.sum((0, 2, 3))
        grad_dot = (grad * out).sum((0, 2, 3))
        slope = -grad_dot * invstd * invstd / count
        offset = -grad_sum * invstd / count - slope * mean
        dx = torch.empty_like(x, memory_format=torch.channels_last)
        torch.addcmul(offset.view(1, c, 1, 1), x, slope.view(1, c, 1, 1), out=dx)
        into = dx.permute(0, 2, 3, 1).view(n, h * w, c)
        source = (grad * invstd.view(1, c, 1, 1)).permute(0, 2, 3, 1).reshape(n, -1, c)
        into.scatter_add_(1, indices.permute(0, 2, 3, 1).reshape(n, -1, c), source)
        return dx, None


def normalise_then_pool(x: torch.Tensor, norm: nn.BatchNorm2d) -> torch.Tensor:
    """``max_pool2d(norm(x), 2)`` in training mode (see ``can_normalise_then_pool``), updating
    ``norm``'s running statistics exactly as ``nn.BatchNorm2d`` does."""
    out, mean, variance = _NormalisePool.apply(x, norm.eps)
    with torch.no_grad():
        count = x.numel() // x.shape[1]
        norm.num_batches_tracked.add_(1)
        norm.running_mean.lerp_(mean, norm.momentum)
        norm.running_var.lerp_(variance * (count / max(count - 1, 1)), norm.momentum)
    return out
