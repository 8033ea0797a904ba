"""Looking at results: a before/after slider (live and static), image grids and error maps.

- :class:`BeforeAfter`: an ipywidgets widget (core widgets only, so it runs in JupyterLab, Notebook and
  Colab). A slider moves the split between two images; drop-downs pick the photo, the EV and which two
  images (input, corrected, ground truth) are compared. It needs a running kernel. It works with
  ipywidgets 7.x (what Colab ships) and 8.x: it uses only what both have (``observe`` on ``value``,
  ``Dropdown`` options as (label, value) pairs, ``Layout`` width names); the one difference it meets,
  the type of ``Image.value`` (bytes on 7.x, a memoryview on 8.x), :meth:`BeforeAfter.shown_png` hides.
- :func:`static_slider_html`: the same comparison as self-contained HTML (images embedded as base64, a
  range input and one line of JavaScript, nothing loaded from elsewhere), for the built book where no
  kernel runs.
- :func:`show_comparison`: shows both: the live widget, and the static version, which stays in the
  saved notebook and therefore in the built page.
- :func:`show_grid` and :func:`error_map`: side-by-side figures and where the colour error is.
- :func:`draw_unet`, :func:`draw_patch`, :func:`patch_window`: figures of the networks, from
  :mod:`expolib.book.diagrams`.

Images can be uint8 arrays (H, W, 3), float arrays or tensors (3, H, W). Float data is read as [0, 1]
unless ``normalized=True`` says it is in [-1, 1] (dataset items, network outputs); the conversion is
:func:`expolib.imaging.imageio.to_uint8_image`, which never guesses the range from the values.
"""

from __future__ import annotations

import base64
import html
import io
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Callable, Optional, Union

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import torch
from PIL import Image

from expolib.book.diagrams import (  # the figures of the networks, kept here too
    draw_patch,
    draw_unet,
    patch_window,
)
from expolib.evaluation.metrics import delta_e_map
from expolib.imaging.imageio import to_uint8_image

ImageLike = Union[np.ndarray, torch.Tensor]
Samples = Mapping[tuple[str, float], Mapping[str, np.ndarray]]

KINDS = ("input", "corrected", "ground truth")


def split_image(left: np.ndarray, right: np.ndarray, position: float, *, line: bool = True) -> np.ndarray:
    """``left`` up to ``position`` (0..1 of the width), ``right`` after it, a thin white line between."""
    if left.shape != right.shape:
        raise ValueError(f"the two images differ in shape: {left.shape} vs {right.shape}")
    width = left.shape[1]
    cut = int(round(min(max(position, 0.0), 1.0) * width))
    out = right.copy()
    out[:, :cut] = left[:, :cut]
    if line and 0 < cut < width:
        out[:, max(0, cut - 1) : cut + 1] = 255
    return out


def encode_image(image: np.ndarray, image_format: str = "png", quality: int = 90) -> bytes:
    """uint8 ``(H, W, 3)`` -> PNG or JPEG bytes."""
    buffer = io.BytesIO()
    fmt = image_format.lower()
    if fmt in ("jpg", "jpeg"):
        Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
    elif fmt == "png":
        Image.fromarray(image).save(buffer, format="PNG")
    else:
        raise ValueError(f"unsupported image format {image_format!r}; use png or jpeg")
    return buffer.getvalue()


def _data_uri(image: np.ndarray, image_format: str) -> str:
    mime = "image/png" if image_format.lower() == "png" else "image/jpeg"
    return f"data:{mime};base64,{base64.b64encode(encode_image(image, image_format)).decode('ascii')}"


def static_slider_html(
    left: ImageLike,
    right: ImageLike,
    labels: Sequence[str] = ("before", "after"),
    *,
    position: float = 0.5,
    image_format: str = "jpeg",
    width: Optional[int] = None,
    normalized: bool = False,
) -> str:
    """A before/after slider as self-contained HTML: works on a static page with no kernel.

    Both images are embedded (base64 ``image_format``); ``left`` is drawn over ``right`` and clipped
    with CSS ``clip-path`` at the range input's value, updated by the input's ``oninput`` handler.
    No ``<script>`` element is needed and nothing is fetched. Element ids are unique per call, so one
    page can hold many sliders. ``width`` sets the displayed width in CSS pixels (default: the image's).
    ``normalized=True``: float images are in [-1, 1] (see :func:`expolib.imaging.imageio.to_uint8_image`).
    """
    a, b = to_uint8_image(left, normalized=normalized), to_uint8_image(right, normalized=normalized)
    if a.shape != b.shape:
        raise ValueError(f"the two images differ in shape: {a.shape} vs {b.shape}")
    uid = f"expolib-ba-{uuid.uuid4().hex[:12]}"
    pct = 100.0 * min(max(position, 0.0), 1.0)
    shown = width or a.shape[1]
    left_label, right_label = (html.escape(str(s)) for s in labels)
    update = (
        f"var p=this.value;"
        f"document.getElementById('{uid}-left').style.clipPath='inset(0 '+(100-p)+'% 0 0)';"
        f"document.getElementById('{uid}-line').style.left=p+'%';"
    )
    tag = (
        "position:absolute;top:6px;padding:1px 6px;font:13px sans-serif;line-height:1.4;"
        "color:#fff;background:rgba(0,0,0,.55)"
    )
    return (
        f'<div class="expolib-before-after" id="{uid}" '
        f'style="display:inline-block;max-width:100%;width:{shown}px">'
        f'<div style="position:relative;line-height:0;user-select:none">'
        f'<img id="{uid}-right" src="{_data_uri(b, image_format)}" alt="{right_label}" '
        f'style="display:block;width:100%;height:auto;margin:0;max-width:none">'
        f'<img id="{uid}-left" src="{_data_uri(a, image_format)}" alt="{left_label}" '
        f'style="position:absolute;top:0;left:0;width:100%;height:100%;margin:0;max-width:none;'
        f'clip-path:inset(0 {100 - pct:g}% 0 0)">'
        f'<div id="{uid}-line" style="position:absolute;top:0;bottom:0;left:{pct:g}%;width:2px;'
        f'margin-left:-1px;background:#fff;box-shadow:0 0 2px rgba(0,0,0,.8);pointer-events:none"></div>'
        f'<span style="{tag};left:6px">{left_label}</span>'
        f'<span style="{tag};right:6px">{right_label}</span>'
        f"</div>"
        f'<input type="range" id="{uid}-range" min="0" max="100" step="0.1" value="{pct:g}" '
        f'aria-label="split between {left_label} and {right_label}" '
        f'style="display:block;width:100%;margin:6px 0 0 0" '
        f'oninput="{update}">'
        f"</div>"
    )


def comparison_samples(
    corrector: Callable[[torch.Tensor], torch.Tensor],
    dataset: Iterable[Mapping[str, Any]],
    *,
    max_items: Optional[int] = None,
) -> dict[tuple[str, float], dict[str, np.ndarray]]:
    """Run ``corrector`` on dataset items and keep, per (scene, EV), the input, corrected and ground truth."""
    from expolib.evaluation.protocol import run_corrector

    samples: dict[tuple[str, float], dict[str, np.ndarray]] = {}
    for index, item in enumerate(dataset):
        if max_items is not None and index >= max_items:
            break
        output = run_corrector(corrector, item["input"])
        samples[(str(item["scene"]), float(item["ev"]))] = {
            "input": to_uint8_image(item["input"], normalized=True),
            "corrected": to_uint8_image(output, normalized=True),
            "ground truth": to_uint8_image(item["target"], normalized=True),
        }
    return samples


class BeforeAfter(widgets.VBox):
    """A live before/after slider over samples ``{(scene, ev): {"input", "corrected", "ground truth"}}``.

    An ``ipywidgets.VBox`` of core widgets: drop-downs (photo, EV, left image, right image), the composed
    image (an ``ipywidgets.Image`` holding a PNG) and a slider that moves the split.
    """

    def __init__(
        self,
        samples: Samples,
        *,
        left: str = "input",
        right: str = "corrected",
        position: float = 0.5,
        width: Optional[int] = None,
    ) -> None:
        super().__init__()
        if not samples:
            raise ValueError("no samples to compare")
        self.samples = samples
        first = next(iter(samples.values()))
        kinds = list(first)
        for kind in (left, right):
            if kind not in kinds:
                raise ValueError(f"unknown image {kind!r}; the samples hold {', '.join(kinds)}")
        scenes = list(dict.fromkeys(scene for scene, _ in samples))
        self.photo = widgets.Dropdown(options=scenes, value=scenes[0], description="photo")
        self.ev = widgets.Dropdown(options=self._evs(scenes[0]), description="EV")
        self.left = widgets.Dropdown(options=kinds, value=left, description="left")
        self.right = widgets.Dropdown(options=kinds, value=right, description="right")
        self.split = widgets.FloatSlider(
            value=position, min=0.0, max=1.0, step=0.01, description="split", readout_format=".2f",
            continuous_update=True,
        )
        layout = widgets.Layout(width=f"{width}px") if width else widgets.Layout(max_width="100%")
        self.image = widgets.Image(format="png", layout=layout)
        self.display_width = width
        for control in (self.photo, self.ev, self.left, self.right, self.split):
            control.observe(self._update, names="value")
        self.photo.observe(self._photo_changed, names="value")
        self.children = [
            widgets.HBox([self.photo, self.ev]), widgets.HBox([self.left, self.right]), self.image, self.split
        ]
        self._update()

    def _evs(self, scene: str) -> list[tuple[str, float]]:
        return [(f"{ev:+.1f}", ev) for s, ev in sorted(self.samples, key=lambda k: k[1]) if s == scene]

    def _photo_changed(self, change: Any = None) -> None:
        current = self.ev.value
        options = self._evs(self.photo.value)
        self.ev.options = options
        values = [v for _, v in options]
        self.ev.value = current if current in values else values[0]

    def pair(self) -> tuple[np.ndarray, np.ndarray]:
        """The two images currently compared (left, right)."""
        sample = self.samples[(self.photo.value, self.ev.value)]
        return sample[self.left.value], sample[self.right.value]

    def composed(self) -> np.ndarray:
        """The image the widget shows now: left image up to the split, right image after it."""
        left, right = self.pair()
        return split_image(left, right, self.split.value)

    def shown_png(self) -> bytes:
        """The PNG the image widget holds now (what a frontend displays), as bytes on any ipywidgets."""
        return bytes(self.image.value)

    def _update(self, change: Any = None) -> None:
        if self.ev.value is None or (self.photo.value, self.ev.value) not in self.samples:
            return
        self.image.value = encode_image(self.composed(), "png")

    def static_html(self, image_format: str = "jpeg") -> str:
        """The current comparison as :func:`static_slider_html`."""
        left, right = self.pair()
        labels = (f"{self.left.value} (EV {self.ev.value:+.1f})", self.right.value)
        return static_slider_html(
            left, right, labels, position=self.split.value, image_format=image_format,
            width=self.display_width,
        )


def show_comparison(
    samples: Samples,
    *,
    scene: Optional[str] = None,
    ev: Optional[float] = None,
    left: str = "input",
    right: str = "corrected",
    width: Optional[int] = None,
    static: bool = True,
) -> BeforeAfter:
    """Show the live :class:`BeforeAfter` widget and, below it, the static slider for the same choice.

    A built book page keeps notebook outputs but runs no kernel: a saved widget there is dead controls
    (or an empty box offline), while the static slider (plain HTML output) still works. So the widget
    is displayed with :data:`LIVE_WIDGET_NOTE` as its plain-text form, which is what a page or viewer
    without widget support shows, and the book removes the live widget's output from its pages (cell
    tag ``remove-output``). In a live notebook the static copy stays fixed on the first choice; the
    widget above it follows the drop-downs. ``width`` is the displayed width in pixels (default: the
    images' own).
    """
    from IPython.display import HTML, display

    viewer = BeforeAfter(samples, left=left, right=right, width=width)
    if scene is not None:
        viewer.photo.value = scene
    if ev is not None:
        viewer.ev.value = float(ev)
    # what ipywidgets 7 and 8 display for a widget, with a note instead of the widget's repr
    view = {"version_major": 2, "version_minor": 0, "model_id": viewer.model_id}
    display({"text/plain": LIVE_WIDGET_NOTE, "application/vnd.jupyter.widget-view+json": view}, raw=True)
    if static:
        display(HTML(viewer.static_html()))
    return viewer


LIVE_WIDGET_NOTE = ("[live before/after widget: it works while the notebook runs; where nothing runs, "
                    "use the static slider]")


def error_map(output: ImageLike, target: ImageLike, *, normalized: bool = False) -> np.ndarray:
    """Per-pixel CIEDE2000 difference ``(H, W)`` between two images (any form
    :func:`expolib.imaging.imageio.to_uint8_image` takes; ``normalized=True`` for float data in [-1, 1])."""
    return delta_e_map(
        to_uint8_image(output, normalized=normalized), to_uint8_image(target, normalized=normalized)
    )


def _is_uint8(image: ImageLike) -> bool:
    if isinstance(image, torch.Tensor):
        return image.dtype == torch.uint8
    return np.asarray(image).dtype == np.uint8


def show_grid(
    rows: Sequence[Sequence[ImageLike]],
    *,
    column_titles: Optional[Sequence[str]] = None,
    row_titles: Optional[Sequence[str]] = None,
    cell_size: float = 2.6,
    error_vmax: Optional[float] = 20.0,
    normalized: bool = False,
) -> plt.Figure:
    """A grid of images; a 2-D array in a cell is drawn as an error map (``magma``, 0..``error_vmax``).

    ``normalized=True``: the float images (arrays or tensors) are in [-1, 1], such as dataset items and
    network outputs; otherwise in [0, 1]. uint8 images are drawn as they are.

    Returns the figure (call ``plt.show()`` in a notebook).
    """
    nrows, ncols = len(rows), max(len(r) for r in rows)
    first = next(np.asarray(c) if not isinstance(c, torch.Tensor) else c for r in rows for c in r)
    h, w = (first.shape[1:] if isinstance(first, torch.Tensor) and first.ndim == 3 else first.shape[:2])
    aspect = h / w
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(cell_size * ncols, cell_size * aspect * nrows + 0.5), squeeze=False,
        constrained_layout=True,
    )
    for i, row in enumerate(rows):
        for j in range(ncols):
            ax = axes[i][j]
            ax.set_xticks([])
            ax.set_yticks([])
            if j >= len(row):
                ax.axis("off")
                continue
            cell = row[j]
            if isinstance(cell, np.ndarray) and cell.ndim == 2:
                shown = ax.imshow(cell, cmap="magma", vmin=0, vmax=error_vmax)
                fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.02, label="ΔE00")
            else:
                ax.imshow(to_uint8_image(cell, normalized=normalized and not _is_uint8(cell)))
            if column_titles is not None and i == 0 and j < len(column_titles):
                ax.set_title(column_titles[j], fontsize=10)
            if row_titles is not None and j == 0 and i < len(row_titles):
                ax.set_ylabel(row_titles[i], fontsize=9)
    return fig


__all__ = [
    "draw_patch", "draw_unet", "patch_window",
    "BeforeAfter", "KINDS", "LIVE_WIDGET_NOTE", "comparison_samples", "encode_image", "error_map",
    "show_comparison",
    "show_grid", "split_image", "static_slider_html",
]
