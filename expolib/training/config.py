"""Every setting of a training run in one dataclass, and the learning-rate schedule it describes.

:class:`TrainConfig` holds the settings (defaults: pix2pix and the design report's full recipe), the
networks' shapes as their own configurations (:class:`UNetConfig`, :class:`PatchConfig`);
:meth:`TrainConfig.from_budget` takes sizes and counts from a budget; :meth:`TrainConfig.runtime`
decides how the run computes. :func:`with_network_settings` puts the command line's flat network
options (``ngf``, ``norm``, ...) into the nested configurations. :func:`lr_factor` is the schedule:
constant, then a linear decay to 0, as in pix2pix.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Optional

from expolib.config import Budget, Runtime, decide_runtime, get_budget
from expolib.networks.patchgan import PatchConfig
from expolib.networks.unet import UNetConfig
from expolib.training.losses import GAN_MODES, LAMBDA_L1

LR_POLICIES = ("linear", "constant")
RENDER_ON = ("device", "loader")  # where rendered sources render their pairs (expolib.imaging.render)
# how rendered sources make inputs: one camera, or expolib.imaging.camera's family
CAMERAS = ("plain", "random")
# the command line's network options, and the nested configurations each one sets (norm: both)
NETWORK_SETTINGS = {"ngf": ("generator",), "ndf": ("discriminator",), "depth": ("generator",),
                    "n_layers": ("discriminator",), "norm": ("generator", "discriminator"),
                    "upsample": ("generator",), "residual": ("generator",)}


@dataclass
class TrainConfig:
    """Every setting of a training run. The defaults are pix2pix's, with the design report's recipe
    (256x256 crops, batch 64, 150 epochs); :meth:`from_budget` scales them to a budget. The networks'
    shapes are ``generator`` (:class:`UNetConfig`; its ``gemm_upsampling`` is the runtime's to decide)
    and ``discriminator`` (:class:`PatchConfig`).

    ``lr_policy="linear"`` keeps the learning rate for ``epochs - decay_epochs`` epochs and then lowers
    it linearly towards 0 over the last ``decay_epochs`` (default: half of the epochs), as pix2pix does;
    ``"constant"`` never changes it. ``None`` for ``device``, ``amp``, ``channels_last`` or
    ``gemm_convolutions`` means "choose for the device": CUDA gets mixed precision (bf16 where
    supported, else fp16 with loss scaling) and channels-last tensors; the CPU gets bf16 autocast where
    it computes bf16 natively, else plain fp32, and :class:`GemmConvTranspose2d` for small maps
    (:meth:`runtime`, through :func:`expolib.config.decide_runtime`).

    Checkpoints and validation run on a schedule: ``last.pt`` at the end of the run, when it is stopped
    or fails, every ``checkpoint_every`` steps and whenever ``checkpoint_minutes`` have passed since the
    last save (checked at log points and epoch ends); validation at the end of an epoch, at most every
    ``validate_every`` steps and ``validate_minutes`` minutes, and always at the end of the last epoch.

    ``render_on``: sources that render their pairs (:mod:`expolib.imaging.render`) do it on the training
    device, a batch at a time (``"device"``), or item by item in the DataLoader (``"loader"``). Auto
    (None): the device, except on a CPU with DataLoader workers, where workers render in parallel.
    """

    epochs: int = 150
    batch_size: int = 64
    image_size: int = 256
    lr: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    lambda_l1: float = LAMBDA_L1
    gan_mode: str = "vanilla"  # "vanilla" (BCE on logits, pix2pix) or "lsgan" (least squares)
    generator: UNetConfig = field(default_factory=UNetConfig)  # pix2pix's unet_256
    discriminator: PatchConfig = field(default_factory=PatchConfig)  # pix2pix's 70x70 PatchGAN
    camera: str = "plain"  # rendered sources: "plain" (the book's camera) or "random" (a camera family)
    crop_scale: Optional[float] = None  # crops from photos shrunk to short side size * U[1, crop_scale]
    lr_policy: str = "linear"  # "linear" (constant, then linear decay to 0) or "constant"
    decay_epochs: Optional[int] = None  # epochs of linear decay at the end; None: half of them
    steps_per_epoch: Optional[int] = None  # cap on batches per epoch; None: the whole dataset
    val_batches: Optional[int] = None  # cap on validation batches per epoch; None: all of them
    checkpoint_every: int = 0  # also save last.pt every this many steps (0: not by steps)
    checkpoint_minutes: float = 5.0  # also save last.pt when this many minutes passed since the last save
    validate_every: Optional[int] = None  # validate at an epoch's end after >= this many steps (None: each)
    validate_minutes: float = 0.0  # ... and only when this many minutes passed since the last validation
    seed: int = 0
    out_dir: str = "runs/pix2pix"
    device: Optional[str] = None
    amp: Optional[bool] = None
    channels_last: Optional[bool] = None
    gemm_convolutions: Optional[bool] = None  # small transposed convs as matrix products (auto: on the CPU)
    compile: bool = False
    num_workers: int = 0
    render_on: Optional[str] = None  # rendered sources: "device" (batches) or "loader" (items); None: auto
    progress: bool = True

    def __post_init__(self) -> None:
        self.betas = (float(self.betas[0]), float(self.betas[1]))
        if not (isinstance(self.generator, UNetConfig) and isinstance(self.discriminator, PatchConfig)):
            raise TypeError("TrainConfig.generator must be a UNetConfig and .discriminator a PatchConfig")
        positive = {"epochs": self.epochs, "batch_size": self.batch_size, "image_size": self.image_size}
        bad = [f"{name}={value}" for name, value in positive.items() if value < 1]
        if bad:
            raise ValueError(f"TrainConfig: these must be at least 1: {', '.join(bad)}")
        if not self.lr > 0:
            raise ValueError(f"TrainConfig.lr must be positive, got {self.lr}")
        if self.gan_mode not in GAN_MODES:
            raise ValueError(f"TrainConfig.gan_mode {self.gan_mode!r} is not one of {GAN_MODES}")
        if self.lr_policy not in LR_POLICIES:
            raise ValueError(f"TrainConfig.lr_policy {self.lr_policy!r} is not one of {LR_POLICIES}")
        if self.camera not in CAMERAS:
            raise ValueError(f"TrainConfig.camera {self.camera!r} is not one of {CAMERAS}")
        if self.crop_scale is not None and self.crop_scale < 1.0:
            raise ValueError(f"TrainConfig.crop_scale must be at least 1 (or None), got {self.crop_scale}")
        if self.decay_epochs is not None and not 0 <= self.decay_epochs <= self.epochs:
            raise ValueError(
                f"TrainConfig.decay_epochs must be in [0, epochs={self.epochs}], got {self.decay_epochs}"
            )
        for name in ("steps_per_epoch", "val_batches"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"TrainConfig.{name} must be at least 1 (or None), got {value}")
        if min(self.checkpoint_every, self.num_workers, self.checkpoint_minutes, self.validate_minutes) < 0:
            raise ValueError("TrainConfig.checkpoint_every, checkpoint_minutes, validate_minutes and "
                             "num_workers must be >= 0")
        if self.render_on not in (None, *RENDER_ON):
            raise ValueError(f"TrainConfig.render_on must be one of {RENDER_ON} (or None), "
                             f"got {self.render_on!r}")
        if self.validate_every is not None and self.validate_every < 1:
            raise ValueError(f"TrainConfig.validate_every must be at least 1 (or None), "
                             f"got {self.validate_every}")

    @classmethod
    def from_budget(cls, budget: Optional[Budget] = None, **overrides: Any) -> TrainConfig:
        """Sizes and counts from ``budget`` (default: :func:`expolib.config.get_budget`), the networks'
        widths and depth included, then ``overrides`` (any field)."""
        budget = budget if budget is not None else get_budget()
        values: dict[str, Any] = {
            "epochs": budget.epochs, "batch_size": budget.batch_size, "image_size": budget.image_size,
            "generator": UNetConfig(ngf=budget.ngf, depth=budget.depth),
            "discriminator": PatchConfig(ndf=budget.ndf),
            "steps_per_epoch": budget.steps_per_epoch, "num_workers": budget.num_workers,
        }
        values.update(overrides)
        return cls(**values)

    def runtime(self) -> Runtime:
        """How this run computes: :func:`expolib.config.decide_runtime` on ``device``, ``amp``,
        ``channels_last``, ``gemm_convolutions`` and ``compile``. Decide it once per run and hand it on."""
        return decide_runtime(self.device, self.amp, self.channels_last, self.gemm_convolutions, self.compile)

    def to_dict(self) -> dict[str, Any]:
        """Plain values only (the betas as a list, the networks' configurations as dicts), for JSON and
        checkpoints."""
        values = asdict(self)
        values["betas"] = list(self.betas)
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """The inverse of :meth:`to_dict`; also reads the flat network fields (``ngf``, ``norm``, ...)
        of older checkpoints. Unknown keys are ignored."""
        known = {f.name for f in fields(cls)}
        nets = {"generator": UNetConfig, "discriminator": PatchConfig}
        kwargs = {k: v for k, v in values.items() if k in known and k not in nets}
        for name, kind in nets.items():
            given = values.get(name) or {}
            names = {f.name for f in fields(kind)}
            kwargs[name] = kind(**{k: v for k, v in given.items() if k in names})
        config = cls(**kwargs)
        flat = {k: v for k, v in values.items() if k in NETWORK_SETTINGS}
        return with_network_settings(config, **flat) if flat else config


def with_network_settings(config: TrainConfig, **settings: Any) -> TrainConfig:
    """``config`` with flat network settings (the command line's ``ngf``, ``ndf``, ``depth``,
    ``n_layers``, ``norm``, ``upsample``, ``residual``) put into its nested configurations; ``norm``
    sets both networks'."""
    unknown = sorted(set(settings) - set(NETWORK_SETTINGS))
    if unknown:
        raise ValueError(f"unknown network settings {unknown}; known: {sorted(NETWORK_SETTINGS)}")
    changes: dict[str, Any] = {}
    for part in ("generator", "discriminator"):
        mine = {k: v for k, v in settings.items() if part in NETWORK_SETTINGS[k]}
        if mine:
            changes[part] = dataclasses.replace(getattr(config, part), **mine)
    return dataclasses.replace(config, **changes)


def lr_factor(config: TrainConfig, epoch: int) -> float:
    """Multiplier of the base learning rate during ``epoch`` (0-based), pix2pix's "linear" policy:
    1 for the first ``epochs - decay`` epochs, then ``1 - k / (decay + 1)`` in the k-th decay epoch."""
    if config.lr_policy == "constant":
        return 1.0
    decay = config.decay_epochs if config.decay_epochs is not None else config.epochs // 2
    return 1.0 - max(0, epoch + 1 - (config.epochs - decay)) / float(decay + 1)


__all__ = ["CAMERAS", "LR_POLICIES", "NETWORK_SETTINGS", "RENDER_ON", "TrainConfig", "lr_factor",
           "with_network_settings"]
