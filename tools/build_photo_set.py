#!/usr/bin/env python3
"""Rebuild expolib's shipped real photographs (``expolib/photos/``) from three Debian packages.

This is a maintainer script, not part of the library. The photos come from the Debian packages
``lomiri-wallpapers-16.04``, ``lomiri-wallpapers-20.04`` and ``plasma-workspace-wallpapers``: the
script unpacks the ``.deb`` files, takes the real photographs that ``photo_selection.PHOTOS`` lists
(the illustrations, renders, gradients and heavily processed images in ``photo_selection.EXCLUDED``
are left out), checks each photo's author and licence against what the package says (the lomiri
packages' ``copyright`` file, the plasma wallpaper's ``metadata.json``), downsizes it and writes:

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
import configparser
import hashlib
import io
import json
import subprocess
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

from photo_selection import (
    COPYRIGHT_LICENCES,
    EXCLUDED,
    IMAGE_ROOTS,
    LICENCES,
    METADATA_LICENCES,
    PACKAGES,
    PHOTOS,
    SPLITS,
    PhotoSpec,
)
from PIL import Image, ImageOps

#: Where each package's sources are kept upstream.
UPSTREAMS: tuple[str, ...] = ("https://gitlab.com/ubports/development/core/lomiri-wallpapers",
                              "https://invent.kde.org/plasma/plasma-workspace-wallpapers")

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
    installed ones); wildcard patterns are skipped, except ``*`` itself (the whole package).
    """
    entries: dict[str, tuple[str, str]] = {}
    for paragraph in text.split("\n\n"):
        fields: dict[str, list[str]] = {}
        key: str | None = None
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
            if pattern == "*" or "*" not in pattern:
                entries[pattern.rsplit("/", 1)[-1]] = (copyright_, licence)
    return entries


def read_metadata(folder: Path) -> tuple[list[str], str]:
    """A plasma wallpaper's authors and licence statement, from metadata.json or metadata.desktop."""
    if (folder / "metadata.json").is_file():
        plugin = json.loads((folder / "metadata.json").read_text(encoding="utf-8"))["KPlugin"]
        return [a["Name"] for a in plugin.get("Authors", [])], str(plugin.get("License", ""))
    if (folder / "metadata.desktop").is_file():
        # The desktop-entry format is an INI file: the standard library reads it.
        parser = configparser.ConfigParser(interpolation=None, strict=False)
        parser.optionxform = str  # type: ignore[assignment,method-assign]  # keep the keys' case
        parser.read_string((folder / "metadata.desktop").read_text(encoding="utf-8"))
        entry = parser["Desktop Entry"]
        return [entry.get("X-KDE-PluginInfo-Author", "")], entry.get("X-KDE-PluginInfo-License", "")
    raise SystemExit(f"{folder}: no metadata.json or metadata.desktop")


def credit(spec: PhotoSpec, root: Path, copyrights: dict[str, tuple[str, str]]) -> str:
    """Check the photo's author and licence against its package; return the copyright notice.

    A lomiri photo is credited by its own paragraph of the copyright file. A plasma wallpaper is
    credited by its metadata; the package's copyright file covers all files (``Files: *``) with
    one statement, which the notice quotes too.
    """
    folder = root / IMAGE_ROOTS[spec.package] / spec.unit
    if folder.is_dir():
        authors, stated = read_metadata(folder)
        licence = METADATA_LICENCES.get(stated, "")
        known = spec.author in authors
        package_copyright, package_licence = copyrights.get("*", ("", ""))
        notice = (f"{', '.join(authors)} (the wallpaper's metadata; License: {stated}); the package's "
                  f"copyright file, for all its files: Copyright: {package_copyright}; "
                  f"License: {package_licence}")
        if package_licence and package_licence not in COPYRIGHT_LICENCES:
            raise SystemExit(f"{spec.package}: unknown licence {package_licence!r} in its copyright file")
    else:
        notice, stated = copyrights.get(spec.original, ("", ""))
        licence, known = stated, spec.author.lower() in notice.lower()
    if licence != spec.licence or not known:
        raise SystemExit(f"{spec.original}: the package says {notice!r}, {stated!r}; "
                         f"the selection says {spec.author!r}, {spec.licence!r}")
    return notice


def check_listing(package: str, root: Path) -> None:
    """Warn about an image nobody looked at: every entry must be selected or excluded."""
    selected = {s.unit: s for s in PHOTOS if s.package == package}
    listed = set(selected) | {name for (pkg, name) in EXCLUDED if pkg == package}
    for path in sorted((root / IMAGE_ROOTS[package]).iterdir()):
        if path.name not in listed:
            print(f"warning: {package}: {path.name} is neither selected nor excluded; "
                  "look at it and add it to PHOTOS or EXCLUDED", file=sys.stderr)
        elif path.is_dir() and path.name in selected:
            chosen = (root / IMAGE_ROOTS[package] / selected[path.name].original).resolve()
            others = {p.resolve() for p in path.glob("contents/images*/*") if p.is_file()} - {chosen}
            for other in sorted(others):
                print(f"warning: {package}: {other.relative_to(path.resolve())} is another image "
                      f"of the selected {path.name}", file=sys.stderr)


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
        if spec.package not in PACKAGES:
            raise SystemExit(f"{spec.original}: unknown package {spec.package!r}")
        if spec.split not in SPLITS:
            raise SystemExit(f"{spec.original}: unknown split {spec.split!r}")
        if spec.licence not in LICENCES:
            raise SystemExit(f"{spec.original}: unknown licence {spec.licence!r}")
        if split_of.setdefault(spec.scene, spec.split) != spec.split:
            raise SystemExit(f"scene {spec.scene!r} is in two splits")
        if spec.file in files:
            raise SystemExit(f"two photos would be written to {spec.file}")
        files.add(spec.file)
        if (spec.package, spec.unit) in EXCLUDED:
            raise SystemExit(f"{spec.original} is both selected and excluded")


def licence_text(spdx: str) -> str:
    """A licence's name, identifier and address, for ATTRIBUTION.md."""
    return f"{LICENCES[spdx][0]} (`{spdx}`, <{LICENCES[spdx][1]}>)"


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
        "| File | Scene | Content | Author | Licence | Source package | Original file |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in records:
        lines.append(
            f"| `{r['file']}` | {r['scene']} | {r['content']} | {r['author']} | "
            f"[{r['licence']}]({r['licence_url']}) | `{r['source_package']}` | `{r['original_file']}` |"
        )
    used = sorted({str(r["licence"]) for r in records})
    share_alike = [k for k in used if k.startswith("CC-BY-SA")]
    lines += [
        "",
        "## Licences",
        "",
        "Each photograph keeps the licence its author gave it, as the source package states it; "
        "expolib's own MIT licence does not apply to these files. The licences used here are: "
        + "; ".join(licence_text(k) for k in used) + ".",
        "",
        "For the photos of the lomiri packages, author, year and licence are those of the photo's own "
        "paragraph in the package's `copyright` file (`/usr/share/doc/<package>/copyright`). "
        + (f"The photos under a ShareAlike licence ({', '.join(f'`{k}`' for k in share_alike)}) "
           "are distributed here under that same licence. " if share_alike else "")
        + ("The `CC0-1.0` photo is in the public domain; its author is named all the same. "
           if "CC0-1.0" in used else "")
        + "The copyright notices exactly as the packages give them are in `photos.json`, field "
        "`copyright`.",
        "",
        "For the photos of `plasma-workspace-wallpapers`, author and licence are those the "
        "wallpaper's own `metadata.json` gives (`KPlugin`, `Authors` and `License`; the licence is "
        "\"LGPLv3\" for every photo shipped here, read as `LGPL-3.0-only` since no later version is "
        "named). These photos are distributed here under that licence; the LGPL v3 adds permissions "
        "to the GNU General Public License v3.0 (<https://www.gnu.org/licenses/gpl-3.0.html>), whose "
        "terms it refers to. The package's `copyright` file states one licence for all its files "
        "instead (`Files: *`, `Copyright: 2014 KDE Visual Design Group http://vdesign.kde.org/`, "
        f"`License: GPL-2+`, that is {licence_text('GPL-2.0-or-later')}); both statements are quoted "
        "in `photos.json`, field `copyright`. The unmodified originals (their path in the package and "
        "their SHA-256 are in `photos.json`) and the script that derives these copies from them are "
        "the source of these files.",
        "",
        f"Changes made: every photo was downsized so that its longer side is {long_side} pixels "
        f"(Lanczos resampling), its EXIF orientation was applied, it was converted to 8-bit sRGB and "
        f"re-encoded as JPEG (quality {quality}, no metadata kept). Nothing else was edited: no "
        "cropping, colour or exposure change. The originals are in the packages named above "
        "(upstream: " + " and ".join(f"<{u}>" for u in UPSTREAMS) + ").",
        "",
        "## Splits",
        "",
        "The photos are split by scene into training, validation and test photos (`split` in "
        "`photos.json`). The test photos were chosen for the variety of their content and light "
        "(" + ", ".join(sorted({str(r["tag"]) for r in records if r["split"] == "test"})) + "), by "
        "looking at them, not by how a model does on them; no setting and no checkpoint is chosen on "
        "them, which is what the validation photos are for.",
        "",
        "Not included: the illustrations, renders, gradients and heavily processed images of these "
        f"packages, which are not real photographs ({len(EXCLUDED)} images or wallpapers); the list "
        "and the reasons are in `tools/photo_selection.py`.",
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
        copyrights: dict[str, dict[str, tuple[str, str]]] = {}
        for package in PACKAGES:
            root = Path(tmp) / package
            extract_deb(find_deb(deb_dir, package), root)
            roots[package] = root
            copyrights[package] = parse_copyright(
                (root / "usr/share/doc" / package / "copyright").read_text(encoding="utf-8"))
            check_listing(package, root)
        for spec in PHOTOS:
            source = roots[spec.package] / IMAGE_ROOTS[spec.package] / spec.original
            if not source.is_file():
                raise SystemExit(f"{spec.package}: {IMAGE_ROOTS[spec.package]}/{spec.original} is missing")
            notice = credit(spec, roots[spec.package], copyrights[spec.package])
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
                "copyright": notice,
                "source_package": spec.package,
                "package_version": versions[spec.package],
                "original_file": spec.original,
                "original_path": f"{IMAGE_ROOTS[spec.package]}/{spec.original}",
                "original_size": list(original_size),
                "original_sha256": sha256(source.resolve()),
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


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
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


def main(argv: list[str] | None = None) -> None:
    """Entry point."""
    args = parse_args(argv)
    if args.download:
        download_debs(args.debs)
    build(args.debs, args.out, args.long_side, args.quality, args.max_total_mb)


if __name__ == "__main__":
    main()
