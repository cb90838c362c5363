"""The trained encoders, one registry: ``ae`` and ``vae`` (reconstruction, ``lenet.py``),
``ssl`` (transformation prediction, ``transforms.py``), ``ssl-fast`` (its single-pass student,
``distill.py``), ``hog`` (histograms of oriented gradients, nothing trained, a projection
fitted, ``gradients.py``), ``lite0-global`` (ImageNet features of the whole image, pretrained and
not trained here, ``global_features.py``) and ``ssl+ae`` / ``ssl-fast+ae`` / ``ssl-fast+ae+hog``
/ ``ssl-fast+ae+lite0-global`` (an ssl encoder and the autoencoder side by side, and the
gradient histograms or ImageNet features as a third, ``joint.py``). Each network has
``forward(x)`` = its training loss per image (what the one training loop minimises) and
``encode(x)`` = the features a head sees; ae, vae and ssl also ``anomaly_score(x)`` = their own
score (higher = more abnormal). An encoder made of several networks trains them one after the
other, each on its own schedule (``trained_parts``)."""

from __future__ import annotations

import torch
from torch import nn

from ..errors import OneClassError
from . import distill, global_features, gradients, joint, lenet, transforms

ENCODERS: dict[str, type[nn.Module]] = {
    **lenet.RECONSTRUCTION_ENCODERS,
    "ssl": transforms.TransformPredictor,
    "ssl-fast": distill.DistilledSSL,
    gradients.KIND: gradients.OrientedGradients,
    global_features.KIND: global_features.GlobalImageNetFeatures,
    **{kind: joint.JointEncoder for kind in joint.JOINT_PARTS},
}
JOINT_ENCODERS = frozenset(joint.JOINT_PARTS)
# nothing to train: pretrained, or fixed features with a projection fitted (``projected_parts``)
FIXED_ENCODERS = frozenset({global_features.KIND, gradients.KIND})
# the networks an encoder made of several trains, in order (a joint encoder: its parts' in turn)
PART_KINDS = {"ssl-fast": (distill.TEACHER_KIND, distill.STUDENT_KIND)}


# epochs when none are given: the ssl encoder sees every image in all its transformed copies per
# epoch (8x the images of an autoencoder epoch), and a few epochs gave its best validation
# AUROC (docs/ssl.md); ssl-fast's student: 4 epochs of 16 images (128 copies) per step, the best
# of the schedules measured on the validation split (benchmarks/defaults/ssl-fast/schedule.md)
DEFAULT_EPOCHS = {"ae": 10, "vae": 10, "ssl": 3, distill.STUDENT_KIND: 4}
# encoders whose threshold always comes from held-out images, at every data size: the head's PCA
# whitening of the ssl encoder's 512 features, estimated on the same ~5,000 images, makes them
# look closer to the normal data than any new image (an out-of-fold threshold flagged 0.166 of new
# normal digits at nu = 0.1; unwhitened, 0.103; docs/ssl.md)
# lite0-global's 432 features are whitened alike (benchmarks: its false-alarm rate on new images)
THRESHOLD_FROM_HELD_OUT = frozenset({"ssl", global_features.KIND})  # and joint encoders with such a part
# images per step when none are given: each ssl step trains on 8 copies of each image
DEFAULT_BATCH = {"ae": 200, "vae": 200, "ssl": 64, distill.STUDENT_KIND: 16}
# images per forward pass when scoring: the ssl encoder's 8 copies of 1,024 images overflow the
# caches (877 images/s at 1,024 against 3,118 at 64 on 2 cores; benchmarks/throughput.py --encoder ssl);
# the student's one copy at 256 (ssl-fast+ae: 17,600 images/s against 13,400 at 1,024)
# ImageNet features of 28x28 images enlarged to 84x84: 64 at a time (the widest layer 43 MB)
# gradient histograms: 9 orientation maps of the image's size, as many as the student's first stage
SCORING_BATCH = {"ssl": 64, distill.STUDENT_KIND: 256, global_features.KIND: 64, gradients.KIND: 256}


def trained_parts(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(kind, module)`` of each network that trains on its own schedule, in training order:
    the joint encoder's parts, the teacher then the student of ``ssl-fast``, or the encoder
    (none for pretrained features)."""
    if model.kind in JOINT_ENCODERS:
        return [pair for part in model.parts.values() for pair in trained_parts(part)]
    if isinstance(model, distill.DistilledSSL):
        return model.trained_parts()
    if model.kind in FIXED_ENCODERS:
        return []
    return [(model.kind, model)]


def component_kinds(kind: str) -> tuple[str, ...]:
    """The encoders ``kind`` is made of: a joint encoder's parts, else ``kind`` itself."""
    return tuple(joint.JOINT_PARTS[kind].values()) if kind in JOINT_ENCODERS else (kind,)


def part_kinds(kind: str) -> tuple[str, ...]:
    """The kinds of the networks an encoder ``kind`` trains (``trained_parts`` without a model)."""
    if kind in JOINT_ENCODERS:
        return tuple(network for part in component_kinds(kind) for network in part_kinds(part))
    if kind in FIXED_ENCODERS:
        return ()
    return PART_KINDS.get(kind, (kind,))


def holds_out_threshold(kind: str) -> bool:
    """Whether encoder ``kind``'s threshold always comes from held-out images: it, one of its
    parts or one of the networks it trains is in ``THRESHOLD_FROM_HELD_OUT``."""
    kinds = {*component_kinds(kind), *part_kinds(kind)}
    return not kinds.isdisjoint(THRESHOLD_FROM_HELD_OUT)


def scoring_batch(kind: str, default: int) -> int:
    """Images per forward pass when scoring with encoder ``kind``: the smallest of the parts'
    that score (a student scores in its teacher's place; pretrained parts score too)."""
    parts = part_kinds(kind)
    if distill.STUDENT_KIND in parts:
        parts = tuple(part for part in parts if part != distill.TEACHER_KIND)
    parts += tuple(part for part in component_kinds(kind) if part in FIXED_ENCODERS)
    return min(SCORING_BATCH.get(part, default) for part in parts)


def check_channels(kind: str, channels: tuple[int, ...] | None) -> None:
    """A joint encoder takes no channels: each part keeps its own default; pretrained features
    have the pretrained network's."""
    if channels and kind in JOINT_ENCODERS:
        raise OneClassError(
            f"channels: encoder {kind} uses each part's default channels; give channels to "
            "ssl, ae or vae alone"
        )
    if channels and kind in FIXED_ENCODERS:
        raise OneClassError(f"channels: encoder {kind} is a pretrained network of fixed channels")


def default_channels(kind: str) -> tuple[int, ...]:
    """Convolution channels per stage that ``kind`` uses when none are given."""
    shape_kinds = ("ssl", "ssl-fast", distill.STUDENT_KIND)
    return transforms.DEFAULT_CHANNELS if kind in shape_kinds else lenet.DEFAULT_CHANNELS


def build_encoder(
    kind: str,
    image_shape: tuple[int, int, int],
    latent_dim: int,
    channels: tuple[int, ...] | None = None,
) -> nn.Module:
    """The untrained encoder ``kind`` for images ``(C, H, W)``; ``latent_dim`` sizes the ae/vae
    latent (the ssl encoder's feature size follows from its channels and transformations)."""
    if kind not in ENCODERS:
        raise OneClassError(f"unknown encoder {kind!r}; expected one of {', '.join(ENCODERS)}")
    check_channels(kind, channels)
    if kind in JOINT_ENCODERS:
        # built in training order (ssl, then ae), each part with its own default channels
        parts = {
            part: build_encoder(part_kind, image_shape, latent_dim)
            for part, part_kind in joint.JOINT_PARTS[kind].items()
        }
        return joint.JointEncoder(kind, parts)
    if kind == gradients.KIND:  # its projection: fitted after the trained parts, the model file after
        return gradients.OrientedGradients(tuple(image_shape))
    if kind in FIXED_ENCODERS:  # its weights: load_pretrained() when fitting, the model file after
        return global_features.GlobalImageNetFeatures(tuple(image_shape))
    channels = tuple(channels) if channels else default_channels(kind)
    if kind == "ssl":
        model = transforms.TransformPredictor(tuple(image_shape), channels)
    elif kind == "ssl-fast":
        model = distill.DistilledSSL(tuple(image_shape), channels)
    else:
        model = lenet.build_reconstructor(kind, image_shape, latent_dim, channels)
    # channels_last (NHWC) weights make the convolutions run in NHWC: for these few-channel
    # layers about 1.5x faster on CPU, training and scoring (BENCHMARKS.md, "Throughput")
    return model.to(memory_format=torch.channels_last)


def load_pretrained_parts(model: nn.Module) -> nn.Module:
    """Put the pretrained weights into every pretrained part of ``model`` (before training)."""
    for module in model.modules():
        if getattr(module, "kind", None) == global_features.KIND:
            module.load_pretrained()
    return model


def projected_parts(model: nn.Module) -> list[gradients.OrientedGradients]:
    """The parts of ``model`` whose projection is fitted on the training images (nothing trained:
    the gradient histograms' principal components), for ``fit_projection``."""
    return [module for module in model.modules() if isinstance(module, gradients.OrientedGradients)]


def training_bytes(
    kind: str, image_shape: tuple[int, int, int], channels: tuple[int, ...] | None, batch_size: int
) -> int:
    """A generous estimate of one training step's memory for network ``kind`` (an encoder or a
    part of one: the student's step holds its own and its teacher's activations, as an ssl step)."""
    channels = tuple(channels) if channels else default_channels(kind)
    if kind in ("ssl", distill.STUDENT_KIND):
        return transforms.transform_training_bytes(tuple(image_shape), channels, batch_size)
    return lenet.training_bytes(tuple(image_shape), channels, batch_size)
