"""The numerical core under bfloat16 autocast, as a CPU with native bf16 runs it by default.

On a processor with AVX512-BF16 or AMX, auto precision (``TrainConfig(amp=None)``) is bf16 autocast
(:func:`expolib.config.decide_runtime`). Here ``native_bf16`` is made to say so, and PyTorch emulates
bf16 where the CPU lacks it: the same roundings, slower, so the networks are tiny. The step, exact
resume, the rendering of training pairs and the corrector all run under bf16 here, whatever machine
the tests run on. And a run says its precision in words, as every chapter that trains prints it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from skimage import data
from test_train import TinyPairs, assert_same_state, tiny_config, tiny_model, tiny_trainer
from torch.utils.data import default_collate

from expolib import config
from expolib.data.rendered import EmbeddedPairs
from expolib.evaluation.infer import correct, run_network
from expolib.evaluation.metrics import psnr
from expolib.imaging.camera import DEFAULT_FAMILY
from expolib.imaging.exposure import render_exposure
from expolib.imaging.render import P
from expolib.imaging.transforms import to_tensor01
from expolib.training.checkpoint import SeededItems, load_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread", "bf16_cpu")

BF16 = config.Runtime(torch.device("cpu"), autocast=torch.bfloat16)
# bf16 keeps 8 significant bits (relative rounding 2**-9, about 0.2%): a loss, a mean over many
# rounded products, lands well within 1% of its float32 value
LOSS_RTOL = 1e-2


@pytest.fixture
def bf16_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """Auto precision as on a CPU that computes bf16 natively: bf16 autocast, no warning."""
    monkeypatch.setattr(config, "native_bf16", lambda device: device.type == "cpu")
    assert config.decide_runtime("cpu").autocast == torch.bfloat16


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    """Four smooth 32x32 pairs, the input a darker copy of the target."""
    coarse = torch.rand(4, 3, 4, 4, generator=torch.Generator().manual_seed(0)) * 2 - 1
    target = torch.nn.functional.interpolate(coarse, size=(32, 32), mode="bilinear")
    return (0.5 * target - 0.3).clamp(-1, 1), target


def _parameters(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


@pytest.mark.parametrize("gemm", [True, False])
def test_a_bf16_step_is_finite_moves_the_weights_and_follows_the_fp32_step(tmp_path: Path,
                                                                             gemm: bool) -> None:
    x, y = _batch()
    runs = {}
    for amp in (None, False):  # auto precision (bf16 here), then float32 stated
        torch.manual_seed(0)
        model = tiny_model(tiny_config(tmp_path, amp=amp, gemm_convolutions=gemm))
        before = _parameters(model.generator)
        torch.manual_seed(1)  # the same dropout masks
        losses = model.train_step(x, y)
        runs[amp] = (model, losses, _parameters(model.generator) - before)
    (bf16, losses, moved), (fp32, reference, moved_fp32) = runs[None], runs[False]
    assert bf16.runtime.autocast == torch.bfloat16 and fp32.runtime.autocast is None
    for name, value in losses.items():
        assert torch.isfinite(value) and value.dtype == torch.float32, name
        assert value.item() == pytest.approx(reference[name].item(), rel=LOSS_RTOL), name
    assert all(torch.isfinite(_parameters(net)).all() for net in (bf16.generator, bf16.discriminator))
    # Adam's first step moves every weight by at most the learning rate, along the sign of its
    # gradient: bf16 moves the generator's weights as float32 does, up to a few gradients near zero
    lr = bf16.config.lr
    assert moved.abs().max() <= lr * 1.001 and moved.abs().mean() > 0.5 * lr
    assert torch.nn.functional.cosine_similarity(moved, moved_fp32, dim=0) > 0.9


def test_an_unchecked_bf16_step_skips_a_poisoned_update(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = tiny_model(tiny_config(tmp_path))
    x, y = _batch()
    before = _parameters(model.generator), _parameters(model.discriminator)
    model.train_step(torch.full_like(x, float("nan")), y, check=False)
    assert not torch.isfinite(model.last_totals).all()
    assert torch.equal(_parameters(model.generator), before[0])
    assert torch.equal(_parameters(model.discriminator), before[1])


def test_an_interrupted_bf16_run_resumes_to_the_same_weights(tmp_path: Path) -> None:
    straight = tiny_trainer(tiny_config(tmp_path / "a"), TinyPairs())
    straight.fit()
    assert straight.model.runtime.autocast == torch.bfloat16
    first = tiny_trainer(tiny_config(tmp_path / "b"), TinyPairs())
    first.fit(max_steps=4)  # stops inside the second epoch
    assert load_checkpoint(first.last_path)["global_step"] == 4
    resumed = tiny_trainer(tiny_config(tmp_path / "b"), TinyPairs())
    resumed.fit(resume=True)
    assert_same_state(straight, resumed)


def test_training_pairs_render_the_same_under_bf16_autocast() -> None:
    # rendering is float32 arithmetic on lookup tables, noise and JPEG: an autocast around it (the
    # trainer's, on a GPU) must not lower its precision
    source = EmbeddedPairs("train", size=32, camera=DEFAULT_FAMILY, crops_per_photo=1)
    items = SeededItems(source, seed=7)
    source.deferred = True
    batch = default_collate([items[(0, 0, i)] for i in range(8)])
    source.deferred = False
    params = batch["params"]
    assert (params[:, P["jpeg_quality"]] > 0).any() and (params[:, P["ev"]] != 0).any()
    x, y = source.render_batch(batch, "cpu")
    with BF16.autocast_context():
        xb, yb = source.render_batch(batch, "cpu")
    assert xb.dtype == yb.dtype == torch.float32
    assert torch.equal(xb, x) and torch.equal(yb, y)


def test_the_corrector_under_bf16_gives_what_it_gives_in_float32(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = tiny_model(tiny_config(tmp_path))
    generator = model.generator.eval()
    photo = render_exposure(np.ascontiguousarray(data.chelsea()[::4, ::4]), -1.0)  # 75 x 113
    with BF16.autocast_context():
        raw = run_network(generator, to_tensor01(photo).unsqueeze(0))
        guided, direct = correct(generator, photo, working_side=48), correct(generator, photo, mode="direct")
    assert torch.isfinite(raw).all()
    for mode, out in (("guided", guided), ("direct", direct)):
        reference = correct(generator, photo, mode=mode, working_side=48)
        assert out.shape == photo.shape and out.dtype == np.uint8
        # the network's output rounded to bf16 moves a pixel by at most a code value or two
        assert np.abs(out.astype(int) - reference).max() <= 3 and psnr(out, reference) > 45, mode
    # what validation runs: Pix2Pix.correct, under the runtime's own autocast
    x, _ = _batch()
    with torch.no_grad():
        reference = generator(x)
    out = model.correct(x)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()
    assert (out - reference).abs().max() < 0.05  # [-1, 1] units: a few bf16 roundings of a tanh output


def test_a_runtime_says_its_precision_in_words() -> None:
    cpu = torch.device("cpu")
    assert config.decide_runtime("cpu").describe().startswith("bfloat16 autocast on cpu")
    assert config.decide_runtime("cpu", amp=False).describe() == (
        "float32 on cpu (transposed convolutions as matrix products)")
    older_gpu = config.Runtime(torch.device("cuda"), autocast=torch.float16, grad_scaling=True,
                               channels_last=True)
    assert older_gpu.describe() == "float16 autocast with loss scaling on cuda (channels-last)"
    assert config.Runtime(cpu).precision == "float32"


@pytest.mark.parametrize("chapter", ["02_augmentation", "03_unet_generator", "04_patchgan_discriminator",
                                     "05_losses", "06_training", "07_evaluation"])
def test_every_chapter_that_trains_prints_its_precision(chapter: str) -> None:
    notebook = json.loads((Path(__file__).resolve().parents[1] / "book" / f"{chapter}.ipynb").read_text())
    code = ["".join(cell["source"]) for cell in notebook["cells"] if cell["cell_type"] == "code"]
    assert any('print(f"Precision: {' in source and ".describe()}" in source for source in code)
