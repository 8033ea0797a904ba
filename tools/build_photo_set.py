#!/usr/bin/env python3
"""Rebuild expolib's shipped real photographs (``expolib/photos/``) from three Debian packages.

This is a maintainer script, not part of the library. The photos come from the Debian packages
``lomiri-wallpapers-16.04``, ``lomiri-wallpapers-20.04`` and ``ukui-wallpapers``: the script
unpacks the ``.deb`` files, takes the real photographs listed in :data:`PHOTOS` (the illustrations,
renders, gradients and heavily processed images in :data:`EXCLUDED` are left out), checks each
photo's author and licence against the package's ``copyright`` file, downsizes it and writes:

* ``<scene>.jpg``: the photo, EXIF orientation applied, RGB (sRGB), long side ``--long-side``
  pixels (Lanczos), JPEG at ``--quality`` with 4:4:4 chroma, no metadata;
* ``ATTRIBUTION.md``: a table of every photo with its author, licence and source, and the licences;
* ``photos.json``: the same records, machine-readable, with each photo's split (train/val/test).

The split is by scene (two files of one scene would share a scene id and a split). Usage::

    # the three .deb files already in a folder
    python tools/build_photo_set.py --debs DEB_DIR
    # fetch them first with `apt-get download` (Debian or Ubuntu, needs `apt-get update` once)
    python tools/build_photo_set.py --debs DEB_DIR --download

Needs ``dpkg-deb`` (to unpack) and Pillow.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

from PIL import Image, ImageOps

#: The Debian packages the photos come from.
PACKAGES: tuple[str, ...] = ("lomiri-wallpapers-16.04", "lomiri-wallpapers-20.04", "ukui-wallpapers")

#: Where the images lie inside the unpacked packages.
BACKGROUNDS = "usr/share/backgrounds"

#: Licence names and the addresses of their texts, by the SPDX identifier the copyright files use.
LICENCES: dict[str, tuple[str, str]] = {
    "CC-BY-4.0": ("Creative Commons Attribution 4.0 International",
                  "https://creativecommons.org/licenses/by/4.0/"),
    "CC-BY-SA-4.0": ("Creative Commons Attribution-ShareAlike 4.0 International",
                     "https://creativecommons.org/licenses/by-sa/4.0/"),
    "CC-BY-SA-3.0": ("Creative Commons Attribution-ShareAlike 3.0 Unported",
                     "https://creativecommons.org/licenses/by-sa/3.0/"),
    "CC0-1.0": ("Creative Commons CC0 1.0 Universal (public domain dedication)",
                "https://creativecommons.org/publicdomain/zero/1.0/"),
}

SPLITS: tuple[str, ...] = ("train", "val", "test")


@dataclass(frozen=True)
class PhotoSpec:
    """One selected photograph: where it is in which package, and what we call and know of it."""

    package: str
    original: str  # file name under BACKGROUNDS
    scene: str  # lowercase, underscores; every file of one scene shares it
    content: str  # one line: what the photo shows
    tag: str  # landscape, close-up, indoor, backlit, water, animal, ...
    author: str  # as the package's copyright file names the author
    licence: str  # SPDX identifier, as the package's copyright file gives it
    split: str  # train, val or test (by scene)

    @property
    def file(self) -> str:
        """The output file name."""
        return f"{self.scene}.jpg"


#: The kept photographs. Split by scene; the test scenes are chosen for variety (a landscape with
#: snow and sky, a saturated close-up in hard light, a warm indoor room, the sun in the frame, a dark
#: shaded stream, dark animals against a bright wall), not for being easy.
PHOTOS: tuple[PhotoSpec, ...] = (
    # --- test ---
    PhotoSpec("lomiri-wallpapers-16.04", "picosdeeuropa_by_Aitzol_Berasategi.jpg", "picos_trail",
              "A path over a mountain pasture towards rocky peaks with snow patches (Picos de Europa), "
              "blue sky and a bright cloud", "landscape", "Aitzol Berasategi", "CC-BY-4.0", "test"),
    PhotoSpec("lomiri-wallpapers-16.04", "Picture_0B_by_freespace.jpg", "fig_red_bowl",
              "Half a fig in a red bowl on grey concrete, in hard sunlight with a deep shadow",
              "close-up", 'Trevor "Freespace"', "CC-BY-4.0", "test"),
    PhotoSpec("lomiri-wallpapers-16.04", "Wine_by_Jakkub_Mede.jpg", "wine_room",
              "A room with a djembe on a beanbag, a loudspeaker and a wine bottle, glass and coffee "
              "grinder on a pallet table, warm light", "indoor", "Jakub Mede", "CC-BY-4.0", "test"),
    PhotoSpec("lomiri-wallpapers-16.04", "sunset_by_Aitzol_Berasategi.jpg", "summit_sunset",
              "The low sun over mountain ridges, seen from a grassy summit with a stone summit marker",
              "backlit", "Aitzol Berasategi", "CC-BY-4.0", "test"),
    PhotoSpec("lomiri-wallpapers-16.04", "life_by_Aitzol_Berasategi.jpg", "forest_stream",
              "A small stream cascading over limestone rocks in a shaded forest", "water",
              "Aitzol Berasategi", "CC-BY-4.0", "test"),
    PhotoSpec("lomiri-wallpapers-16.04", "friends_by_Aitzol_Berasategi.jpg", "dogs_door",
              "Two spaniels looking out of the door of a white wooden cabin", "animal",
              "Aitzol Berasategi", "CC-BY-4.0", "test"),
    # --- validation ---
    PhotoSpec("lomiri-wallpapers-16.04", "seeding_by_Clements_Engelhardt.jpg", "dandelions",
              "Dandelion seed heads in a meadow, backlit by the low sun", "backlit",
              "Clemens Engelhardt", "CC0-1.0", "val"),
    PhotoSpec("lomiri-wallpapers-16.04", "greentock_by_Peter_Nerlich.jpg", "wall_clock",
              "A white wall clock seen at an angle, lit from behind with a yellow-green glow",
              "indoor", "Peter Nerlich", "CC-BY-SA-4.0", "val"),
    PhotoSpec("lomiri-wallpapers-20.04", "Kleiber_by_Lukas_Baubkus.jpg", "nuthatch_trunk",
              "A nuthatch on a tree trunk in front of a blurred bright background", "animal",
              "Lukas Baubkus", "CC-BY-SA-3.0", "val"),
    # --- train ---
    PhotoSpec("lomiri-wallpapers-16.04", "Bridge_by_Sander_Klootwijk.jpg", "bridge_stays",
              "Cable stays of a bridge against a blue sky with clouds, tidal flats of an estuary below",
              "landscape", "Sander Klootwijk", "CC-BY-SA-4.0", "train"),
    PhotoSpec("lomiri-wallpapers-16.04", "aitzgorri_by_Aitzol_Berasategi.jpg", "aitzgorri_autumn",
              "Autumn larch forest and a green meadow below a limestone ridge (Aitzgorri)",
              "landscape", "Aitzol Berasategi", "CC-BY-4.0", "train"),
    PhotoSpec("lomiri-wallpapers-16.04", "Dragonfly_by_Bolly.jpg", "dragonfly_twig",
              "A dragonfly on a bare twig in front of sunlit leaves and a blue sky", "close-up",
              "Bolly", "CC-BY-SA-4.0", "train"),
    PhotoSpec("lomiri-wallpapers-16.04", "Picture_1A_by_freespace.jpg", "paint_brushes",
              "Worn paint brushes with blue, green, pink and yellow bristles", "close-up",
              'Trevor "Freespace"', "CC-BY-4.0", "train"),
    PhotoSpec("lomiri-wallpapers-16.04", "free_by_Peter_Nerlich.jpg", "bird_lamp",
              "A carved wooden bird hanging under a ceiling lamp with glowing globes", "indoor",
              "Peter Nerlich", "CC-BY-SA-4.0", "train"),
)

#: Every other image of the three packages, and why it is not a photograph we can use.
EXCLUDED: dict[tuple[str, str], str] = {
    ("lomiri-wallpapers-16.04", "analogpattern_by_Peter_Nerlich.jpg"):
        "abstract texture under a green-to-purple colour overlay (heavily processed)",
    ("lomiri-wallpapers-16.04", "umang_by_Abhishek_Mudgal.jpg"): "abstract colour gradient (render)",
    ("lomiri-wallpapers-20.04", "Fossa_by_Jasper_Roks.jpg"): "abstract vector art",
    ("lomiri-wallpapers-20.04", "Infinite-Sea_by_Aury88.jpg"):
        "digital composite: Milky Way over a synthetic gradient and reflected sea",
    ("lomiri-wallpapers-20.04", "Painting-Colors_by__herobrine7gamer.jpg"): "flat-colour illustration",
    ("ukui-wallpapers", "2004default.jpg"): "3D render of a ribbon",
    ("ukui-wallpapers", "calla.png"): "illustration",
    ("ukui-wallpapers", "city.png"): "flat vector art",
    ("ukui-wallpapers", "desert.png"): "flat vector art",
    ("ukui-wallpapers", "firstgeneration.jpg"): "illustration (mascot)",
    ("ukui-wallpapers", "fluent-color.png"): "abstract gradient",
    ("ukui-wallpapers", "focal-ubuntukylin.png"): "graphic with a logo",
    ("ukui-wallpapers", "goldfish.png"): "illustration",
    ("ukui-wallpapers", "rhythm.jpg"): "3D render",
    ("ukui-wallpapers", "rollpaper.png"): "flat vector art",
    ("ukui-wallpapers", "string.jpg"): "3D render",
    ("ukui-wallpapers", "the-mouse.jpg"): "illustration",
}


# ----------------------------------------------------------------------------------------------
# Packages
# ----------------------------------------------------------------------------------------------


def download_debs(deb_dir: Path) -> None:
    """Fetch the three packages into ``deb_dir`` with ``apt-get download``."""
    deb_dir.mkdir(parents=True, exist_ok=True)
    subprocess.run(["apt-get", "download", *PACKAGES], cwd=deb_dir, check=True)


def find_deb(deb_dir: Path, package: str) -> Path:
    """The one ``<package>_*.deb`` file in ``deb_dir``."""
    found = sorted(deb_dir.glob(f"{package}_*.deb"))
    if not found:
        raise SystemExit(f"{deb_dir}: no {package}_*.deb (pass --download to fetch it)")
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise SystemExit(f"{deb_dir}: several .deb files for {package} ({names}); keep one")
    return found[0]


def deb_version(deb: Path) -> str:
    """The package version recorded in the .deb's control file."""
    out = subprocess.run(["dpkg-deb", "--field", str(deb), "Version"], check=True,
                         capture_output=True, text=True)
    return out.stdout.strip()


def extract_deb(deb: Path, dest: Path) -> None:
    """Unpack the files of ``deb`` under ``dest`` (as ``dpkg -x`` does)."""
    dest.mkdir(parents=True, exist_ok=True)
    subprocess.run(["dpkg-deb", "--extract", str(deb), str(dest)], check=True)


def parse_copyright(text: str) -> dict[str, tuple[str, str]]:
    """Map each file name of a machine-readable Debian copyright file to (copyright, licence).

    Only the base names of the ``Files:`` patterns are kept (the source tree's folders are not the
    installed ones); wildcard patterns are skipped.
    """
    entries: dict[str, tuple[str, str]] = {}
    for paragraph in text.split("\n\n"):
        fields: dict[str, list[str]] = {}
        key: Optional[str] = None
        for line in paragraph.splitlines():
            if line[:1] in (" ", "\t"):
                if key is not None:
                    fields[key].append(line.strip())
            elif ":" in line:
                key, value = line.split(":", 1)
                fields[key] = [value.strip()] if value.strip() else []
        if "Files" not in fields or "License" not in fields:
            continue
        copyright_ = " ".join(fields.get("Copyright", []))
        licence = fields["License"][0] if fields["License"] else ""
        for pattern in " ".join(fields["Files"]).split():
            if "*" not in pattern:
                entries[pattern.rsplit("/", 1)[-1]] = (copyright_, licence)
    return entries


# ----------------------------------------------------------------------------------------------
# Images
# ----------------------------------------------------------------------------------------------


def to_srgb(image: Image.Image) -> Image.Image:
    """Apply the EXIF orientation, convert an embedded colour profile to sRGB, return 8-bit RGB."""
    image = ImageOps.exif_transpose(image)
    icc = image.info.get("icc_profile")
    if icc:
        from PIL import ImageCms  # only needed for a photo with an embedded profile

        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        image = ImageCms.profileToProfile(image, source, ImageCms.createProfile("sRGB"), outputMode="RGB")
    return image.convert("RGB")


def downsize(image: Image.Image, long_side: int) -> Image.Image:
    """Resize so that the longer side is ``long_side`` (Lanczos); smaller images are kept as they are."""
    width, height = image.size
    scale = long_side / max(width, height)
    if scale >= 1:
        return image
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS)


def sha256(path: Path) -> str:
    """The SHA-256 of a file, hex."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ----------------------------------------------------------------------------------------------
# Outputs
# ----------------------------------------------------------------------------------------------


def check_selection() -> None:
    """Refuse a selection with a scene in two splits, a duplicate file, or an unknown split/licence."""
    split_of: dict[str, str] = {}
    files: set[str] = set()
    for spec in PHOTOS:
        if spec.split not in SPLITS:
            raise SystemExit(f"{spec.original}: unknown split {spec.split!r}")
        if spec.licence not in LICENCES:
            raise SystemExit(f"{spec.original}: unknown licence {spec.licence!r}")
        if split_of.setdefault(spec.scene, spec.split) != spec.split:
            raise SystemExit(f"scene {spec.scene!r} is in two splits")
        if spec.file in files:
            raise SystemExit(f"two photos would be written to {spec.file}")
        files.add(spec.file)
        if (spec.package, spec.original) in EXCLUDED:
            raise SystemExit(f"{spec.original} is both selected and excluded")


def attribution_markdown(records: list[dict[str, object]], versions: dict[str, str], long_side: int,
                         quality: int) -> str:
    """The text of ATTRIBUTION.md."""
    lines = [
        "# Photographs shipped with expolib: attribution",
        "",
        "These real photographs come from Debian's wallpaper packages "
        + ", ".join(f"`{p}` ({versions[p]})" for p in PACKAGES)
        + ". They are rebuilt from the .deb files by the maintainer script `tools/build_photo_set.py`, "
        "which also writes `photos.json` (the same records with each photo's train / val / test split).",
        "",
        "| File | Scene | Content | Author | Licence | Source package | Original file name |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in records:
        lines.append(
            f"| `{r['file']}` | {r['scene']} | {r['content']} | {r['author']} | "
            f"[{r['licence']}]({r['licence_url']}) | `{r['source_package']}` | `{r['original_file']}` |"
        )
    used = sorted({str(r["licence"]) for r in records})
    lines += [
        "",
        "## Licences",
        "",
        "Each photograph keeps the licence its author gave it, as stated in the source package's "
        "`copyright` file (`/usr/share/doc/<package>/copyright`); expolib's own MIT licence does not "
        "apply to these files. The licences used here are: "
        + "; ".join(f"{LICENCES[k][0]} (`{k}`, <{LICENCES[k][1]}>)" for k in used)
        + ". The photos under a ShareAlike licence (`CC-BY-SA-3.0`, `CC-BY-SA-4.0`) are distributed "
        "here under that same licence, and the `CC0-1.0` photo is in the public domain; its author "
        "is named all the same. The copyright notices exactly as the packages give them (author and "
        "year) are in `photos.json`, field `copyright`.",
        "",
        f"Changes made: every photo was downsized so that its longer side is {long_side} pixels "
        f"(Lanczos resampling), its EXIF orientation was applied, it was converted to 8-bit sRGB and "
        f"re-encoded as JPEG (quality {quality}, no metadata kept). Nothing else was edited: no "
        "cropping, colour or exposure change. The originals are in the packages named above "
        "(upstream: <https://gitlab.com/ubports/development/core/lomiri-wallpapers> and "
        "<https://github.com/ukui/ukui-wallpapers>).",
        "",
        "Not included: the illustrations, renders, gradients and heavily processed images of these "
        "packages, which are not photographs (all "
        + f"{sum(1 for (package, _name) in EXCLUDED if package == 'ukui-wallpapers')} images of "
        "`ukui-wallpapers` are such artwork, so none of its images is shipped); the list and the "
        "reasons are in the script.",
        "",
    ]
    return "\n".join(lines)


def build(deb_dir: Path, out_dir: Path, long_side: int, quality: int, max_total_mb: float) -> int:
    """Unpack the packages, write the photos, ATTRIBUTION.md and photos.json; return the total bytes."""
    check_selection()
    out_dir.mkdir(parents=True, exist_ok=True)
    versions = {package: deb_version(find_deb(deb_dir, package)) for package in PACKAGES}
    records: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="expolib-photos-") as tmp:
        roots: dict[str, Path] = {}
        credits: dict[str, dict[str, tuple[str, str]]] = {}
        for package in PACKAGES:
            root = Path(tmp) / package
            extract_deb(find_deb(deb_dir, package), root)
            roots[package] = root
            credits[package] = parse_copyright(
                (root / "usr/share/doc" / package / "copyright").read_text(encoding="utf-8"))
            # Every image must be either selected or excluded, so that a new one is looked at.
            listed = {s.original for s in PHOTOS if s.package == package}
            listed |= {name for (pkg, name) in EXCLUDED if pkg == package}
            for path in sorted((root / BACKGROUNDS).iterdir()):
                if path.is_file() and path.name not in listed:
                    print(f"warning: {package}: {path.name} is neither selected nor excluded; "
                          "look at it and add it to PHOTOS or EXCLUDED", file=sys.stderr)
        for spec in PHOTOS:
            source = roots[spec.package] / BACKGROUNDS / spec.original
            if not source.is_file():
                raise SystemExit(f"{spec.package}: {BACKGROUNDS}/{spec.original} is missing")
            copyright_, licence = credits[spec.package].get(spec.original, ("", ""))
            if licence != spec.licence or spec.author.lower() not in copyright_.lower():
                raise SystemExit(
                    f"{spec.original}: the copyright file says {copyright_!r}, {licence!r}; "
                    f"the script says {spec.author!r}, {spec.licence!r}"
                )
            with Image.open(source) as image:
                original_size = image.size
                photo = downsize(to_srgb(image), long_side)
            target = out_dir / spec.file
            photo.save(target, "JPEG", quality=quality, subsampling=0, optimize=True)
            record = asdict(spec)
            del record["package"], record["original"]
            records.append({
                "file": spec.file,
                **record,
                "licence_url": LICENCES[spec.licence][1],
                "copyright": copyright_,
                "source_package": spec.package,
                "package_version": versions[spec.package],
                "original_file": spec.original,
                "original_path": f"{BACKGROUNDS}/{spec.original}",
                "original_size": list(original_size),
                "original_sha256": sha256(source),
                "size": list(photo.size),
            })
            print(f"{spec.file}: {original_size[0]}x{original_size[1]} -> {photo.size[0]}x{photo.size[1]}, "
                  f"{target.stat().st_size / 1e3:.0f} kB")
    (out_dir / "photos.json").write_text(json.dumps(records, indent=2, ensure_ascii=False) + "\n",
                                         encoding="utf-8")
    (out_dir / "ATTRIBUTION.md").write_text(attribution_markdown(records, versions, long_side, quality),
                                            encoding="utf-8")
    expected = {spec.file for spec in PHOTOS}
    for stale in sorted(out_dir.glob("*.jpg")):
        if stale.name not in expected:
            print(f"warning: {stale.name} is not part of the set; remove it", file=sys.stderr)
    total = sum(p.stat().st_size for p in out_dir.iterdir() if p.is_file())
    print(f"{len(records)} photos, {total / 1e6:.2f} MB in all")
    if total > max_total_mb * 1e6:
        raise SystemExit(f"the set is {total / 1e6:.1f} MB, over {max_total_mb} MB: lower --quality")
    return total


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    """The command line."""
    repo = Path(__file__).resolve().parents[1]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--debs", type=Path, required=True,
                        help="folder holding the three .deb files (or receiving them with --download)")
    parser.add_argument("--download", action="store_true",
                        help="fetch the packages into --debs first with `apt-get download`")
    parser.add_argument("--out", type=Path, default=repo / "expolib" / "photos",
                        help="output folder (the package's photos folder)")
    parser.add_argument("--long-side", type=int, default=1024, help="longer side of the output, pixels")
    parser.add_argument("--quality", type=int, default=90, help="JPEG quality")
    parser.add_argument("--max-total-mb", type=float, default=20.0,
                        help="refuse a set larger than this many megabytes")
    return parser.parse_args(argv)


def main(argv: Optional[list[str]] = None) -> None:
    """Entry point."""
    args = parse_args(argv)
    if args.download:
        download_debs(args.debs)
    build(args.debs, args.out, args.long_side, args.quality, args.max_total_mb)


if __name__ == "__main__":
    main()
