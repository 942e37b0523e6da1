"""The embedding runtime: throughput and fidelity of PyTorch, ONNX Runtime and OpenVINO, and the flags each gives.

Part one decodes IMAGES photos of a dataset once, at the photo member's view (whole photo, 160 px) and
the crop member's (object crop, 112 px), and runs MobileNetV2's frozen extractor over them with each
runtime in turn, interleaved round by round so that a change in the machine's load hits all of them:
photos per second (median of ROUNDS rounds) at batch 32 and 64, and each runtime's vectors against
PyTorch float32 (smallest and mean cosine, largest absolute difference). OpenVINO (`pip install
openvino`, not a dependency of the app) runs when installed, in float32 and, where the CPU has it,
bfloat16. Then the same files through embed_images (decoding included) with each runtime the app has.

Part two (--flags DATASET ...) runs the mislabel check's evidence on each dataset twice, in two fresh
databases, with LISTING_AUDIT_RUNTIME=torch and =onnxruntime, and says whether the flags are identical.

    .venv/bin/python bench/runtime.py data/demo
    .venv/bin/python bench/runtime.py --flags /tmp/p100 /tmp/fine40 /tmp/sk100 /tmp/fash100
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.models.embeddings import DEFAULT_BACKBONE, build_extractor, embed_images, get_backbone, weights_path
from core.models.views import crop_pixels
from core.models.runtime import TorchRunner, graph_path, onnx_runner, row_cosines  # noqa: E402
from core.imaging import IMAGE_EXTENSIONS  # noqa: E402

IMAGES = 256
ROUNDS = 5
BATCHES = (32, 64)
#: (view, side) of the photo and crop members (core.audit.checks.mislabel's defaults).
VIEWS = (("whole", 160), ("crop", 112))


def dataset_photos(root: Path, count: int) -> list[Path]:
    """The first `count` images of a dataset that decode, in path order."""
    found = []
    for path in sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS):
        if crop_pixels(path, 32, "crop")[1]:
            found.append(path)
        if len(found) == count:
            break
    return found


def openvino_runners(graph: Path) -> dict:
    """OpenVINO on the exported graph, float32 and (where the CPU supports it) bfloat16; {} without OpenVINO."""
    try:
        import openvino
    except ImportError:
        return {}
    core = openvino.Core()
    threads = str(torch.get_num_threads())
    runners = {}
    hints = [("f32", "OpenVINO fp32")]
    if "BF16" in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        hints.append(("bf16", "OpenVINO bf16"))
    for precision, name in hints:
        compiled = core.compile_model(str(graph), "CPU", {"INFERENCE_PRECISION_HINT": precision,
                                                           "INFERENCE_NUM_THREADS": threads})
        runners[name] = lambda images, c=compiled: torch.from_numpy(c(images.numpy())[0])
    return runners


def throughput(photos: list[Path]) -> list[str]:
    backbone = get_backbone(DEFAULT_BACKBONE)
    lines = []
    for view, side in VIEWS:
        pixels = torch.from_numpy(np.stack([crop_pixels(path, side, view)[0] for path in photos]))
        onnx = onnx_runner(lambda: build_extractor(backbone), name=backbone.name, weights=weights_path(backbone),
                           image_size=side)
        runners = {"PyTorch eager, channels_last": TorchRunner(build_extractor(backbone), torch.device("cpu"), 64),
                   "ONNX Runtime fp32": onnx,
                   **openvino_runners(graph_path(backbone.name, weights_path(backbone), side))}
        reference = runners["PyTorch eager, channels_last"](pixels).numpy()
        speeds: dict[tuple[str, int], list[float]] = {}
        for _ in range(ROUNDS):
            for batch in BATCHES:
                for name, run in runners.items():
                    started = time.perf_counter()
                    for start in range(0, len(pixels), batch):
                        run(pixels[start:start + batch])
                    speeds.setdefault((name, batch), []).append(len(pixels) / (time.perf_counter() - started))
        lines.append(f"\n{view} view, {side} px, {len(photos)} photos, {torch.get_num_threads()} threads; photos/s "
                     f"median of {ROUNDS} (batch {' / '.join(map(str, BATCHES))}):")
        base = [statistics.median(speeds[(next(iter(runners)), b)]) for b in BATCHES]
        for name, run in runners.items():
            medians = [statistics.median(speeds[(name, b)]) for b in BATCHES]
            vectors = run(pixels).numpy()
            cosines = row_cosines(vectors, reference)
            lines.append(f"  {name:<30} {' / '.join(f'{m:6.0f}' for m in medians)}   "
                         f"{' / '.join(f'{m / b:.1f}x' for m, b in zip(medians, base))}   cosine min "
                         f"{cosines.min():.4f} mean {cosines.mean():.4f}, max abs diff "
                         f"{np.abs(vectors - reference).max():.1e}")
    return lines


def end_to_end(photos: list[Path]) -> list[str]:
    """embed_images on the files (decoding in the loader's worker) with each runtime, twice each."""
    lines = [f"\nembed_images on {len(photos)} files (decode, crop and network; best of 2):"]
    for view, side in VIEWS:
        for runtime in ("torch", "onnxruntime"):
            seconds = []
            for _ in range(2):
                started = time.perf_counter()
                embed_images(photos, image_size=side, view=view, device="cpu", runtime=runtime)
                seconds.append(time.perf_counter() - started)
            lines.append(f"  {view:<5} {side} px {runtime:<12} {len(photos) / min(seconds):6.0f} photos/s")
    return lines


def same_flags(roots: list[Path]) -> list[str]:
    """The mislabel check's flags with each runtime, each in a fresh database (no cached embeddings)."""
    from mislabel import load_context

    from core.audit.checks.mislabel import audited_samples
    from core.audit.evidence.gather import flag_issues, gather_evidence, resolve_options

    lines = ["\nmislabel flags, fresh databases, LISTING_AUDIT_RUNTIME=torch vs onnxruntime:"]
    for root in roots:
        results = {}
        for runtime in ("torch", "onnxruntime"):
            os.environ["LISTING_AUDIT_RUNTIME"] = runtime
            with tempfile.TemporaryDirectory() as folder:
                context, truth_of = load_context(root.resolve(), Path(folder) / "bench.db", {})
                samples, labels = audited_samples(context)
                truth = truth_of.loc[samples["path"]].to_numpy(dtype=bool)
                started = time.perf_counter()
                combination = gather_evidence(context, samples, labels, resolve_options(context.params, {})).combination
                seconds = time.perf_counter() - started
                issues, _, _ = flag_issues(labels, combination.pred_probs, combination.count_probs)
            hits = int((issues & truth).sum())
            f1 = 2 * hits / max(int(issues.sum()) + int(truth.sum()), 1)
            results[runtime] = (issues, f1, seconds)
        (a, f1_a, s_a), (b, f1_b, s_b) = results["torch"], results["onnxruntime"]
        lines.append(f"  {root.name}: {len(a)} listings; flagged {int(a.sum())} / {int(b.sum())}, "
                     f"{int((a != b).sum())} flags differ; F1 {f1_a:.3f} / {f1_b:.3f}; mislabel evidence "
                     f"{s_a:.1f} s / {s_b:.1f} s (embeddings cold)")
    os.environ.pop("LISTING_AUDIT_RUNTIME", None)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", type=Path, nargs="?", help="a dataset folder whose photos are timed")
    parser.add_argument("--flags", type=Path, nargs="*", default=[], help="datasets with truth.csv for part two")
    args = parser.parse_args()
    print(f"machine: nproc {os.cpu_count()}, {platform.processor() or platform.machine()}, torch {torch.__version__}; "
          "load average " + " ".join(f"{v:.1f}" for v in os.getloadavg()))
    if args.dataset:
        photos = dataset_photos(args.dataset, IMAGES)
        print("\n".join(throughput(photos) + end_to_end(photos)), flush=True)
    if args.flags:
        print("\n".join(same_flags(args.flags)))
    print("load average after: " + " ".join(f"{v:.1f}" for v in os.getloadavg()))


if __name__ == "__main__":
    main()
