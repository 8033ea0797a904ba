"""The live before/after widget, driven from Python with whichever ipywidgets is installed.

Colab ships ipywidgets 7.x and JupyterLab 4 uses 8.x: the widget must work on both. CI runs this file
twice, once with the project's ipywidgets (8.x) and once with 7.x put first on the path.
"""

import base64
import io

import ipywidgets
import numpy as np
import pytest
from PIL import Image
from skimage import data

from expolib.book.figures import BeforeAfter, split_image

IPYWIDGETS_MAJOR = int(ipywidgets.__version__.split(".")[0])


def _photos() -> dict[str, np.ndarray]:
    """Two small real photos of different sizes."""
    return {"astronaut": data.astronaut()[::8, ::8].copy(), "chelsea": data.chelsea()[::6, ::6].copy()}


def _samples() -> dict:
    """Per photo an under- and an over-exposed input; the photo itself is the correction and the truth."""
    samples = {}
    for name, photo in _photos().items():
        under = (photo * 0.35).astype(np.uint8)
        over = np.minimum(photo.astype(np.int32) * 3, 255).astype(np.uint8)
        for ev, rendered in ((-1.0, under), (1.0, over)):
            samples[(name, ev)] = {"input": rendered, "corrected": photo, "ground truth": photo}
    return samples


def _shown(viewer: BeforeAfter) -> np.ndarray:
    """The pixels of the PNG the widget's image currently holds (what the browser receives)."""
    value = viewer.shown_png()
    assert isinstance(value, bytes) and value[:4] == b"\x89PNG"
    assert value == bytes(viewer.image.value)  # 7.x holds bytes, 8.x a memoryview of them
    return np.asarray(Image.open(io.BytesIO(value)).convert("RGB"))


def test_the_installed_ipywidgets_is_a_supported_one() -> None:
    assert IPYWIDGETS_MAJOR in (7, 8), ipywidgets.__version__


def test_the_widget_is_built_from_core_widgets() -> None:
    viewer = BeforeAfter(_samples(), width=200)
    assert isinstance(viewer, ipywidgets.VBox)
    assert isinstance(viewer.split, ipywidgets.FloatSlider)
    assert isinstance(viewer.image, ipywidgets.Image) and viewer.image.format == "png"
    drop_downs = (viewer.photo, viewer.ev, viewer.left, viewer.right)
    assert all(isinstance(d, ipywidgets.Dropdown) for d in drop_downs)
    assert viewer.image.layout.width == "200px"
    assert list(viewer.photo.options) == ["astronaut", "chelsea"] and viewer.photo.value == "astronaut"
    assert viewer.ev.value == -1.0 and [label for label, _ in viewer.ev.options] == ["-1.0", "+1.0"]


def test_moving_the_slider_changes_the_displayed_image() -> None:
    samples = _samples()
    viewer = BeforeAfter(samples)
    under, photo = samples[("astronaut", -1.0)]["input"], samples[("astronaut", -1.0)]["corrected"]
    first = viewer.shown_png()
    np.testing.assert_array_equal(_shown(viewer), split_image(under, photo, 0.5))

    seen = []
    viewer.image.observe(lambda change: seen.append(bytes(change["new"])), names="value")
    viewer.split.value = 1.0
    assert viewer.shown_png() != first and seen == [viewer.shown_png()]
    np.testing.assert_array_equal(_shown(viewer), under)  # all of it is the left image now
    viewer.split.value = 0.0
    np.testing.assert_array_equal(_shown(viewer), photo)  # all of it is the right image
    assert len(seen) == 2


def test_choosing_another_photo_changes_the_displayed_image() -> None:
    samples = _samples()
    viewer = BeforeAfter(samples)
    viewer.ev.value = 1.0
    viewer.split.value = 0.3
    before = viewer.shown_png()
    viewer.photo.value = "chelsea"
    assert viewer.shown_png() != before
    assert viewer.ev.value == 1.0  # the EV choice is kept when the new photo has it
    chelsea = samples[("chelsea", 1.0)]
    np.testing.assert_array_equal(_shown(viewer), split_image(chelsea["input"], chelsea["corrected"], 0.3))
    assert _shown(viewer).shape == _photos()["chelsea"].shape

    viewer.left.value = "ground truth"  # both sides the same photo: no split visible but the line
    same = chelsea["corrected"]
    np.testing.assert_array_equal(_shown(viewer), split_image(same, same, 0.3))


def test_the_photo_choice_follows_when_the_new_photo_lacks_the_ev() -> None:
    samples = _samples()
    del samples[("chelsea", 1.0)]
    viewer = BeforeAfter(samples)
    viewer.ev.value = 1.0
    viewer.photo.value = "chelsea"
    assert viewer.ev.value == -1.0 and [v for _, v in viewer.ev.options] == [-1.0]
    np.testing.assert_array_equal(
        _shown(viewer), split_image(samples[("chelsea", -1.0)]["input"], _photos()["chelsea"], 0.5)
    )


def test_the_widget_state_serialises_with_the_image_bytes() -> None:
    """What a notebook saves (and a frontend receives): the image model's state holds the PNG."""
    from ipywidgets.embed import embed_data

    viewer = BeforeAfter(_samples())
    viewer.split.value = 0.8
    state = embed_data(views=[viewer])["manager_state"]["state"]
    image = state[viewer.image.model_id]
    assert image["model_name"] == "ImageModel"
    (buffer,) = [b for b in image["buffers"] if b["path"] == ["value"]]
    assert base64.b64decode(buffer["data"]) == viewer.shown_png()
    assert state[viewer.split.model_id]["state"]["value"] == pytest.approx(0.8)


def test_the_live_widget_saves_a_note_and_the_static_slider_its_picture(monkeypatch: pytest.MonkeyPatch) -> None:
    import IPython.display

    from expolib.book.figures import LIVE_WIDGET_NOTE, show_comparison

    shown: list[tuple[object, dict]] = []
    monkeypatch.setattr(IPython.display, "display", lambda *objs, **kw: shown.extend((o, kw) for o in objs))
    viewer = show_comparison(_samples(), width=64)
    (bundle, options), (static, _) = shown
    assert options.get("raw") is True
    assert bundle["text/plain"] == LIVE_WIDGET_NOTE  # what a page without a kernel or widgets shows
    assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == viewer.model_id
    assert "<img" in static._repr_html_()  # the static slider: plain HTML with the pictures inside


def test_the_book_removes_the_live_widgets_output_from_its_pages() -> None:
    import json
    from pathlib import Path

    book = Path(__file__).resolve().parents[1] / "book"
    cells = [c for path in sorted(book.glob("*.ipynb")) for c in json.loads(path.read_text())["cells"]
             if c["cell_type"] == "code" and "show_comparison(" in "".join(c["source"])]
    assert cells, "no chapter shows the before/after comparison"
    for cell in cells:
        assert "static=False" in "".join(cell["source"])  # the static slider comes in a cell of its own
        assert "remove-output" in cell["metadata"].get("tags", [])
