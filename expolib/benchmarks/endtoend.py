"""``bench --end-to-end``: does training run at the speed of its step?

:func:`bench_end_to_end` times :meth:`expolib.training.trainer.Trainer.fit` over a fixed number of steps (data
loading, rendering, the step, logging; no validation or checkpoint inside the timed epoch) next to the
bare training step on the same device, and reports their ratio, for two sources:

- ``embedded``: the shipped photos, rendered by the camera family with rescaled crops (the recipe of
  the shipped model), on the training device (:mod:`expolib.imaging.render`);
- ``msec``: a folder of JPEGs in MSEC's layout that :func:`write_msec_folder` generates from the shipped
  photos (five exposures per scene), read as :class:`expolib.data.msec.MSECPairs` reads MSEC.

:func:`plain_step` is pix2pix's step with nothing around it (no divergence guard, no logging), the
yardstick for the trainer's own step.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch
from PIL import Image

from expolib.benchmarks.timing import Out, best_time, say
from expolib.benchmarks.trainstep import BenchNetwork, random_pairs
from expolib.config import seed_everything
from expolib.networks.patchgan import PatchConfig
from expolib.networks.unet import UNetConfig
from expolib.training.config import TrainConfig
from expolib.training.datasets import Source, training_sets
from expolib.training.losses import discriminator_loss, generator_loss
from expolib.training.pix2pix import Pix2Pix, build_pix2pix, prepare_pix2pix

SOURCES = ("embedded", "msec")


def write_msec_folder(root: Path, scenes: int = 24, side: int = 512, seed: int = 0) -> Path:
    """A training set in MSEC's layout under ``root``: ``scenes`` ground truths (crops of the shipped
    training photos, long side ``side``) as ``training/GT_IMAGES/<scene>.jpg`` and their five
    renderings as ``training/INPUT_IMAGES/<scene>_<token>.JPG`` (JPEG quality 90; the tokens of
    :data:`expolib.data.msec.MSEC_EV_TOKENS`)."""
    from expolib.data.msec import MSEC_EV_TOKENS
    from expolib.data.photos import embedded_photos, load_embedded_photo
    from expolib.imaging.exposure import render_exposure

    photos = [name for _scene, name in embedded_photos("train")]
    generator = torch.Generator().manual_seed(seed)
    gt_dir, in_dir = root / "training" / "GT_IMAGES", root / "training" / "INPUT_IMAGES"
    gt_dir.mkdir(parents=True, exist_ok=True)
    in_dir.mkdir(parents=True, exist_ok=True)
    for index in range(scenes):
        image = Image.fromarray(load_embedded_photo(photos[index % len(photos)]))
        w, h = image.size
        keep = 0.6 + 0.4 * float(torch.rand((), generator=generator))  # a different view of each scene
        cw, ch = int(w * keep), int(h * keep)
        left = int(torch.randint(0, w - cw + 1, (1,), generator=generator))
        top = int(torch.randint(0, h - ch + 1, (1,), generator=generator))
        view = image.crop((left, top, left + cw, top + ch))
        scale = side / max(view.size)
        view = view.resize((max(1, round(cw * scale)), max(1, round(ch * scale))), Image.Resampling.LANCZOS)
        name = f"scene{index:04d}"
        view.save(gt_dir / f"{name}.jpg", quality=90)
        for token, ev in MSEC_EV_TOKENS.items():
            rendered = render_exposure(np.asarray(view), ev)
            Image.fromarray(rendered).save(in_dir / f"{name}_{token}.JPG", quality=90)
    return root


def plain_step(model: Pix2Pix) -> Callable[[torch.Tensor, torch.Tensor], None]:
    """pix2pix's training step on ``model``'s networks and optimisers, and nothing else: no check of
    the losses, no saved statistics, no logging. The trainer's step is measured against it."""

    def step(x: torch.Tensor, y: torch.Tensor) -> None:
        model.discriminator.requires_grad_(True)
        model.opt_d.zero_grad(set_to_none=True)
        with model.autocast():
            fake = model.generator(x)
            real_logits, fake_logits = model.discriminator(x, y), model.discriminator(x, fake.detach())
        discriminator_loss(real_logits.float(), fake_logits.float(), model.adversarial).total.backward()
        model.opt_d.step()
        model.discriminator.requires_grad_(False)
        model.opt_g.zero_grad(set_to_none=True)
        with model.autocast():
            logits = model.discriminator(x, fake)
        generator_loss(logits.float(), fake.float(), y, model.adversarial,
                       model.config.lambda_l1).total.backward()
        model.opt_g.step()

    return step


def _config(net: BenchNetwork, batch: int, device: torch.device, precision: str,
            **changes: Any) -> TrainConfig:
    return TrainConfig(batch_size=batch, image_size=net.image_size,
                       generator=UNetConfig(ngf=net.ngf, depth=net.depth),
                       discriminator=PatchConfig(ndf=net.ndf), amp=precision == "bf16", device=str(device),
                       progress=False, **changes)


def bare_steps(net: BenchNetwork, batch: int, device: torch.device, precision: str = "fp32",
               repeats: int = 5) -> dict[str, float]:
    """Images/s of the trainer's step (``train_step(check=False)``) and of :func:`plain_step`, on
    batches already on the device, best of ``repeats`` after a warm-up."""
    seed_everything(0)
    config = _config(net, batch, device, precision)
    model = build_pix2pix(config, config.runtime())
    x, y = random_pairs(batch, net.image_size, device)
    plain = plain_step(model)
    rates: dict[str, float] = {}
    for name, fn in (("trainer_step", lambda: model.train_step(x, y, check=False)),
                     ("plain_step", lambda: plain(x, y)), ("checked_step", lambda: model.train_step(x, y))):
        fn()
        fn()
        best, _ = best_time(fn, device, repeats)
        rates[name] = batch / best
    return rates


def _source(name: str, net: BenchNetwork, folder: Path, msec_side: int) -> Any:
    """The training set of source ``name`` as a run builds it; the embedded photos with the shipped
    model's recipe (the camera family, crops of photos shrunk by up to 1.5)."""
    config = TrainConfig(image_size=net.image_size, camera="random", crop_scale=1.5)
    if name == "embedded":
        source = Source()
    else:
        source = Source.msec(write_msec_folder(folder / "msec", side=msec_side))
    return training_sets(config, source, validation=False)[0]


def trainer_rate(train_set: Any, net: BenchNetwork, batch: int, device: torch.device, steps: int,
                 precision: str, num_workers: int, out_dir: Path, **changes: Any) -> float:
    """Images/s of ``Trainer.fit`` in its second epoch of ``steps`` steps (the first warms up the
    loader, the kernels and the allocator); no validation, no checkpoint inside the timed epoch."""
    from expolib.training.trainer import Trainer

    config = _config(net, batch, device, precision, epochs=2, steps_per_epoch=steps, seed=0,
                     checkpoint_minutes=0.0, num_workers=num_workers, out_dir=str(out_dir), **changes)
    trainer = Trainer(config, prepare_pix2pix(config), train_set, report=lambda line: None)
    history = trainer.fit()
    return float(history.epochs[1]["images_per_second"])


def bench_end_to_end(device: str = "cpu", net: Optional[BenchNetwork] = None, batch: int = 8,
                     steps: int = 20, precision: str = "fp32", num_workers: int = 0,
                     sources: tuple[str, ...] = SOURCES, msec_side: int = 512, compile_too: bool = False,
                     out: Out = None) -> dict[str, Any]:
    """End-to-end images/s of ``Trainer.fit`` for each source next to the bare step, and their ratio.
    ``compile_too`` also times ``--compile on`` (its warm-up, the first epoch, is reported)."""
    from expolib.config import get_budget

    if net is None:
        b = get_budget("standard")
        net = BenchNetwork("book", b.ngf, b.ndf, b.depth, b.image_size)
    dev = torch.device(device)
    bare = bare_steps(net, batch, dev, precision)
    result: dict[str, Any] = {"device": device, "network": net.name, "batch": batch, "steps": steps, **bare,
                              "sources": {}}
    say(out, f"end to end on {device}: {net.name} ({net.image_size}px, ngf {net.ngf}, depth {net.depth}), "
         f"batch {batch}, {precision}, {num_workers} DataLoader worker(s), {steps} timed steps")
    say(out, f"bare step (trainer's, no host sync): {bare['trainer_step']:.1f} images/s; plain pix2pix step "
         f"{bare['plain_step']:.1f} ({bare['trainer_step'] / bare['plain_step']:.0%}); step with a host "
         f"check {bare['checked_step']:.1f}")
    say(out, f"{'source':<10}{'images/s':>10}{'of bare step':>14}")
    with tempfile.TemporaryDirectory(prefix="expolib-e2e-") as tmp:
        for name in sources:
            train_set = _source(name, net, Path(tmp), msec_side)
            rate = trainer_rate(train_set, net, batch, dev, steps, precision, num_workers, Path(tmp) / name)
            result["sources"][name] = {"images_per_second": rate, "ratio": rate / bare["trainer_step"]}
            say(out, f"{name:<10}{rate:>10.1f}{rate / bare['trainer_step']:>14.0%}")
        if compile_too:
            import time

            start = time.perf_counter()
            rate = trainer_rate(_source("embedded", net, Path(tmp), msec_side), net, batch, dev, steps,
                                precision, num_workers, Path(tmp) / "compiled", compile=True)
            result["compiled"] = {"images_per_second": rate, "total_seconds": time.perf_counter() - start}
            say(out, f"--compile on (embedded): {rate:.1f} images/s after warm-up; the whole run took "
                 f"{result['compiled']['total_seconds']:.0f} s including compilation")
    return result


__all__ = ["SOURCES", "bare_steps", "bench_end_to_end", "plain_step", "trainer_rate", "write_msec_folder"]
