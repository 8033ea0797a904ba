"""The MSEC dataset (Multi-Scale Exposure Correction, Afifi et al., CVPR 2021) in its published layout.

``root/training|validation/{INPUT_IMAGES,GT_IMAGES}`` and ``root/testing/{INPUT_IMAGES,
expert_{a..e}_testing_set}``; inputs are ``<scene>_<level>.JPG`` with the level one of
:data:`MSEC_EV_TOKENS`, targets ``<scene>.jpg``. :class:`MSECPairs` reads it (the item of
:mod:`expolib.data.items`), :func:`find_msec` finds it, :func:`parse_msec_name` reads its file names.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

from expolib.data.filepairs import DatasetLayoutError, FilePairs, name_examples
from expolib.data.photofiles import IMAGE_EXTENSIONS, list_images
from expolib.imaging.exposure import EVS
from expolib.imaging.imageio import PathLike

#: MSEC's file-name tokens for the five exposure levels: an input is ``<scene>_<token>.JPG``.
MSEC_EV_TOKENS: dict[str, float] = {"N1.5": -1.5, "N1": -1.0, "0": 0.0, "P1": 1.0, "P1.5": 1.5}
#: Our split names and MSEC's folder names.
MSEC_SPLITS: dict[str, str] = {"train": "training", "val": "validation", "test": "testing"}
MSEC_EXPERTS = ("a", "b", "c", "d", "e")
_MSEC_NAME = re.compile(
    r"^(?P<scene>.+)_(?P<token>" + "|".join(re.escape(token) for token in MSEC_EV_TOKENS) + ")$")


def parse_msec_name(filename: str) -> tuple[str, float]:
    """Scene and EV of an MSEC input: ``"a0001-jmac_DSC1459_N1.5.JPG"`` -> ``("a0001-jmac_DSC1459", -1.5)``.

    Only the last ``_`` token is the EV; scene names may contain underscores.
    """
    stem = Path(filename).stem if Path(filename).suffix.lower() in IMAGE_EXTENSIONS else filename
    match = _MSEC_NAME.match(stem)
    if match is None:
        raise ValueError(
            f"{filename}: not an MSEC input name <scene>_<EV>.<ext> "
            f"with EV one of {', '.join(MSEC_EV_TOKENS)}"
        )
    return match["scene"], MSEC_EV_TOKENS[match["token"]]


class MSECPairs(FilePairs):
    """The MSEC dataset (Afifi et al., 2021) from a folder in its published layout.

    ``root/training|validation/{INPUT_IMAGES,GT_IMAGES}`` and ``root/testing/{INPUT_IMAGES,
    expert_{a..e}_testing_set}``; inputs ``<scene>_<token>.JPG`` (:data:`MSEC_EV_TOKENS`), targets
    ``<scene>.jpg``. ``split`` is ``"train"``, ``"val"`` or ``"test"``; ``expert`` picks the test set's
    retoucher (the training and validation targets are expert C's). ``evs`` keeps only those levels.
    Augmented ``size`` crops by default; the other ``options`` are those of
    :class:`~expolib.data.filepairs.FilePairs`.
    """

    def __init__(
        self,
        root: PathLike,
        split: str = "train",
        expert: str = "c",
        evs: Sequence[float] = EVS,
        size: Optional[int] = 128,
        augment: bool = True,
        **options: Any,
    ) -> None:
        self.root = Path(root)
        self.split = MSEC_SPLITS.get(split, split)
        if self.split not in MSEC_SPLITS.values():
            raise ValueError(f"unknown split {split!r}; use train, val or test")
        self.expert = expert.lower()
        if self.expert not in MSEC_EXPERTS:
            raise ValueError(f"unknown expert {expert!r}; MSEC has experts {', '.join(MSEC_EXPERTS)}")
        records = self._scan(set(float(ev) for ev in evs))
        super().__init__(records, size, augment, **options)

    @property
    def target_dir(self) -> Path:
        """The folder of ground-truth images for this split (and expert)."""
        if self.split == "testing":
            return self.root / "testing" / f"expert_{self.expert}_testing_set"
        return self.root / self.split / "GT_IMAGES"

    def _scan(self, evs: set[float]) -> list[tuple[Path, Path, float, str]]:
        if not self.root.is_dir():
            raise DatasetLayoutError(f"{self.root}: no such folder (expected the MSEC dataset here)")
        input_dir = self.root / self.split / "INPUT_IMAGES"
        missing = [str(d.relative_to(self.root)) for d in (input_dir, self.target_dir) if not d.is_dir()]
        if missing:
            raise DatasetLayoutError(
                f"{self.root} is not in the MSEC layout: missing folder(s) {', '.join(missing)}; "
                "expected training|validation/{INPUT_IMAGES,GT_IMAGES} and "
                "testing/{INPUT_IMAGES,expert_a..e_testing_set}"
            )
        targets = {p.stem: p for p in list_images(self.target_dir)}
        records, unparsable, no_target = [], [], []
        for path in list_images(input_dir):
            try:
                scene, ev = parse_msec_name(path.name)
            except ValueError:
                unparsable.append(path.name)
                continue
            if scene not in targets:
                no_target.append(f"{path.name} (needs {scene}.jpg)")
                continue
            if ev in evs:
                records.append((path, targets[scene], ev, scene))
        if unparsable:
            raise DatasetLayoutError(
                f"{input_dir}: {len(unparsable)} file name(s) are not <scene>_<EV> with EV in "
                f"{', '.join(MSEC_EV_TOKENS)}: {name_examples(unparsable)}"
            )
        if no_target:
            raise DatasetLayoutError(
                f"{len(no_target)} input(s) in {input_dir} have no ground truth in {self.target_dir}: "
                f"{name_examples(no_target)}"
            )
        if not records:
            raise DatasetLayoutError(f"{input_dir}: no input images for the levels {sorted(evs)}")
        return records

    @property
    def scenes(self) -> list[str]:
        """The distinct scene names, sorted."""
        return sorted({r[3] for r in self.records})

    def __repr__(self) -> str:
        return (
            f"MSECPairs({str(self.root)!r}, split={self.split!r}, expert={self.expert!r}, "
            f"inputs={len(self.records)}, scenes={len(self.scenes)}, size={self.size})"
        )


MSEC_ENV_VAR = "EXPOLIB_MSEC"


def find_msec() -> Optional[Path]:
    """Where MSEC is, if anywhere: ``$EXPOLIB_MSEC``, else a ``data/MSEC`` folder in the current folder
    or its parent (the book's folder or the project root). ``None`` when not found.

    A variable pointing at a folder that does not exist is an error, not a silent fallback.
    """
    value = os.environ.get(MSEC_ENV_VAR, "").strip()
    if value:
        path = Path(value).expanduser()
        if not path.is_dir():
            raise FileNotFoundError(f"{MSEC_ENV_VAR}={value}: no such folder")
        return path
    here = Path.cwd()
    for base in (here, here.parent):
        candidate = base / "data" / "MSEC"
        if candidate.is_dir() and any((candidate / name).is_dir() for name in MSEC_SPLITS.values()):
            return candidate
    return None


__all__ = [
    "MSEC_ENV_VAR",
    "MSEC_EV_TOKENS",
    "MSEC_EXPERTS",
    "MSEC_SPLITS",
    "MSECPairs",
    "find_msec",
    "parse_msec_name",
]
