"""Networks: the encoders trained on the normal images (LeNet-type convolutional autoencoder and
VAE, the self-supervised transformation predictor), ImageNet features of the whole image, and
patch feature extractors (ImageNet EfficientNet-Lite0, or fixed random convolutions)."""

from .distill import STUDENT_KIND
from .encoders import (
    DEFAULT_BATCH,
    DEFAULT_EPOCHS,
    ENCODERS,
    JOINT_ENCODERS,
    SCORING_BATCH,
    THRESHOLD_FROM_HELD_OUT,
    build_encoder,
    check_channels,
    component_kinds,
    default_channels,
    holds_out_threshold,
    load_pretrained_parts,
    part_kinds,
    projected_parts,
    scoring_batch,
    trained_parts,
    training_bytes,
)
from .lenet import ConvAutoencoder, ConvVAE
from .patches import (
    PATCH_BATCH,
    PATCH_ENCODERS,
    PATCH_HEAD_UNITS,
    PatchFeatures,
    build_patch_features,
    feature_bytes,
    images_per_pass,
    patch_descriptors,
    sizing_features,
)

__all__ = [
    "DEFAULT_BATCH",
    "DEFAULT_EPOCHS",
    "ENCODERS",
    "JOINT_ENCODERS",
    "PATCH_BATCH",
    "PATCH_ENCODERS",
    "PATCH_HEAD_UNITS",
    "SCORING_BATCH",
    "STUDENT_KIND",
    "THRESHOLD_FROM_HELD_OUT",
    "ConvAutoencoder",
    "ConvVAE",
    "PatchFeatures",
    "build_encoder",
    "build_patch_features",
    "patch_descriptors",
    "check_channels",
    "component_kinds",
    "default_channels",
    "feature_bytes",
    "sizing_features",
    "images_per_pass",
    "holds_out_threshold",
    "load_pretrained_parts",
    "part_kinds",
    "projected_parts",
    "scoring_batch",
    "trained_parts",
    "training_bytes",
]
