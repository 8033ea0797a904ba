"""The two choices every chapter makes first: how much work to do (the budget) and where (the device).

The budget is read from the ``EXPOLIB_BUDGET`` environment variable through :func:`get_budget`, the
only place in the project that reads it. A budget changes sizes and counts, never which code runs.
:func:`pick_device` picks the device; :func:`decide_runtime` decides, once per run, everything about
how a run computes there (a :class:`Runtime`: device, mixed precision, memory format, convolution
route, compilation), and the rest of the library is handed that decision.
"""

from __future__ import annotations

import contextlib
import os
import random
import warnings
from dataclasses import dataclass, replace
from typing import Optional

import numpy as np
import torch

ENV_VAR = "EXPOLIB_BUDGET"
DEFAULT_BUDGET = "standard"


@dataclass(frozen=True)
class Budget:
    """Sizes and counts for one budget; every chapter reads its numbers from here."""

    name: str
    image_size: int  # side of the square training crops
    batch_size: int
    epochs: int
    steps_per_epoch: Optional[int]  # cap on batches per epoch; None means the whole dataset
    ngf: int  # generator base width
    ndf: int  # discriminator base width
    depth: int  # U-Net levels: image_size / 2**depth is the bottleneck side
    eval_side: int  # long side, in pixels, of the photos used for evaluation
    demo_steps: int  # optimisation steps for the short comparisons inside chapters
    num_workers: int  # DataLoader worker processes
    ev_examples: int  # renders the two-stage corrector's global stage is fitted on
    ev_epochs: int  # epochs of that fit (over a small table of features: seconds)


BUDGETS: dict[str, Budget] = {
    "quick": Budget(
        name="quick", image_size=64, batch_size=4, epochs=2, steps_per_epoch=3, ngf=8, ndf=8,
        depth=6, eval_side=96, demo_steps=8, num_workers=0, ev_examples=96, ev_epochs=20,
    ),
    "standard": Budget(
        name="standard", image_size=128, batch_size=8, epochs=3, steps_per_epoch=30, ngf=16, ndf=16,
        depth=7, eval_side=256, demo_steps=120, num_workers=0, ev_examples=512, ev_epochs=40,
    ),
    "full": Budget(
        name="full", image_size=256, batch_size=64, epochs=150, steps_per_epoch=None, ngf=64, ndf=64,
        depth=8, eval_side=512, demo_steps=3000, num_workers=4, ev_examples=4096, ev_epochs=100,
    ),
}


def get_budget(name: Optional[str] = None) -> Budget:
    """Return the budget called ``name``, or the one named by ``$EXPOLIB_BUDGET`` (default ``standard``).

    An unknown name raises ``ValueError`` listing the valid ones.
    """
    chosen = name if name is not None else os.environ.get(ENV_VAR, DEFAULT_BUDGET)
    key = chosen.strip().lower()
    if key not in BUDGETS:
        valid = ", ".join(BUDGETS)
        source = "argument" if name is not None else f"environment variable {ENV_VAR}"
        raise ValueError(f"unknown budget {chosen!r} (from the {source}); valid budgets: {valid}")
    return BUDGETS[key]


def with_overrides(budget: Budget, **changes: object) -> Budget:
    """Return a copy of ``budget`` with some fields changed (for experiments in a chapter)."""
    return replace(budget, **changes)


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def pick_device(prefer: Optional[str] = None) -> torch.device:
    """Pick where tensors go: CUDA if present, then Apple's MPS, then the CPU.

    ``prefer`` (``"cuda"``, ``"cuda:1"``, ``"mps"`` or ``"cpu"``) forces a choice; asking for a device
    that this machine does not have is an error rather than a silent fallback.
    """
    if prefer is not None:
        device = torch.device(prefer)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"device {prefer!r} was asked for, but CUDA is not available here")
        if device.type == "mps" and not _mps_available():
            raise RuntimeError(f"device {prefer!r} was asked for, but Apple MPS is not available here")
        if device.type not in ("cuda", "mps", "cpu"):
            raise ValueError(f"unsupported device {prefer!r}; use cuda, mps or cpu")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if _mps_available():
        return torch.device("mps")
    return torch.device("cpu")


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes in bfloat16 natively (a CPU without it emulates bf16, very slowly)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        try:
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):  # the check is internal to PyTorch; be safe
            return False
    return False


@dataclass(frozen=True)
class Runtime:
    """How a run computes, with every "auto" decided: made by :func:`decide_runtime`, once per run."""

    device: torch.device
    autocast: Optional[torch.dtype] = None  # dtype of the forward passes under autocast; None: float32
    grad_scaling: bool = False  # scale the loss so that float16's small gradients do not underflow
    channels_last: bool = False  # images and weights in (B, H, W, C) memory order
    gemm_convolutions: bool = False  # small transposed convolutions as matrix products
    compile: bool = False  # the networks go through torch.compile

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format

    def autocast_context(self) -> contextlib.AbstractContextManager:
        """Mixed precision for forward passes when it is on, else nothing."""
        if self.autocast is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast)

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """A batch on the device, in the networks' memory format."""
        images = images.to(self.device, non_blocking=True)
        return images.contiguous(memory_format=self.memory_format)

    @property
    def precision(self) -> str:
        """The arithmetic of the forward passes, in words: ``"float32"``, ``"bfloat16 autocast"`` or
        ``"float16 autocast with loss scaling"``."""
        if self.autocast is None:
            return "float32"
        name = str(self.autocast).removeprefix("torch.")
        return f"{name} autocast" + (" with loss scaling" if self.grad_scaling else "")

    def describe(self) -> str:
        """One line for a reader: the precision and the device, then what else is switched on."""
        switches = (("channels-last", self.channels_last), ("compiled", self.compile),
                    ("transposed convolutions as matrix products", self.gemm_convolutions))
        extras = [name for name, on in switches if on]
        return f"{self.precision} on {self.device}" + (f" ({', '.join(extras)})" if extras else "")


def compile_problem(device: torch.device) -> Optional[str]:
    """Why ``torch.compile`` cannot work on ``device`` here, or None when nothing stands in its way:
    TorchDynamo must support this Python, and TorchInductor needs Triton for a GPU and a C++ compiler
    for the CPU. Without this check a missing compiler surfaces as a long traceback at the first
    training step. The checks are PyTorch's own (internal) ones; where they cannot be reached, None."""
    try:
        import torch._dynamo

        if not torch._dynamo.is_dynamo_supported():
            return "torch.compile does not support this Python"
        if device.type == "cuda":
            from torch.utils._triton import has_triton

            if not has_triton():
                return "TorchInductor needs Triton for a GPU and it is missing (pip install triton)"
        elif device.type == "cpu":
            from torch._inductor.cpp_builder import get_cpp_compiler

            try:
                get_cpp_compiler()
            except RuntimeError as error:  # torch._inductor.exc.InvalidCxxCompiler
                return f"TorchInductor needs a C++ compiler for the CPU ({error}; install g++ or set CXX)"
    except (ImportError, AttributeError):  # internal to PyTorch and moved: let torch.compile try
        return None
    return None


def _run_device(prefer: Optional[str]) -> torch.device:
    """:func:`pick_device`, except that each process of a ``torchrun`` job takes its own GPU
    (``cuda:LOCAL_RANK``) unless a numbered one was asked for."""
    device = pick_device(prefer)
    if device.type == "cuda" and device.index is None and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def decide_runtime(device: Optional[str] = None, amp: Optional[bool] = None,
                   channels_last: Optional[bool] = None, gemm_convolutions: Optional[bool] = None,
                   compile: bool = False) -> Runtime:
    """Decide how a run computes; None means "choose for the device".

    - ``device``: :func:`pick_device` (under ``torchrun``, each process its own GPU).
    - ``amp``: auto is on for CUDA, and for CPUs that compute bfloat16 natively (AVX512-BF16, AMX:
      standard-budget runs in bf16 ended within 0.2 dB of validation PSNR of the same runs in float32,
      measured with emulated bf16, which computes the same numbers slowly);
      CUDA uses bfloat16 where the GPU supports it (float32's range: no loss scaling), else float16
      with loss scaling. A CPU without native bf16 would emulate it, several times slower than
      float32, so auto keeps float32 there; ``amp=True`` forces bf16 anyway. Apple's MPS: float32.
    - ``channels_last``: auto is on for CUDA, whose convolution kernels want that memory order.
    - ``gemm_convolutions``: auto is on for the CPU, where
      :class:`expolib.networks.layers.GemmConvTranspose2d` is faster.
    - ``compile``: off unless asked for; asked for where it cannot work (:func:`compile_problem`),
      it warns and the networks run uncompiled, which computes the same step.
    """
    where = _run_device(device)
    auto_amp = where.type == "cuda" or (where.type == "cpu" and native_bf16(where))
    dtype: Optional[torch.dtype] = None
    if amp if amp is not None else auto_amp:
        if where.type == "cuda":
            dtype = torch.bfloat16 if native_bf16(where) else torch.float16
        elif where.type == "cpu":
            if not native_bf16(where):
                warnings.warn("this CPU has no native bfloat16: amp=True will be slower than float32",
                              stacklevel=2)
            dtype = torch.bfloat16
        else:
            raise ValueError(f"mixed precision (amp=True) is supported on CUDA and CPU, not on {where.type}")
    return Runtime(
        device=where, autocast=dtype, grad_scaling=dtype == torch.float16,
        channels_last=channels_last if channels_last is not None else where.type == "cuda",
        gemm_convolutions=gemm_convolutions if gemm_convolutions is not None else where.type == "cpu",
        compile=bool(compile) and _compiles(where),
    )


def _compiles(device: torch.device) -> bool:
    """Whether ``torch.compile`` can work on ``device``; a warning says why not."""
    problem = compile_problem(device)
    if problem is not None:
        warnings.warn(f"compile=True: {problem}; the networks run uncompiled", stacklevel=3)
    return problem is None


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and PyTorch (all devices) so that a run can be repeated."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
