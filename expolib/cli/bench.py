"""``python -m expolib bench``: time a training step and the data pipeline on this machine."""


from __future__ import annotations

import argparse
import dataclasses
from typing import Any, Optional

import torch

from expolib.benchmarks.trainstep import PRECISIONS, run_bench
from expolib.cli.errors import UsageError, guarded, one_line
from expolib.cli.options import add_command, auto_to_none, parse_switch

SUMMARY = "time a training step and the data pipeline on this machine"
DESCRIPTION = (
    "Time one pix2pix training step (D update on the detached fake, G update through the frozen D) "
    "for pix2pix's default networks (ngf=ndf=64, depth 8, 256x256) and the book's configuration "
    "(ngf=ndf=16, depth 7, 128x128), on the CPU and on the GPU when there is one. Reports ms per "
    "image, images per second, the FLOPs of one step, the achieved GFLOP/s and its fraction of the "
    "matrix-multiply peak that the command measures at the same precision, and the data "
    "pipeline's pairs per second."
)


def _batch_sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(v) for v in text.split(","))
    except ValueError:
        message = f"expected comma-separated integers such as 1,4; got {text!r}"
        raise argparse.ArgumentTypeError(message) from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"batch sizes must be positive, got {text!r}")
    return sizes


def add_cli(subparsers: argparse._SubParsersAction) -> None:
    """Add ``python -m expolib bench``."""
    parser = add_command(subparsers, "bench", SUMMARY, DESCRIPTION)
    parser.add_argument("--quick", action="store_true",
                        help="tiny network, one repetition, short measurements (seconds; for tests)")
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32",
                        help="fp32, or bf16 (autocast; skipped on devices without native bf16)")
    parser.add_argument("--batch-sizes", type=_batch_sizes, default=(1, 4), metavar="N[,N...]",
                        help="batch sizes to time")
    parser.add_argument("--device", action="append", default=None, metavar="DEVICE",
                        help="device to time (repeat for several; default: cpu, and cuda when present)")
    parser.add_argument("--channels-last", type=parse_switch, default=None, metavar="on|off|auto",
                        help="channels-last memory format (auto: as the trainer chooses, on for CUDA)")
    parser.add_argument("--gemm-convolutions", type=parse_switch, default=None, metavar="on|off|auto",
                        help="small transposed convolutions as matrix products (auto: as the trainer "
                             "chooses, on for the CPU)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed steps per measurement (default 3; 1 with --quick)")
    e2e = parser.add_argument_group(
        "end to end", "--end-to-end times Trainer.fit (data, rendering, step, logging) over a fixed number "
        "of steps next to the bare step, for the shipped photos rendered on the device and for a "
        "generated folder of JPEGs in MSEC's layout")
    e2e.add_argument("--end-to-end", action="store_true", help="time training end to end instead")
    e2e.add_argument("--network", choices=("pix2pix", "book", "quick"), default=None,
                     help="network to train (default: pix2pix on CUDA, the book's on the CPU; quick with "
                          "--quick)")
    e2e.add_argument("--steps", type=int, default=None, help="timed steps (default 20; 3 with --quick)")
    e2e.add_argument("--num-workers", type=int, default=0, help="DataLoader worker processes")
    e2e.add_argument("--msec-side", type=int, default=512,
                     help="long side of the generated MSEC-layout photos (default 512)")
    e2e.add_argument("--compile", action="store_true",
                     help="also time torch.compile (reports the run's time including compilation)")
    seeds = parser.add_argument_group(
        "seeds", "--seeds times the three seeds of a chapter experiment trained one after another against "
        "the same three trained as one batched model (torch.func.vmap), at the budget's experiment size")
    seeds.add_argument("--seeds", action="store_true", help="time batched seeds instead")
    seeds.add_argument("--budget", choices=("quick", "standard", "full"), default="standard",
                       help="whose experiment size to time (default standard)")
    parser.set_defaults(func=_run_cli)


def _check_devices(names: Optional[list[str]]) -> None:
    """Refuse, before any timing, a device that is not a device or that this machine does not have."""
    for name in names or []:
        try:
            device = torch.device(name)
        except RuntimeError as error:
            raise UsageError("--device", f"{name!r} is not a device ({one_line(str(error))})") from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise UsageError("--device", f"{name!r}: this machine has no CUDA GPU")
        if device.type == "mps" and not torch.backends.mps.is_available():
            raise UsageError("--device", f"{name!r}: this machine has no MPS device")


@guarded
def _run_cli(args: argparse.Namespace) -> int:
    """A device that does not exist, or bad settings, are one line on stderr and exit status 2."""
    _check_devices(args.device)
    out = lambda line: print(line, flush=True)  # noqa: E731
    if args.end_to_end:
        _end_to_end(args, out)
        return 0
    if args.seeds:
        from expolib.benchmarks.seeds import bench_seeds
        from expolib.book.experiments import SIZES

        size = SIZES[args.budget]
        if args.quick:  # a tiny network, for tests: seconds
            size = dataclasses.replace(size, ngf=4, ndf=4, depth=5, batch=2)
        bench_seeds(size, steps=args.steps or (2 if args.quick else 20), out=out)
        return 0
    run_bench(devices=args.device, precision=args.precision, batch_sizes=args.batch_sizes,
              quick=args.quick, repeats=args.repeats, channels_last=auto_to_none(args.channels_last),
              gemm_convolutions=auto_to_none(args.gemm_convolutions), out=out)
    return 0


def _end_to_end(args: argparse.Namespace, out: Any) -> None:
    """``--end-to-end``: one table per device."""
    from expolib.benchmarks.endtoend import bench_end_to_end
    from expolib.benchmarks.trainstep import BenchNetwork, networks

    for steps, name in ((args.steps, "--steps"), (args.msec_side, "--msec-side")):
        if steps is not None and steps < 1:
            raise UsageError(name, f"must be at least 1, got {steps}")
    if args.num_workers < 0:
        raise UsageError("--num-workers", f"must be >= 0, got {args.num_workers}")
    devices = args.device or ["cuda" if torch.cuda.is_available() else "cpu"]
    for device in devices:
        default = "pix2pix" if device.startswith("cuda") else "book"
        wanted = args.network or ("quick" if args.quick else default)
        found: dict[str, BenchNetwork] = {n.name: n for n in networks(quick=False) + networks(quick=True)}
        net = found[wanted]
        batch = args.batch_sizes[0] if args.batch_sizes != (1, 4) else (64 if wanted == "pix2pix" else 8)
        steps = args.steps or (3 if args.quick else 20)
        bench_end_to_end(device, net, batch, steps, args.precision, args.num_workers,
                         msec_side=64 if args.quick else args.msec_side, compile_too=args.compile, out=out)


__all__ = ["add_cli"]
