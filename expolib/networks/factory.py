"""The one place that decides which networks are built: a config in, a network out.

Every part of the library builds its networks here: training, the book's experiments, and a generator
read back from a file or a checkpoint. A config's type names its architecture:

- :data:`GENERATORS` maps an architecture's name (what a saved generator records) to its config
  dataclass and its module: today ``"unet"``, :class:`~expolib.networks.unet.UNetConfig` and
  :class:`~expolib.networks.unet.UNetGenerator`.
- :data:`DISCRIMINATORS` does the same for the critic: ``"patchgan"``.

To try another generator: write its config dataclass and its ``nn.Module`` (taking the config, keeping
it as ``.config``, mapping a ``(B, 3, H, W)`` image in [-1, 1] to one of the same shape) in a module of
this package, and add one :class:`Architecture` entry to :data:`GENERATORS`. Saving, loading,
exporting and correcting then work unchanged. A config field that changes how a network computes but
not what it is (``UNetConfig.gemm_upsampling``) is marked ``field(metadata={"saved": False})`` and is
left out of saved files.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, is_dataclass
from typing import Any, Callable

from torch import nn

from expolib.config import Budget
from expolib.networks.patchgan import PatchConfig, PatchDiscriminator
from expolib.networks.two_stage import TwoStageConfig, TwoStageGenerator
from expolib.networks.unet import UNetConfig, UNetGenerator


@dataclass(frozen=True)
class Architecture:
    """A network the factory builds: the name saved files record, its config dataclass, its module."""

    name: str
    config: type
    network: Callable[[Any], nn.Module]


GENERATORS: dict[str, Architecture] = {
    "unet": Architecture("unet", UNetConfig, UNetGenerator),  # pix2pix's U-Net (unet_256 by default)
    # a global stage that undoes the exposure error (or leaves the photo alone), then a residual U-Net
    "two_stage": Architecture("two_stage", TwoStageConfig, TwoStageGenerator),
}
DISCRIMINATORS: dict[str, Architecture] = {
    "patchgan": Architecture("patchgan", PatchConfig, PatchDiscriminator),  # the 70x70 PatchGAN
}
DEFAULT_GENERATOR = "unet"  # what a saved generator without an architecture name is


def _architecture_of(config: Any, registry: dict[str, Architecture], role: str) -> Architecture:
    for architecture in registry.values():
        if type(config) is architecture.config:
            return architecture
    known = ", ".join(a.config.__name__ for a in registry.values())
    raise TypeError(f"no {role} is built from a {type(config).__name__}; the factory knows {known}")


def build_generator(config: Any) -> nn.Module:
    """The generator that ``config`` describes (a config dataclass of :data:`GENERATORS`), freshly
    initialised, in train mode. Its ``working_side`` (the side it corrects photos at best) is None
    until a file or checkpoint says otherwise."""
    network = _architecture_of(config, GENERATORS, "generator").network(config)
    if not hasattr(network, "working_side"):
        network.working_side = None
    return network


def build_discriminator(config: Any) -> nn.Module:
    """The discriminator that ``config`` describes (a config dataclass of :data:`DISCRIMINATORS`)."""
    return _architecture_of(config, DISCRIMINATORS, "discriminator").network(config)


def generator_architecture(config: Any) -> str:
    """The name under which a generator built from ``config`` is saved (``"unet"``)."""
    return _architecture_of(config, GENERATORS, "generator").name


def config_to_dict(config: Any) -> dict[str, Any]:
    """The fields of a network's config as plain values, without those marked ``"saved": False``."""
    if not is_dataclass(config) or isinstance(config, type):
        raise TypeError(f"expected a config dataclass instance, got {type(config).__name__}")
    unsaved = {f.name for f in fields(config) if not f.metadata.get("saved", True)}
    return {name: value for name, value in asdict(config).items() if name not in unsaved}


def generator_config_from_dict(values: dict[str, Any], architecture: str = DEFAULT_GENERATOR) -> Any:
    """The config of a saved generator: ``values`` (from :func:`config_to_dict`) for ``architecture``.

    Raises ``ValueError`` for an unknown architecture or unknown fields, and whatever the config's own
    checks raise for bad values."""
    if architecture not in GENERATORS:
        raise ValueError(f"unknown generator architecture {architecture!r}; known: {sorted(GENERATORS)}")
    config_type = GENERATORS[architecture].config
    unknown = sorted(set(values) - {f.name for f in fields(config_type)})
    if unknown:
        raise ValueError(f"unknown {config_type.__name__} fields {unknown}")
    return config_type(**values)


def generator_from_budget(budget: Budget, **overrides: object) -> nn.Module:
    """The generator a budget trains: ``ngf`` and ``depth`` from the budget, pix2pix's U-Net for the
    rest (``overrides``: any :class:`~expolib.networks.unet.UNetConfig` field)."""
    return build_generator(UNetConfig(**{"ngf": budget.ngf, "depth": budget.depth, **overrides}))


def discriminator_from_budget(budget: Budget, **overrides: object) -> nn.Module:
    """The discriminator a budget trains: ``ndf`` from the budget, the 70x70 PatchGAN for the rest."""
    return build_discriminator(PatchConfig(**{"ndf": budget.ndf, **overrides}))


__all__ = ["DEFAULT_GENERATOR", "DISCRIMINATORS", "GENERATORS", "Architecture", "build_discriminator",
           "build_generator", "config_to_dict", "discriminator_from_budget", "generator_architecture",
           "generator_config_from_dict", "generator_from_budget"]
