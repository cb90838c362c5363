"""Build the inspection benchmark: MVTec-AD-layout folders of 64x64 patches cut from real
photographs, with synthetic local defects and their pixel masks. Reproducible: the same command
gives the same bytes.

The photographs come from scikit-image's wheel (``skimage/data/``): read from an installed
scikit-image, else from the wheel fetched once with ``pip download --no-deps
scikit-image==0.26.0`` (no install) and checked by sha256.

- ``--set test`` (the reported benchmark): brick, grass, gravel (512x512 grey textures). The
  photograph is cut into a 4 x 4 checkerboard of blocks: ``train/good/`` 400 crops from the
  white blocks, ``test/good/`` 100 and ``test/<kind>/`` 50 per defect kind from the black ones
  (no test crop overlaps a training crop; both sample the whole photograph);
- ``--set validation`` (for choosing settings): the same three photographs, white blocks only
  (the test set's training region): train crops from six of them, test crops from the other two.
  The test set's test blocks are never read. ``--fold 1..3`` holds out another pair of the eight
  white blocks (fold 0, the default, the last pair), for settings chosen over several splits.
- ``--set other`` (a check on photographs no setting was chosen on): ihc (immunohistochemistry
  tissue) and retina (the middle of a fundus photograph), split as the test set.

Each defect covers 1-5% of the image, its mask in ``ground_truth/<kind>/<name>_mask.png``:

- ``scratch``: a thin straight line, 2-3 px wide, 20-44 px long, 80-130 grey levels away from the
  local mean (dark on bright ground, bright on dark);
- ``stain``: a soft-edged ellipse (41-205 px), darkened to 35-55% or lightened to 160-200%;
- ``missing``: a rectangle (41-205 px) whose texture is gone (replaced by the local mean), placed
  where the crop is textured (at least as varied as the crop as a whole).

The strengths are set so that an inspector sees each defect at a glance (as in MVTec AD), not by
any detector's result.

    python benchmarks/inspection_data.py --out data/inspection            # a few seconds
    python benchmarks/inspection_data.py --set validation --out data/inspection-validation
    python benchmarks/inspection_data.py --set validation --fold 1 --out data/inspection-validation-1
    python benchmarks/inspection_data.py --set other --out data/inspection-other
"""

from __future__ import annotations

import argparse
import hashlib
import io
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from oneclass.data.datasets import default_data_dir

WHEEL = "scikit-image==0.26.0"
WHEEL_CACHE = default_data_dir() / "wheels"  # $ONECLASS_DATA/wheels, else ~/.cache/oneclass/wheels
SOURCES = {  # name: (file in skimage/data/, sha256 of the file)
    "brick": ("brick.png", "7966caf324f6ba843118d98f7a07746d22f6a343430add0233eca5f6eaaa8fcf"),
    "grass": ("grass.png", "b6b6022426b38936c43a4ac09635cd78af074e90f42ffa8227ac8b7452d39f89"),
    "gravel": ("gravel.png", "c48615b451bf1e606fbd72c0aa9f8cc0f068ab7111ef7d93bb9b0f2586440c12"),
    "ihc": ("ihc.png", "f8dd1aa387ddd1f49d8ad13b50921b237df8e9b262606d258770687b0ef93cef"),
    "retina": ("retina.jpg", "38a07f36f27f095e818aea7b96d34202c05176d30253c66733f2e00379e9e0e6"),
}
SETS = {
    "test": ("brick", "grass", "gravel"),
    "validation": ("brick", "grass", "gravel"),
    "other": ("ihc", "retina"),
}
BLOCKS = 4  # the photograph is cut into BLOCKS x BLOCKS blocks, a checkerboard
WHITE = [(r, c) for r in range(BLOCKS) for c in range(BLOCKS) if (r + c) % 2 == 0]
BLACK = [(r, c) for r in range(BLOCKS) for c in range(BLOCKS) if (r + c) % 2 == 1]
REGIONS = {"test": (WHITE, BLACK), "validation": (WHITE[:6], WHITE[6:]), "other": (WHITE, BLACK)}
SIZE = 64
N_TRAIN, N_GOOD, N_DEFECT = 400, 100, 50
KINDS = ("scratch", "stain", "missing")
AREA = (0.01 * SIZE * SIZE, 0.05 * SIZE * SIZE)  # each defect covers 1-5% of the image


def photograph_bytes(name: str) -> bytes:
    """The photograph's file from an installed scikit-image or its wheel (fetched once)."""
    member = SOURCES[name][0]
    try:
        import skimage

        return (Path(skimage.__file__).parent / "data" / member).read_bytes()
    except (ImportError, OSError):
        pass
    wheels = sorted(WHEEL_CACHE.glob("scikit_image-0.26.0-*.whl"))
    if not wheels:
        WHEEL_CACHE.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
            subprocess.run([*command, "--timeout", "10", "-d", tmp, WHEEL], check=True, capture_output=True)
            for wheel in Path(tmp).glob("*.whl"):
                shutil.copy(wheel, WHEEL_CACHE / wheel.name)
        wheels = sorted(WHEEL_CACHE.glob("scikit_image-0.26.0-*.whl"))
    with zipfile.ZipFile(wheels[0]) as wheel:
        return wheel.read(f"skimage/data/{member}")


def photograph(name: str) -> np.ndarray:
    """The photograph as grey uint8 (H, W), its bytes checked against the recorded sha256."""
    data = photograph_bytes(name)
    digest = hashlib.sha256(data).hexdigest()
    if digest != SOURCES[name][1]:
        raise SystemExit(f"{SOURCES[name][0]}: sha256 {digest} is not the recorded one")
    image = np.asarray(Image.open(io.BytesIO(data)).convert("L"))
    if name == "retina":  # the fundus disc only: its square inside the black surround
        side = image.shape[0]
        return image[int(0.25 * side) : int(0.75 * side), int(0.25 * side) : int(0.75 * side)]
    return image


def crops(
    image: np.ndarray, blocks: list[tuple[int, int]], count: int, rng: np.random.Generator
) -> list[np.ndarray]:
    """``count`` crops at random places inside the given blocks (a crop never leaves its block)."""
    height, width = image.shape[0] // BLOCKS, image.shape[1] // BLOCKS
    out = []
    for i in range(count):
        row, col = blocks[i % len(blocks)]
        top = row * height + rng.integers(0, height - SIZE + 1)
        left = col * width + rng.integers(0, width - SIZE + 1)
        out.append(image[top : top + SIZE, left : left + SIZE].copy())
    return out


def _soft(mask: Image.Image, radius: float) -> np.ndarray:
    return np.asarray(mask.filter(ImageFilter.GaussianBlur(radius)), dtype=np.float64) / 255.0


def scratch(image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    scale = 4  # drawn 4x larger and reduced: an anti-aliased line
    length, angle, width = rng.uniform(20, 44), rng.uniform(0, np.pi), int(rng.integers(2, 4))
    centre = rng.uniform(16, SIZE - 16, 2)
    ends = [centre + sign * 0.5 * length * np.array([np.cos(angle), np.sin(angle)]) for sign in (-1, 1)]
    big = Image.new("L", (SIZE * scale, SIZE * scale))
    ImageDraw.Draw(big).line([tuple(scale * e) for e in ends], fill=255, width=width * scale)
    alpha = np.asarray(big.resize((SIZE, SIZE), Image.BOX), dtype=np.float64) / 255.0
    ground = float(image[alpha > 0.5].mean()) if (alpha > 0.5).any() else float(image.mean())
    shift = (-1.0 if ground > 127 else 1.0) * rng.uniform(80, 130)
    return image + alpha * shift, alpha > 0.5


def _ellipse(rng: np.random.Generator) -> Image.Image:
    while True:
        a, b = rng.uniform(3.5, 9.0, 2)
        if AREA[0] <= np.pi * a * b <= AREA[1]:
            break
    centre = rng.uniform(12, SIZE - 12, 2)
    mask = Image.new("L", (SIZE, SIZE))
    ImageDraw.Draw(mask).ellipse([centre[0] - a, centre[1] - b, centre[0] + a, centre[1] + b], fill=255)
    return mask.rotate(rng.uniform(0, 180), center=tuple(centre), resample=Image.BILINEAR)


def stain(image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    shape = _ellipse(rng)
    alpha = _soft(shape, 1.2)
    factor = rng.uniform(0.35, 0.55) if rng.uniform() < 0.7 else rng.uniform(1.6, 2.0)
    return image * (1 - alpha) + np.clip(image * factor, 0, 255) * alpha, np.asarray(shape) > 127


def missing(image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Texture removed where there is texture: the rectangle is placed where the image varies
    more than it does on average (removing texture from a smooth surface changes nothing)."""
    spread, best = float(image.std()), None
    for _ in range(200):  # the first textured place, else the most varied of 200 tried
        height, width = rng.integers(6, 16, 2)
        if not AREA[0] <= height * width <= AREA[1]:
            continue
        top, left = rng.integers(4, SIZE - 4 - height), rng.integers(4, SIZE - 4 - width)
        varied = float(image[top : top + height, left : left + width].std())
        if best is None or varied > best[0]:
            best = (varied, top, left, height, width)
        if varied >= spread:
            break
    _, top, left, height, width = best
    shape = Image.new("L", (SIZE, SIZE))
    ImageDraw.Draw(shape).rectangle([left, top, left + width - 1, top + height - 1], fill=255)
    alpha = _soft(shape, 0.8)
    flat = np.asarray(Image.fromarray(image.astype(np.uint8)).filter(ImageFilter.GaussianBlur(8)), np.float64)
    return image * (1 - alpha) + flat * alpha, np.asarray(shape) > 127


DEFECTS = {"scratch": scratch, "stain": stain, "missing": missing}


def _save(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.clip(np.rint(array), 0, 255).astype(np.uint8)).save(path, optimize=False)


def validation_blocks(fold: int) -> tuple[list, list]:
    """(train blocks, test blocks) of validation fold ``fold``: the pair of white blocks
    ``WHITE[6 - 2 fold : 8 - 2 fold]`` held out (fold 0 is ``REGIONS["validation"]``)."""
    held = WHITE[6 - 2 * fold : 8 - 2 * fold]
    return [b for b in WHITE if b not in held], held


def build(
    name: str,
    root: Path,
    which: str,
    seed: int,
    counts: tuple[int, int, int] = (N_TRAIN, N_GOOD, N_DEFECT),
    fold: int = 0,
) -> None:
    """One category under ``root``: ``counts`` = (train/good, test/good, test images per defect
    kind); smaller counts (the tests) give a different draw, not a subset."""
    n_train, n_good, n_defect = counts
    image = photograph(name)
    train_blocks, test_blocks = validation_blocks(fold) if which == "validation" else REGIONS[which]
    key = [seed, list(SOURCES).index(name), list(SETS).index(which)] + ([fold] if fold else [])
    rng = np.random.default_rng(key)  # fold 0 keeps the bytes of the first validation folders
    for i, crop in enumerate(crops(image, train_blocks, n_train, rng)):
        _save(root / "train" / "good" / f"{i:03d}.png", crop)
    test = crops(image, test_blocks, n_good + n_defect * len(KINDS), rng)
    test = [test[i] for i in rng.permutation(len(test))]  # every kind from every test block
    for i, crop in enumerate(test[:n_good]):
        _save(root / "test" / "good" / f"{i:03d}.png", crop)
    for k, kind in enumerate(KINDS):
        for i, crop in enumerate(test[n_good + k * n_defect : n_good + (k + 1) * n_defect]):
            while True:  # redrawn until the defect covers 1-5% of the image
                damaged, mask = DEFECTS[kind](crop.astype(np.float64), rng)
                if AREA[0] <= mask.sum() <= AREA[1]:
                    break
            _save(root / "test" / kind / f"{i:03d}.png", damaged)
            _save(root / "ground_truth" / kind / f"{i:03d}_mask.png", mask * 255.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", choices=sorted(SETS), default="test")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fold", type=int, default=0, choices=range(4), help="validation fold (0-3)")
    args = parser.parse_args(argv)
    if args.fold and args.set != "validation":
        parser.error("--fold applies to --set validation only")
    for name in SETS[args.set]:
        if (args.out / name).exists():
            shutil.rmtree(args.out / name)
        build(name, args.out / name, args.set, args.seed, fold=args.fold)
        print(f"{args.out / name}: {N_TRAIN} train/good, {N_GOOD} test/good, {N_DEFECT} x {', '.join(KINDS)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
