"""The branches a GPU takes, run on the CPU: each falls back cleanly, and its fallback (or the same
code on the CPU) gives what the reference path gives.

- nvJPEG for the JPEG round trip of training inputs (:func:`expolib.imaging.camera.jpeg_roundtrip`)
  and for decoding JPEG pairs on the device (:func:`expolib.data.photofiles.decode_jpegs`);
- noise drawn on the device by its own generator (:mod:`expolib.imaging.render`);
- the unchecked step (``train_step(check=False)``), with float16 loss scaling as on older GPUs;
- channels-last tensors; ``torch.compile`` where it cannot work.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.io
from PIL import Image
from test_train import tiny_config

from expolib import config
from expolib.data import photofiles
from expolib.data.photofiles import decode_jpegs, exif_orientation, file_bytes
from expolib.imaging import camera, render
from expolib.imaging.camera import jpeg_roundtrip
from expolib.training.pix2pix import build_pix2pix

pytestmark = pytest.mark.usefixtures("one_thread")


def _smooth_images(n: int = 3, size: int = 40) -> torch.Tensor:
    coarse = torch.rand(n, 3, 5, 5, generator=torch.Generator().manual_seed(0))
    return torch.nn.functional.interpolate(coarse, size=(size, size), mode="bicubic").clamp(0, 1)


def _unavailable(*args: object, **kwargs: object) -> None:
    raise RuntimeError("not compiled with nvJPEG support")


# ----------------------------------------------------------------------------------------------------
# nvJPEG


def test_the_device_jpeg_codec_runs_and_falls_back_to_pillow(monkeypatch: pytest.MonkeyPatch) -> None:
    images, qualities = _smooth_images(), [40, 75, 95]
    pillow = jpeg_roundtrip(images, qualities)  # the CPU's route
    assert (pillow - images).abs().mean() > 1e-3  # a real round trip
    # the device's route (torchvision's codec, nvJPEG on a GPU) taken by the CPU's codec
    monkeypatch.setattr(camera, "DEVICE_CODEC", ("cpu",))
    codec = jpeg_roundtrip(images, qualities)
    assert codec.shape == images.shape and codec.dtype == images.dtype
    assert (codec - pillow).abs().mean() < 2 / 255  # another libjpeg call, the same JPEGs nearly
    # torchvision without a codec for the device: Pillow's result exactly
    monkeypatch.setattr(torchvision.io, "encode_jpeg", _unavailable)
    assert torch.equal(jpeg_roundtrip(images, qualities), pillow)


def _oriented_jpegs(tmp_path: Path) -> list[Path]:
    """One asymmetric photo stored under each of the eight EXIF orientations."""
    pixels = (np.arange(24 * 40 * 3).reshape(24, 40, 3) * 7 % 251).astype(np.uint8)
    pixels[:8, :16] = 255  # a white corner: a wrong turn moves it
    paths = []
    for orientation in range(1, 9):
        image = Image.fromarray(pixels)
        exif = image.getexif()
        exif[0x0112] = orientation
        path = tmp_path / f"o{orientation}.jpg"
        image.save(path, quality=95, exif=exif)
        paths.append(path)
    return paths


def test_jpegs_decoded_on_the_device_are_turned_upright_as_on_the_cpu(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = [file_bytes(p) for p in _oriented_jpegs(tmp_path)]
    assert [exif_orientation(f) for f in files] == list(range(1, 9))
    cpu = decode_jpegs(files, torch.device("cpu"))  # torchvision applies the orientation itself
    for image, path in zip(cpu, _oriented_jpegs(tmp_path)):
        assert tuple(image.shape[1:]) == photofiles.oriented_size(path)
    assert len({tuple(im.flatten()[:50].tolist()) for im in cpu}) == 8  # eight different turns
    # the device's route (decode there, then turn upright), taken by the CPU's decoder
    monkeypatch.setattr(photofiles, "DEVICE_DECODER", ("cpu",))
    device = decode_jpegs(files, torch.device("cpu"))
    assert all(torch.equal(a, b) for a, b in zip(device, cpu))
    # torchvision without nvJPEG: the CPU decodes, the pixels move
    real = torchvision.io.decode_jpeg

    def no_device_decoder(*args: object, **kwargs: object) -> object:
        if "device" in kwargs:
            _unavailable()
        return real(*args, **kwargs)

    monkeypatch.setattr(photofiles, "decode_jpeg", no_device_decoder)
    fallback = decode_jpegs(files, torch.device("cpu"))
    assert all(torch.equal(a, b) for a, b in zip(fallback, cpu))


def test_a_file_without_exif_is_upright_as_stored() -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 4)).save(buffer, format="JPEG")
    assert exif_orientation(torch.frombuffer(bytearray(buffer.getvalue()), dtype=torch.uint8)) == 1
    assert exif_orientation(torch.zeros(10, dtype=torch.uint8)) == 1  # not a JPEG at all


# ----------------------------------------------------------------------------------------------------
# Noise drawn on the device


def test_device_noise_is_each_seeds_own_and_falls_back_to_the_cpus(monkeypatch: pytest.MonkeyPatch) -> None:
    seeds = torch.tensor([3, 11, 3])
    shape = torch.Size((3, 3, 4, 5))
    reference = torch.stack([torch.randn(shape[1:], generator=torch.Generator().manual_seed(int(s)))
                             for s in seeds])
    assert torch.equal(render._noise(shape, seeds, torch.device("cpu")), reference)
    # a device without a generator of its own: PyTorch refuses one, the CPU's numbers are moved there
    meta = render._noise(shape, seeds, torch.device("meta"))
    assert meta.device.type == "meta" and meta.shape == shape
    real = torch.Generator

    def cpu_only(*args: object, **kwargs: object) -> torch.Generator:
        if "device" in kwargs:
            raise RuntimeError("not an accelerator")
        return real(*args)

    monkeypatch.setattr(torch, "Generator", cpu_only)
    assert torch.equal(render._noise(shape, seeds, torch.device("cpu")), reference)


# ----------------------------------------------------------------------------------------------------
# The unchecked step


def _weights(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_the_unchecked_step_trains_as_the_checked_one(tmp_path: Path) -> None:
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    runs = []
    for check in (True, False):
        torch.manual_seed(0)
        cfg = tiny_config(tmp_path, amp=False)
        model = build_pix2pix(cfg, cfg.runtime())
        torch.manual_seed(1)
        for _ in range(2):
            model.train_step(x, x.flip(-1), check=check)
        runs.append((_weights(model.generator), _weights(model.discriminator)))
    assert torch.equal(runs[0][0], runs[1][0]) and torch.equal(runs[0][1], runs[1][1])


def test_the_unchecked_float16_step_leaves_a_poisoned_update_to_the_loss_scaler(tmp_path: Path) -> None:
    # a GPU without bf16 trains in float16 with loss scaling (CPU autocast has float16 too)
    runtime = config.Runtime(torch.device("cpu"), autocast=torch.float16, grad_scaling=True,
                             gemm_convolutions=True)
    torch.manual_seed(0)
    model = build_pix2pix(tiny_config(tmp_path), runtime)
    assert model.scaler.is_enabled()
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    before, scale = _weights(model.generator), model.scaler.get_scale()
    model.train_step(torch.full_like(x, float("nan")), x, check=False)
    assert not torch.isfinite(model.last_totals).all()
    assert torch.equal(_weights(model.generator), before) and model.scaler.get_scale() < scale
    for _ in range(3):  # the scaler backs off until float16 holds the scaled gradients, then steps
        losses = model.train_step(x, x.flip(-1), check=False)
    assert all(torch.isfinite(v) for v in losses.values())
    assert not torch.equal(_weights(model.generator), before)


# ----------------------------------------------------------------------------------------------------
# Channels-last and compilation


def test_a_channels_last_step_is_the_contiguous_step(tmp_path: Path) -> None:
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    results = []
    for channels_last in (False, True):
        torch.manual_seed(0)
        cfg = tiny_config(tmp_path, amp=False, channels_last=channels_last)  # float32: other kernels
        model = build_pix2pix(cfg, cfg.runtime())
        conv = next(m for m in model.generator.modules() if isinstance(m, torch.nn.Conv2d))
        assert conv.weight.is_contiguous(memory_format=torch.channels_last) == channels_last
        torch.manual_seed(1)
        losses = model.train_step(x, x.flip(-1))
        results.append((torch.stack(list(losses.values())), _weights(model.generator)))
    assert torch.allclose(results[0][0], results[1][0], atol=1e-5)
    assert torch.allclose(results[0][1], results[1][1], atol=1e-5)


def test_compile_where_it_cannot_work_warns_and_runs_uncompiled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(config, "compile_problem", lambda device: "no C++ compiler")
    with pytest.warns(UserWarning, match="no C[+][+] compiler; the networks run uncompiled"):
        runtime = config.decide_runtime("cpu", compile=True)
    assert not runtime.compile
    monkeypatch.setattr(config, "compile_problem", lambda device: None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert config.decide_runtime("cpu", compile=True).compile


def test_the_compile_check_names_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch._inductor.config as inductor
    import torch.utils._triton as triton

    monkeypatch.setattr(triton, "has_triton", lambda: False)
    assert "Triton" in (config.compile_problem(torch.device("cuda")) or "")
    monkeypatch.setattr(inductor.cpp, "cxx", ("no-such-compiler++",))
    assert "C++ compiler" in (config.compile_problem(torch.device("cpu")) or "")
