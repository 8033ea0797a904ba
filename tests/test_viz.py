"""The before/after views: split composition, the live widget, the static HTML."""

import base64
import re

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from expolib.book.figures import BeforeAfter, error_map, show_grid, split_image, static_slider_html
from expolib.imaging.transforms import normalize

RED = np.zeros((20, 40, 3), np.uint8) + np.array([200, 0, 0], np.uint8)
BLUE = np.zeros((20, 40, 3), np.uint8) + np.array([0, 0, 200], np.uint8)


def _samples() -> dict:
    grey = np.full_like(RED, 128)
    return {
        ("cat", -1.0): {"input": RED, "corrected": BLUE, "ground truth": grey},
        ("cat", 1.0): {"input": BLUE, "corrected": RED, "ground truth": grey},
        ("flower", 0.0): {"input": grey, "corrected": RED, "ground truth": BLUE},
    }


def test_split_image_puts_left_before_the_cut_and_right_after() -> None:
    out = split_image(RED, BLUE, 0.25, line=False)
    assert (out[:, :10] == RED[:, :10]).all() and (out[:, 10:] == BLUE[:, 10:]).all()
    with_line = split_image(RED, BLUE, 0.5)
    assert (with_line[:, 19:21] == 255).all()
    assert (split_image(RED, BLUE, 0.0) == BLUE).all() and (split_image(RED, BLUE, 1.0) == RED).all()


def _png_pixels(page: str) -> list[np.ndarray]:
    from io import BytesIO

    from PIL import Image

    sources = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    return [np.asarray(Image.open(BytesIO(base64.b64decode(s)))) for s in sources]


def test_a_bright_normalised_tensor_is_shown_as_bright() -> None:
    """0.2 in [-1, 1] is 0.6 in [0, 1], that is 153; reading the values alone would give 51."""
    import matplotlib.pyplot as plt

    bright = torch.full((3, 20, 40), 0.2)  # all positive: nothing in the values says "normalised"
    for pixels in _png_pixels(static_slider_html(bright, bright, image_format="png", normalized=True)):
        assert (pixels == 153).all()
    fig = show_grid([[bright, RED]], normalized=True)  # uint8 cells are drawn as they are
    assert (fig.axes[0].images[0].get_array() == 153).all()
    assert (fig.axes[1].images[0].get_array() == RED).all()
    plt.close(fig)
    # The same [0, 1] images, given normalised, have the same error map.
    x01 = torch.rand(3, 20, 40, generator=torch.Generator().manual_seed(0)) * 0.4 + 0.55
    y01 = x01.flip(-1)
    from_normalised = error_map(normalize(x01), normalize(y01), normalized=True)
    np.testing.assert_allclose(from_normalised, error_map(x01, y01))


def test_float_images_outside_the_range_they_are_said_to_have_are_refused() -> None:
    dark = torch.full((3, 20, 40), -0.5)  # normalised data passed as [0, 1]
    with pytest.raises(ValueError, match="normalized=True"):
        static_slider_html(dark, dark)
    with pytest.raises(ValueError, match="normalized=True"):
        error_map(dark, dark)


def test_live_widget_moves_the_split_and_switches_images() -> None:
    viewer = BeforeAfter(_samples())
    assert (viewer.composed()[:, 5] == RED[:, 5]).all() and (viewer.composed()[:, 35] == BLUE[:, 35]).all()
    first = viewer.image.value
    viewer.split.value = 0.9
    assert viewer.image.value != first
    assert (viewer.composed()[:, 30] == RED[:, 30]).all()
    viewer.right.value = "ground truth"
    assert (viewer.composed()[:, 39] == 128).all()
    viewer.photo.value = "flower"  # only EV 0 exists for this photo: the EV choice follows
    assert viewer.ev.value == 0.0
    assert (viewer.composed()[:, 0] == 128).all()
    with pytest.raises(ValueError, match="unknown image"):
        BeforeAfter(_samples(), right="sharpened")


def test_static_html_is_self_contained_with_unique_ids() -> None:
    page = static_slider_html(RED, BLUE, ("under", "fixed"), image_format="png")
    other = static_slider_html(RED, BLUE)
    ids = set(re.findall(r'id="([^"]+)"', page))
    assert ids and not ids & set(re.findall(r'id="([^"]+)"', other))
    assert 'type="range"' in page and "oninput=" in page
    assert "http://" not in page and "https://" not in page and "<script" not in page
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(images) == 2
    assert base64.b64decode(images[0])[:4] == b"\x89PNG"
    assert ">under<" in page and ">fixed<" in page
    with pytest.raises(ValueError, match="shape"):
        static_slider_html(RED, BLUE[:10])


def test_error_map_is_zero_where_images_agree() -> None:
    target = RED.copy()
    output = RED.copy()
    output[:, 20:] = BLUE[:, 20:]
    emap = error_map(output, target)
    assert emap.shape == (20, 40)
    assert np.allclose(emap[:, :20], 0) and (emap[:, 20:] > 20).all()


def test_show_grid_draws_images_and_error_maps() -> None:
    import matplotlib.pyplot as plt

    fig = show_grid([[RED, BLUE, error_map(RED, BLUE)]], column_titles=["a", "b", "ΔE00"])
    assert len(fig.axes) == 4  # three panels and the colour bar
    plt.close(fig)


def test_draw_unet_shows_every_level_with_its_size_and_the_skips() -> None:
    import matplotlib.patches as mpatches

    from expolib.book.figures import draw_unet
    from expolib.networks.unet import UNetConfig

    fig = draw_unet(UNetConfig(), side=256)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert "256x256x3" in texts and "128x128x64" in texts and "1x1x512" in texts  # pix2pix's unet_256
    assert texts.count("skip (cat)") == 7  # every level but the outermost and the bottleneck
    boxes = [p for p in fig.axes[0].patches if isinstance(p, mpatches.Rectangle)]
    assert len(boxes) == 9 + 8  # encoder: input and 8 maps; decoder: 8 maps
    plain = draw_unet(UNetConfig(ngf=8, depth=5, skip=False), side=64)
    texts = [t.get_text() for t in plain.axes[0].texts]
    assert "2x2x64" in texts and "skip (cat)" not in texts
    plt.close("all")
