#!/usr/bin/env python3
"""Redraw the README's picture: a test photo too dark and too bright, the shipped model's correction
(as ``python -m expolib correct`` makes it) and the ground truth.

A maintainer script, run after the shipped weights change::

    python tools/make_readme_picture.py            # writes book/images/before_after.jpg
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from expolib.data.photos import EMBEDDED_SPLIT, load_embedded_photo  # noqa: E402
from expolib.evaluation.infer import correct  # noqa: E402
from expolib.evaluation.metrics import psnr  # noqa: E402
from expolib.imaging.exposure import render_exposure  # noqa: E402
from expolib.imaging.transforms import resize_long_side, to_tensor01  # noqa: E402
from expolib.networks.modelfile import load_pretrained  # noqa: E402


def main() -> None:
    """Parse the options, draw the picture, save it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scene", default="wine_room", choices=EMBEDDED_SPLIT["test"],
                        help="a test scene (never seen in training)")
    parser.add_argument("--side", type=int, default=768, help="long side of the photo shown")
    parser.add_argument("--out", default="book/images/before_after.jpg")
    args = parser.parse_args()

    image = resize_long_side(to_tensor01(load_embedded_photo(args.scene)), args.side)
    truth = (image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    model = load_pretrained()
    rows = []
    for ev in (-1.5, 1.5):
        source = render_exposure(truth, ev)
        fixed = correct(model, source)
        rows.append((ev, source, fixed))
    fig, axes = plt.subplots(2, 3, figsize=(12, 6.4))
    for r, (ev, source, fixed) in enumerate(rows):
        panels = [(source, f"input, EV {ev:+.1f} ({psnr(source, truth):.1f} dB)"),
                  (fixed, f"corrected ({psnr(fixed, truth):.1f} dB)"), (truth, "ground truth")]
        for c, (picture, title) in enumerate(panels):
            axes[r, c].imshow(picture)
            axes[r, c].set_title(title, fontsize=11)
            axes[r, c].axis("off")
    fig.tight_layout()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=80, pil_kwargs={"quality": 88})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
