"""Synthetic defects and the discriminator that learns from them (the local detector's second
member): the painting, the region labels and the training, on small synthetic data."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import is_constant
from oneclass.data.synthetic_defects import AREA, KNOWN_KINDS, synthetic_defects
from oneclass.evaluation.metrics import auroc
from oneclass.heads.defects import region_labels, train_discriminator


def _texture(n: int, channels: int, size: int = 64, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(60, 200, (n, channels, size, size)).astype(np.uint8)


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("kind", KNOWN_KINDS)
def test_each_kind_paints_one_blob_inside_its_mask(kind, channels):
    images = _texture(12, channels)
    painted, masks = synthetic_defects(images, np.random.default_rng(1), (kind,))
    assert painted.shape == images.shape and painted.dtype == np.uint8 and masks.shape == (12, 64, 64)
    area = masks.mean((1, 2))
    low, high = (0.001, 0.05) if kind == "line" else (0.5 * AREA[0], 1.5 * AREA[1])
    assert (area >= low).all() and (area <= high).all()
    near = torch.nn.functional.max_pool2d(torch.from_numpy(masks).float()[:, None], 9, 1, 4)[:, 0].numpy() > 0
    change = np.abs(painted.astype(int) - images.astype(int)).max(1)
    assert (change[~near] == 0).all()  # nothing changes away from the blob (its soft edge)
    assert change[masks].mean() > 10  # and the blob is visibly changed


def test_a_line_is_a_thin_stroke_where_a_blob_is_not():
    """At 64x64 a line is 1-3 px wide: nothing of it survives an erosion by a 5x5 square, while
    most blobs keep a core; its pixels are longer than wide (not a dot)."""
    images = _texture(12, 1)
    _, lines = synthetic_defects(images, np.random.default_rng(2), ("line",))
    _, blobs = synthetic_defects(images, np.random.default_rng(2), ("offset",))

    def eroded(masks):
        inverse = torch.from_numpy(~masks).float()[:, None]
        return (torch.nn.functional.max_pool2d(inverse, 5, 1, 2)[:, 0] == 0).numpy()

    assert not eroded(lines).any() and eroded(blobs).reshape(12, -1).any(1).mean() > 0.5
    for mask in lines:
        rows, cols = np.nonzero(mask)
        assert max(np.ptp(rows), np.ptp(cols)) + 1 >= 2 * np.sqrt(mask.sum())  # elongated


@pytest.mark.parametrize("kind", KNOWN_KINDS)
def test_float_images_in_0_1_are_painted_as_their_grey_levels_are(kind):
    """The API takes float images in [0, 1] as well as uint8: they are painted on the same 0..255
    scale (a defect of 30-90 grey levels, not of 30-90 times the image) and come back in [0, 1],
    the same defects as the uint8 images get from the same generator, only not rounded."""
    images = _texture(8, 1)
    painted, masks = synthetic_defects(images, np.random.default_rng(3), (kind,))
    floats, float_masks = synthetic_defects(images / np.float32(255), np.random.default_rng(3), (kind,))
    assert floats.dtype == np.float32 and floats.min() >= 0 and floats.max() <= 1
    assert np.array_equal(float_masks, masks)
    assert np.abs(floats * 255 - painted).max() <= 0.5 + 1e-3


def test_gain_scales_the_texture_where_offset_shifts_it():
    """Inside a blob's core (its soft edge eroded away) the painted levels are a line in the clean
    ones: ``gain`` multiplies them by one factor (through the origin; the texture's contrast
    changes with it, as a stain's or a wet spot's reflectance does), ``offset`` adds one amount
    (slope 1; the contrast stays)."""

    def core_lines(kind, low, high):
        images = np.random.default_rng(4).integers(low, high, (8, 1, 64, 64)).astype(np.uint8)
        painted, masks = synthetic_defects(images, np.random.default_rng(5), (kind,))
        outside = torch.from_numpy(~masks).float()[:, None]
        core = (torch.nn.functional.max_pool2d(outside, 7, 1, 3)[:, 0] == 0).numpy()
        fits = [
            np.polyfit(images[i, 0][core[i]].astype(float), painted[i, 0][core[i]].astype(float), 1)
            for i in range(8)
            if core[i].sum() >= 10
        ]
        assert len(fits) >= 4
        return fits

    for slope, intercept in core_lines("gain", 40, 100):  # x2.5 or /2.5 stays inside 0..255
        assert abs(np.log(slope)) >= np.log(1.3) - 0.03 and abs(np.log(slope)) <= np.log(2.5) + 0.03
        assert abs(intercept) < 2
    for slope, intercept in core_lines("offset", 100, 150):  # +-90 stays inside 0..255
        assert abs(slope - 1) < 0.02 and 29 <= abs(intercept) <= 91


def test_an_unknown_kind_is_named_in_the_error():
    with pytest.raises(ValueError, match="'stripe'.*gain"):
        synthetic_defects(_texture(2, 1), np.random.default_rng(0), ("stripe",))


def test_the_same_generator_paints_the_same_defects():
    images = _texture(6, 1)
    first = synthetic_defects(images, np.random.default_rng([0, 5]))
    again = synthetic_defects(images, np.random.default_rng([0, 5]))
    other = synthetic_defects(images, np.random.default_rng([1, 5]))
    assert np.array_equal(first[0], again[0]) and np.array_equal(first[1], again[1])
    assert not np.array_equal(first[1], other[1])


def test_region_labels_mark_covered_regions_and_leave_their_margin_out():
    masks = torch.zeros(1, 32, 32, dtype=torch.bool)
    masks[0, 8:16, 8:16] = True  # regions (2..3, 2..3) of an 8x8 grid of 4x4-pixel regions
    labels = region_labels(masks, (8, 8))[0]
    assert (labels[2:4, 2:4] == 1).all()
    assert (labels[0:6, 0:6][labels[0:6, 0:6] != 1] == -1).all()  # within two regions: left out
    assert (labels[6:, :] == 0).all() and (labels[:, 6:] == 0).all()


def test_the_discriminator_learns_which_direction_marks_a_defect():
    """Normal descriptors vary widely in every direction; defects differ in one direction only,
    by less than that spread: the discriminator finds it where a distance to the normal mean
    does not."""
    generator = torch.Generator().manual_seed(0)
    spread = torch.tensor([1.0] + [4.0] * 7)
    normal = torch.randn(6000, 8, generator=generator) * spread
    defects = torch.randn(600, 8, generator=generator) * spread + torch.tensor([3.0] + [0.0] * 7)
    net = train_discriminator(
        normal[:4000], defects[:400], normal[4000:5000], seed=0, device=torch.device("cpu")
    )
    with torch.no_grad():
        logits = net(torch.cat([normal[5000:], defects[400:]])).numpy()
    is_normal = np.r_[np.ones(1000, bool), np.zeros(200, bool)]
    assert not is_constant(logits)
    assert auroc(-logits, is_normal) > 0.9
    distance = torch.cat([normal[5000:], defects[400:]]).norm(dim=1).numpy()
    assert auroc(-distance, is_normal) < 0.75


def _maps(index: np.ndarray) -> torch.Tensor:
    return torch.stack([torch.randn(8, 6, 6, generator=torch.Generator().manual_seed(int(i))) for i in index])


def test_a_head_whose_painting_marks_no_region_keeps_the_ocnn_alone():
    """Painted images whose masks mark nothing (a defect too small for any region) give no
    discriminator: the head is the OC-NN alone, not one trained on an empty class."""
    from oneclass.heads.ocnn.patch import PatchOCNN

    def unpainted(index):
        return _maps(index), np.zeros((len(index), 24, 24), dtype=bool)

    plain = PatchOCNN(hidden=32, synthetic_defects=False, seed=0).fit(_maps, 40, (24, 24))
    head = PatchOCNN(hidden=32, seed=0).fit(_maps, 40, (24, 24), painted_of=unpainted)
    assert not head.defects_used_ and head.scorer_.discriminator is None
    test = _maps(np.arange(100, 110))
    assert np.array_equal(head.score_samples(test), plain.score_samples(test))
    assert head.threshold_ == plain.threshold_
