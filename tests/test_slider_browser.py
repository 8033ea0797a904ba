"""The static before/after slider in a real headless browser: moving the range input moves the split."""

import io

import numpy as np
import pytest
from PIL import Image

from conftest import CHROMIUM_ARGS
from expolib.book.figures import static_slider_html

pytestmark = pytest.mark.browser


RED = (220, 20, 20)
BLUE = (20, 20, 220)


def _flat(colour: tuple[int, int, int], h: int = 120, w: int = 240) -> np.ndarray:
    return np.zeros((h, w, 3), np.uint8) + np.array(colour, np.uint8)


def _column_colour(page, box: dict, fraction: float) -> np.ndarray:
    shot = page.screenshot(clip=box)
    pixels = np.asarray(Image.open(io.BytesIO(shot)).convert("RGB")).astype(int)
    x = int(pixels.shape[1] * fraction)
    return pixels[pixels.shape[0] // 4 : 3 * pixels.shape[0] // 4, x].mean(axis=0)


def _near(colour: np.ndarray, expected: tuple[int, int, int]) -> bool:
    return bool(np.abs(colour - np.array(expected)).max() < 12)


def test_moving_the_range_input_moves_the_visible_split(chromium: str, sync_api) -> None:
    fragment = static_slider_html(
        _flat(RED), _flat(BLUE), ("left", "right"), image_format="png", position=0.5
    )
    document = f"<!doctype html><html><body style='margin:20px;background:#fff'>{fragment}</body></html>"
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 400, "height": 300})
            page.set_content(document)
            container = page.locator(".expolib-before-after")
            left_img = page.locator("img[id$='-left']")
            slider = page.locator("input[type=range]")
            box = left_img.bounding_box()
            assert box is not None and box["width"] > 200
            clip_before = left_img.evaluate("e => getComputedStyle(e).clipPath")

            # At 50 %, a column at 75 % of the width shows the right (blue) image, one at 25 % the left.
            assert _near(_column_colour(page, box, 0.25), RED)
            assert _near(_column_colour(page, box, 0.75), BLUE)

            # Move the range input the way a reader's drag does: set the value, fire "input".
            slider.evaluate("e => { e.value = 90; e.dispatchEvent(new Event('input', {bubbles: true})); }")
            clip_after = left_img.evaluate("e => getComputedStyle(e).clipPath")
            assert clip_after != clip_before and "10%" in clip_after
            assert _near(_column_colour(page, box, 0.75), RED)  # that column now shows the left image
            assert _near(_column_colour(page, box, 0.95), BLUE)

            # And with the mouse: drag the thumb to the far left.
            track = slider.bounding_box()
            assert track is not None
            page.mouse.click(track["x"] + 1, track["y"] + track["height"] / 2)
            assert float(slider.input_value()) < 5
            assert _near(_column_colour(page, box, 0.25), BLUE)
            assert container.count() == 1
        finally:
            browser.close()
