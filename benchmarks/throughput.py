"""Scoring throughput against the machine's measured peak, and the autoencoder's training epoch.

Part 1 measures the practical float32 peak of this machine (the best of several large matrix
multiplies), counts the scoring graph's FLOPs per image (torch.utils.flop_counter: convolutions
and matrix products), then times the detector's scoring graph (uint8 image -> score, the graph
``oneclass export`` writes) in PyTorch and in ONNX Runtime for batch sizes 1 to 4096, and reports
images/s and the achieved share of the peak. Part 2 times one training epoch of the MNIST
autoencoder (encoder + decoder) on all 60,000 training digits under the training loop's settings
and under variants that show what limits it.

    python benchmarks/throughput.py                      # about 5 minutes on 2 CPU cores
    python benchmarks/throughput.py --skip-training      # part 1 only
    python benchmarks/throughput.py --skip-training --encoder ssl   # the ssl detector (8 copies)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from oneclass import OneClassDetector
from oneclass.data import load_dataset
from oneclass.networks import build_encoder
from oneclass.services.bench import machine_description
from oneclass.services.export import export_onnx, scoring_graph
from oneclass.training.autoencoder import train_autoencoder

BATCH_SIZES = (1, 16, 64, 256, 1024, 4096)


def best_seconds(run, repeats: int, min_time: float = 0.3) -> float:
    """Seconds per call of ``run()``: the best of ``repeats`` timings, each long enough to trust."""
    run()  # warm-up (allocations, kernel selection)
    calls = 1
    while True:
        start = time.perf_counter()
        for _ in range(calls):
            run()
        elapsed = time.perf_counter() - start
        if elapsed >= min_time / repeats or calls >= 1 << 16:
            break
        calls *= 2
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            run()
        timings.append((time.perf_counter() - start) / calls)
    return min(timings)


def matmul_peak(size: int = 2048, repeats: int = 5) -> float:
    """Practical float32 peak (FLOP/s): the best timing of a size x size matrix product."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    out = torch.empty(size, size)
    seconds = best_seconds(lambda: torch.mm(a, b, out=out), repeats)
    return 2 * size**3 / seconds


def flops_per_image(graph: torch.nn.Module, image_shape: tuple[int, ...], batch: int = 64) -> float:
    counter = FlopCounterMode(display=False)
    with counter, torch.inference_mode():
        graph(torch.zeros((batch, *image_shape), dtype=torch.uint8))
    return counter.get_total_flops() / batch


def scoring_rows(detector: OneClassDetector, images: np.ndarray, peak: float, flops: float) -> list[dict]:
    graph = scoring_graph(detector)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        session = None
        try:
            import onnxruntime

            path = export_onnx(detector, tmp)
            session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except ImportError:
            print("onnxruntime not installed: ONNX rows skipped", file=sys.stderr)
        for batch_size in BATCH_SIZES:
            batch = np.ascontiguousarray(images[:batch_size])
            tensor = torch.from_numpy(batch)

            def torch_run(tensor=tensor):
                with torch.inference_mode():
                    graph(tensor)

            engines = {"PyTorch": torch_run}
            if session is not None:
                engines["ONNX Runtime"] = lambda batch=batch: session.run(["score"], {"images": batch})
            for engine, run in engines.items():
                seconds = best_seconds(run, repeats=5)
                per_second = batch_size / seconds
                rows.append(
                    {
                        "engine": engine,
                        "batch": batch_size,
                        "images_per_s": per_second,
                        "gflops": per_second * flops / 1e9,
                        "share_of_peak": per_second * flops / peak,
                    }
                )
                print(
                    f"| {engine} | {batch_size} | {per_second:,.0f} | {per_second * flops / 1e9:.1f} | "
                    f"{100 * per_second * flops / peak:.1f}% |",
                    flush=True,
                )
    return rows


def epoch_seconds(images: np.ndarray, batch_size: int, threads: int, channels_last: bool = True) -> float:
    """Seconds of one training epoch of the autoencoder (the training loop itself); the models
    are built in channels_last, ``channels_last=False`` converts them back to NCHW."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        model = build_encoder("ae", images.shape[1:], 32, (8, 4))
        if not channels_last:
            model = model.to(memory_format=torch.contiguous_format)
        history = train_autoencoder(
            model,
            images,
            epochs=2,
            batch_size=batch_size,
            lr=1e-3,
            weight_decay=1e-6,
            seed=0,
            device=torch.device("cpu"),
            quiet=True,
        )
        return min(record["seconds"] for record in history)  # the first epoch includes warm-up
    finally:
        torch.set_num_threads(previous)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-training", action="store_true", help="Only the scoring throughput.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--encoder", default="ae", help="Encoder of the scored detector: ae, vae or ssl.")
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)
    x, y = load_dataset("mnist", "train")
    xt, _ = load_dataset("mnist", "test")
    print(f"machine: {machine_description()}\n")

    peak = matmul_peak()
    detector = OneClassDetector(
        encoder=args.encoder, encoder_epochs=1, seed=args.seed, device="cpu", quiet=True
    )
    detector.fit(x[y == 0])
    flops = flops_per_image(scoring_graph(detector), detector.image_shape_)
    print(f"measured peak (2048x2048 float32 matmul, best of 5): {peak / 1e9:.1f} GFLOP/s")
    graph = f"{args.encoder} encoder + kernel OC-NN, 28x28"
    print(f"scoring graph ({graph}): {flops / 1e6:.3f} MFLOP per image\n")
    print("| engine | batch | images/s | GFLOP/s | share of peak |")
    print("|---|---|---|---|---|")
    rows = scoring_rows(detector, np.tile(xt[:, None], (1, 1, 1, 1))[:4096], peak, flops)
    best = max(rows, key=lambda row: row["share_of_peak"])
    print(
        f"\nbest: {best['engine']} at batch {best['batch']}: {best['images_per_s']:,.0f} images/s, "
        f"{100 * best['share_of_peak']:.1f}% of the measured peak"
    )
    if args.skip_training:
        return 0

    images = x[:, None]
    print("\nautoencoder training epoch, 60,000 MNIST digits (best of 2 epochs):\n")
    print("| batch | threads | memory layout | epoch (s) |")
    print("|---|---|---|---|")
    threads = torch.get_num_threads()
    for batch_size, n_threads, channels_last in (
        (200, threads, True),
        (200, threads, False),
        (200, 1, True),
        (1000, threads, True),
    ):
        seconds = epoch_seconds(images, batch_size, n_threads, channels_last)
        layout = "channels_last (the default)" if channels_last else "contiguous (NCHW)"
        print(f"| {batch_size} | {n_threads} | {layout} | {seconds:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
