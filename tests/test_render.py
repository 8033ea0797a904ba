"""Pairs rendered in batches on the training device equal the per-item path, item for item."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from torch.utils.data import default_collate

from expolib.data.rendered import EmbeddedPairs
from expolib.imaging.camera import DEFAULT_FAMILY, FILM_CAMERA, HELD_OUT_CAMERA, Camera
from expolib.imaging.exposure import render_exposure
from expolib.imaging.render import P, draw_item, render_pairs
from expolib.imaging.transforms import denormalize
from expolib.training.checkpoint import SeededItems

pytestmark = pytest.mark.usefixtures("one_thread")


def _both_ways(source: EmbeddedPairs, keys: list[Any]) -> tuple[torch.Tensor, ...]:
    """The items of ``keys`` rendered one by one in the loader, and drawn there but rendered as one
    batch afterwards (what the trainer does on its device)."""
    items = SeededItems(source, seed=7)
    source.deferred = False
    one_by_one = [items[key] for key in keys]
    source.deferred = True
    batch = default_collate([items[key] for key in keys])
    source.deferred = False
    x, y = source.render_batch(batch, "cpu")
    return (torch.stack([i["input"] for i in one_by_one]), torch.stack([i["target"] for i in one_by_one]),
            x, y, batch["params"])


@pytest.mark.parametrize("camera", [None, DEFAULT_FAMILY, HELD_OUT_CAMERA, FILM_CAMERA],
                         ids=["plain", "family", "held-out", "film"])
def test_a_batch_rendered_on_the_device_equals_the_items_rendered_one_by_one(camera: Any) -> None:
    source = EmbeddedPairs("train", size=48, camera=camera, scale=(1.0, 1.5), crops_per_photo=2)
    # a stride prime to the number of EVs and crops, so that the batch mixes levels and photos
    keys = [(1, 0, i) for i in range(0, len(source), 7)][:12]
    assert len(keys) == 12
    x1, y1, xb, yb, params = _both_ways(source, keys)
    assert torch.equal(x1, xb) and torch.equal(y1, yb)
    # and the batch really mixes what the items drew (else the test would prove little)
    assert len(set(params[:, P["ev"]].tolist())) > 1
    assert 0 < int(params[:, P["flip"]].sum()) < len(keys)
    if camera is None:
        assert 0 < int(params[:, P["jitter"]].sum())  # input-only colour jitter happened
    if camera is DEFAULT_FAMILY:
        assert (params[:, P["jpeg_quality"]] > 0).any() and (params[:, P["jpeg_quality"]] == 0).any()
        assert (params[:, P["target_ev"]] != 0).any()


def test_the_same_key_draws_the_same_pair_and_another_epoch_another() -> None:
    source = EmbeddedPairs("train", size=48, camera=DEFAULT_FAMILY)
    items = SeededItems(source, seed=1)
    a, b, c = items[(0, 0, 5)], items[(0, 0, 5)], items[(1, 0, 5)]
    assert torch.equal(a["input"], b["input"]) and not torch.equal(a["input"], c["input"])


def test_camera_render_and_the_training_path_are_one_chain() -> None:
    # Camera.render (one photo, as the book shows it) and render_pairs (what training runs, through
    # lookup tables) give the same pair for the same camera, EV and noise seed
    g = torch.Generator().manual_seed(0)
    photo = (torch.rand(3, 40, 40, generator=g) * 255).round().to(torch.uint8)
    image = photo.float() / 255
    noisy = Camera(knee=0.35, white=1.8, gamma=0.9, wb=(0.97, 1.0, 1.04), shot_noise=0.02, read_noise=0.003)
    cases = [(Camera(knee=0.4, white=2.5, gamma=1.1, wb=(1.05, 1.0, 0.95)), -1.3), (noisy, -1.7),
             (HELD_OUT_CAMERA, 1.2), (HELD_OUT_CAMERA, -1.0), (Camera(gamma=1.2), 1.5), (Camera(), 0.0),
             (FILM_CAMERA, -1.5), (FILM_CAMERA, 1.0)]
    for camera, ev in cases:
        params, seed, _ = draw_item(camera, ev, False, None, 0.0, g)  # the numbers training draws
        x, y = render_pairs(photo[None], params[None], torch.tensor([seed]))
        expected = camera.render(image, ev, torch.Generator().manual_seed(seed))
        torch.testing.assert_close(denormalize(x[0]), expected, atol=2e-5, rtol=0)
        assert torch.equal(y[0], image * 2 - 1)
    # the target's own re-exposure is the same camera without drift or noise
    params, seed, _ = draw_item(noisy, -1.2, False, None, 0.0, g)
    params[P["target_ev"]] = 0.3
    x, y = render_pairs(photo[None], params[None], torch.tensor([seed]))
    target = noisy.clean().render(image, 0.3)
    torch.testing.assert_close(denormalize(y[0]), target, atol=2e-5, rtol=0)
    expected = noisy.render(target, -1.2, torch.Generator().manual_seed(seed))
    torch.testing.assert_close(denormalize(x[0]), expected, atol=2e-5, rtol=0)
    # JPEG: the same encoder on (nearly always) the same code values
    camera = Camera(knee=0.6, white=2.2, jpeg_quality=80)
    params, seed, _ = draw_item(camera, 1.1, False, None, 0.0, g)
    x, _ = render_pairs(photo[None], params[None], torch.tensor([seed]))
    assert (denormalize(x[0]) - camera.render(image, 1.1)).abs().mean() < 1e-3
    # and the book's camera with its noise
    params = torch.zeros(1, len(P), dtype=torch.float64)
    params[0, [P["ev"], P["knee"], P["white"], P["gamma"], P["shot_noise"]]] = torch.tensor(
        [-1.0, 0.5, 2.0, 1.0, 0.02], dtype=torch.float64)
    params[0, [P["wb_r"], P["wb_g"], P["wb_b"]]] = 1.0
    x, _ = render_pairs(photo[None], params, torch.tensor([123]))
    expected = render_exposure(image, -1.0, noise=0.02, seed=123)
    assert torch.allclose(denormalize(x[0]), expected, atol=2e-5)


def test_ev_0_pairs_stay_identical_through_the_batch() -> None:
    source = EmbeddedPairs("train", size=32, evs=(0.0,), camera=None)
    source.deferred = True
    batch = default_collate([SeededItems(source, 0)[(0, 0, i)] for i in range(6)])
    params = batch["params"].clone()
    params[:, P["jitter"]] = 0  # jitter is the input-only change that EV 0 keeps
    x, y = render_pairs(batch["photo"], params, batch["seed"])
    assert torch.equal(x, y)


def test_training_on_device_rendered_batches_gives_the_loaders_weights(tmp_path: Any) -> None:
    from expolib.networks.patchgan import PatchConfig
    from expolib.networks.unet import UNetConfig
    from expolib.training.config import TrainConfig
    from expolib.training.pix2pix import prepare_pix2pix
    from expolib.training.trainer import Trainer

    def run(render_on: str) -> Trainer:
        config = TrainConfig(epochs=1, batch_size=4, image_size=32, generator=UNetConfig(ngf=4, depth=4),
                             discriminator=PatchConfig(ndf=4, n_layers=2), steps_per_epoch=3,
                             out_dir=str(tmp_path / render_on), device="cpu", progress=False, seed=5,
                             render_on=render_on)
        trainer = Trainer(config, prepare_pix2pix(config),
                          EmbeddedPairs("train", size=32, camera=DEFAULT_FAMILY, crops_per_photo=1))
        trainer.fit()
        return trainer

    on_device, in_loader = run("device"), run("loader")
    assert on_device.render_on == "device" and in_loader.render_on == "loader"
    for (name, a), b in zip(on_device.generator.state_dict().items(), in_loader.generator.state_dict().values()):
        assert torch.equal(a, b), name


def test_file_pairs_finished_on_the_device_equal_the_items(tmp_path: Any) -> None:
    from expolib.benchmarks.endtoend import write_msec_folder
    from expolib.data.msec import MSECPairs

    pairs = MSECPairs(write_msec_folder(tmp_path / "msec", scenes=4, side=96), "train", size=48)
    items = SeededItems(pairs, seed=2)
    keys = [(0, 0, i) for i in range(len(pairs))]
    one_by_one = [items[key] for key in keys]
    batch = default_collate([SeededItems(pairs, seed=2, draw=True)[key] for key in keys])
    assert batch["photo"].dtype == torch.uint8 and batch["target_photo"].dtype == torch.uint8
    x, y = pairs.render_batch(batch, "cpu")
    assert torch.equal(x, torch.stack([i["input"] for i in one_by_one]))
    assert torch.equal(y, torch.stack([i["target"] for i in one_by_one]))
    assert 0 < int(batch["params"][:, P["flip"]].sum()) < len(keys)


def _big_jpeg(path: Any, side: int = 1600) -> Any:
    from PIL import Image

    g = torch.Generator().manual_seed(0)
    coarse = torch.rand(1, 3, 12, 16, generator=g)
    image = torch.nn.functional.interpolate(coarse, size=(side * 3 // 4, side), mode="bicubic")[0]
    array = (image.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    Image.fromarray(array).save(path, quality=92)
    return path


def test_draft_decoding_gives_the_full_decodes_picture(tmp_path: Any) -> None:
    from PIL import Image

    from expolib.data.photofiles import load_resized_uint8

    path = _big_jpeg(tmp_path / "big.jpg")
    fast = load_resized_uint8(path, 300)
    assert tuple(fast.shape) == (3, 225, 300)
    reference = Image.open(path).convert("RGB").resize((300, 225), Image.Resampling.LANCZOS)
    full = torch.from_numpy(np.array(reference)).permute(2, 0, 1)
    assert (fast.float() - full.float()).abs().mean() < 2.0  # code values: the same picture


def test_the_resize_cache_is_written_once_and_follows_the_file(tmp_path: Any,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    import expolib.data.photofiles as data

    path = _big_jpeg(tmp_path / "big.jpg", side=800)
    cache = tmp_path / "cache"
    first = data.load_resized_uint8(path, 200, cache)
    files = list(cache.iterdir())
    assert len(files) == 1 and files[0].suffix == ".png"
    decoded: list[Any] = []
    real = data.load_image
    monkeypatch.setattr(data, "load_image", lambda p, *a, **k: decoded.append(p) or real(p, *a, **k))
    again = data.load_resized_uint8(path, 200, cache)
    assert torch.equal(first, again) and decoded == [files[0]]  # read from the cache, not the original
    _big_jpeg(path, side=640)  # the photo is replaced: decoded again, cached under a new name
    assert tuple(data.load_resized_uint8(path, 200, cache).shape) == (3, 150, 200)
    assert len(list(cache.iterdir())) == 2 and decoded[-1] == path


def test_jpeg_pairs_decoded_on_the_device_match_the_loaders_crops(tmp_path: Any) -> None:
    from PIL import Image

    from expolib.benchmarks.endtoend import write_msec_folder
    from expolib.data.msec import MSECPairs

    root = write_msec_folder(tmp_path / "msec", scenes=3, side=120)
    # one photo stored on its side with an EXIF orientation tag: both paths must turn it upright
    path = root / "training" / "INPUT_IMAGES" / "scene0000_N1.JPG"
    image = Image.open(path)
    exif = image.getexif()
    exif[0x0112] = 6
    image.transpose(Image.Transpose.ROTATE_90).save(path, quality=95, exif=exif)
    on_loader = MSECPairs(root, "train", size=48, max_side=100)
    on_device = MSECPairs(root, "train", size=48, max_side=100, decode="device")
    keys = [(0, 0, i) for i in range(len(on_loader))]
    expected = [SeededItems(on_loader, seed=3)[key] for key in keys]
    drawn = SeededItems(on_device, seed=3, draw=True)
    batch = on_device.collate([drawn[key] for key in keys])
    assert isinstance(batch["input_file"], list) and batch["input_file"][0].dtype == torch.uint8
    x, y = on_device.render_batch(batch, "cpu")
    for i, item in enumerate(expected):  # same crop, flip and jitter; another JPEG decoder
        assert (x[i] - item["input"]).abs().mean() < 4 / 255 * 2, i
        assert (y[i] - item["target"]).abs().mean() < 4 / 255 * 2, i
    with pytest.raises(ValueError, match="JPEG files only"):
        (root / "training" / "GT_IMAGES" / "scene0001.jpg").rename(root / "training" / "GT_IMAGES" / "x.png")
        Image.new("RGB", (120, 90)).save(root / "training" / "GT_IMAGES" / "scene0001.png")
        MSECPairs(root, "train", size=48, decode="device")


def test_the_training_flip_and_jitter_do_what_paired_transform_does() -> None:
    """Training never calls ``PairedTransform.geometry`` or ``.finish``: ``render_pairs`` flips and
    jitters a batch itself (chapter 2 shows that code). Its flip mirrors input and target together, as
    ``geometry`` does with ``TF.horizontal_flip``; its jitter changes the input alone, as ``finish``
    does, with the drawn factors applied in the drawn order by the same torchvision operations."""
    import torchvision.transforms.v2.functional as TF

    source = EmbeddedPairs("train", size=32, evs=(-1.0, 1.0), noise=0.0)  # no noise: renders match exactly
    source.deferred = True
    batch = default_collate([SeededItems(source, 0)[(0, 0, i)] for i in range(4)])
    plain = batch["params"].clone()
    plain[:, P["flip"]] = 0
    plain[:, P["jitter"]] = 0
    x, y = render_pairs(batch["photo"], plain, batch["seed"])

    flipped = plain.clone()
    flipped[::2, P["flip"]] = 1  # items 0 and 2 mirrored, 1 and 3 not
    fx, fy = render_pairs(batch["photo"], flipped, batch["seed"])
    for i in range(4):
        mirror = i % 2 == 0
        assert torch.equal(fx[i], TF.horizontal_flip(x[i]) if mirror else x[i])
        assert torch.equal(fy[i], TF.horizontal_flip(y[i]) if mirror else y[i])
    assert not torch.equal(fx[0], x[0])  # the crop is not symmetric: the flip did something

    jittered = plain.clone()
    jittered[1, P["jitter"]] = 1
    factors = {"brightness": 1.04, "contrast": 0.96, "saturation": 1.1, "hue": -0.015}
    for name, value in factors.items():
        jittered[1, P[name]] = value
    order = (2, 0, 3, 1)  # saturation, brightness, hue, contrast
    for k, which in enumerate(order):
        jittered[1, P[f"order_{k}"]] = which
    jx, jy = render_pairs(batch["photo"], jittered, batch["seed"])
    assert torch.equal(jy, y)  # the targets: untouched
    assert torch.equal(jx[[0, 2, 3]], x[[0, 2, 3]])  # the inputs whose jitter was not drawn: untouched
    ops = (TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue)
    names = ("brightness", "contrast", "saturation", "hue")
    expected = denormalize(x[1])
    for which in order:
        expected = ops[which](expected, factors[names[which]])
    assert torch.allclose(jx[1], expected.clamp(0, 1) * 2 - 1, atol=1e-6)
    assert (jx[1] - x[1]).abs().mean() > 1e-3
