"""evaluate(): the table's structure, per-EV counts and values, for any corrector; the CLI."""

import argparse
import math

import pytest
import torch
from torch import nn

from expolib.cli.evaluate import add_cli
from expolib.data.photos import embedded_photos
from expolib.evaluation.baselines import Identity
from expolib.evaluation.corrector import run_corrector
from expolib.evaluation.metrics import METRICS
from expolib.evaluation.protocol import GOOD_PSNR, EvaluationTable, compare, ev0_table, evaluate

EVS = (-1.0, 0.0, 1.0)


def _tiny_dataset() -> list[dict]:
    """Two scenes x three EVs; at EV 0 the input equals the target, elsewhere it is off by 0.1 (in [0, 1])."""
    items = []
    g = torch.Generator().manual_seed(0)
    for scene in ("a", "b"):
        target = torch.rand(3, 24, 32, generator=g) * 1.2 - 0.6  # normalised, away from the clip limits
        for ev in EVS:
            items.append({"input": target + 0.2 * ev, "target": target, "ev": ev, "scene": scene})
    return items


def test_identity_table_structure_counts_and_values() -> None:
    table = evaluate(Identity(), _tiny_dataset(), progress=False)
    assert isinstance(table, EvaluationTable) and table.name == "identity"
    assert table.evs == list(EVS)
    assert [table.count(ev) for ev in EVS] == [2, 2, 2] and table.count() == 6
    summary = table.summary()
    assert [row["ev"] for row in summary] == ["-1.0", "0.0", "+1.0", "EV ≠ 0"]  # no mean with EV 0
    assert [row["count"] for row in summary] == [2, 2, 2, 4]
    assert all(set(METRICS) | {"count", "ev"} == set(row) for row in summary)
    assert math.isinf(table.mean("psnr", 0.0)) and table.mean("ssim", 0.0) == pytest.approx(1.0)
    # An error of 0.2 in [-1, 1] is 0.1 in [0, 1]: 20 dB.
    assert table.mean("psnr", -1.0) == pytest.approx(20.0, abs=1e-4)
    assert table.mean("delta_e00", 1.0) > 0
    markdown = table.to_markdown()
    # title, blank, header, rule, 4 rows (3 EVs, EV ≠ 0), a blank line and EV 0 on its own
    assert markdown.count("\n") == 1 + 1 + 1 + 4 + 2
    assert "| +1.0 |" in markdown and "inf" in markdown
    assert markdown.endswith("EV 0 (do no harm): 2 of 2 photos returned above 30 dB; median inf dB, "
                             "worst inf dB.")
    assert table.mean("psnr", "misexposed") == pytest.approx(20.0, abs=1e-4)
    assert table._repr_html_().startswith("<table>") and table._repr_html_().count("<tr>") == 5
    assert "2 of 2 photos" in table._repr_html_()
    best, worst = table.ranked("psnr")[0], table.ranked("psnr")[-1]
    assert best["ev"] == 0.0 and worst["ev"] != 0.0


def test_a_network_is_run_in_eval_mode_without_gradients_and_restored() -> None:
    class Recorder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.scale = nn.Parameter(torch.ones(()))
            self.seen: list[tuple[bool, bool, int]] = []

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.seen.append((self.training, torch.is_grad_enabled(), x.shape[0]))
            return x * self.scale

    net = Recorder().train()
    table = evaluate(net, _tiny_dataset(), max_items=4, progress=False)
    assert table.count() == 4 and table.name == "Recorder"
    assert net.seen == [(False, False, 1)] * 4
    assert net.training  # the caller's mode is given back


def test_plain_functions_are_correctors_too_and_shape_changes_are_refused() -> None:
    table = evaluate(lambda x: torch.zeros_like(x), _tiny_dataset(), name="grey", progress=False)
    assert table.name == "grey" and table.mean("psnr") < 20
    with pytest.raises(ValueError, match="shape"):
        run_corrector(lambda x: x[..., :-1], torch.zeros(3, 8, 8))


def _ev0_dataset() -> list[dict]:
    """Four scenes; at EV 0 the input is off by 0 (inf dB), 0.01, 0.05 and 0.1 in [0, 1] (40, 26.02
    and 20 dB); at EV -1 all are off by 0.1 (20 dB)."""
    items = []
    g = torch.Generator().manual_seed(1)
    for scene, offset in zip("abcd", (0.0, 0.02, 0.1, 0.2)):  # offsets in [-1, 1]: half that in [0, 1]
        target = torch.rand(3, 16, 16, generator=g) * 1.2 - 0.6
        items.append({"input": target + offset, "target": target, "ev": 0.0, "scene": scene})
        items.append({"input": target - 0.2, "target": target, "ev": -1.0, "scene": scene})
    return items


def test_ev0_is_summarised_on_its_own_and_never_averaged_with_the_other_levels() -> None:
    table = evaluate(Identity(), _ev0_dataset(), progress=False)
    summary = table.ev0()
    assert summary is not None and summary["count"] == 4
    assert math.isinf(summary["psnr"])  # the photo returned unchanged counts as it is: infinite
    assert summary["median_psnr"] == pytest.approx((40.0 + 26.0206) / 2, abs=1e-3)
    assert summary["worst_psnr"] == pytest.approx(20.0, abs=1e-3)
    assert summary["above"] == 2 and summary["share_above"] == pytest.approx(0.5) and GOOD_PSNR == 30.0
    assert table.ev0(threshold=25.0)["above"] == 3 and table.ev0(threshold=50.0)["above"] == 1
    assert summary["delta_e00"] == pytest.approx(table.mean("delta_e00", 0.0)) and "ssim" in summary
    assert table.mean("psnr", "misexposed") == pytest.approx(20.0, abs=1e-3)  # EV 0 stays out of it
    finite = evaluate(Identity(), [i for i in _ev0_dataset() if i["scene"] != "a"], progress=False).ev0()
    assert finite["psnr"] == pytest.approx((40.0 + 26.0206 + 20.0) / 3, abs=1e-3)
    assert finite["median_psnr"] == pytest.approx(26.0206, abs=1e-3) and finite["share_above"] == 1 / 3
    assert "2 of 4 photos returned above 30 dB; median 33.01 dB, worst 20.00 dB" in table.to_markdown()
    without_ev0 = evaluate(Identity(), [i for i in _ev0_dataset() if i["ev"] != 0], progress=False)
    assert without_ev0.ev0() is None and "EV 0" not in without_ev0.to_markdown()


def test_ev0_table_has_a_row_per_corrector_with_the_share_above_30_db() -> None:
    data = _ev0_dataset()
    tables = {"identity": evaluate(Identity(), data, progress=False),
              "grey": evaluate(lambda x: torch.zeros_like(x), data, progress=False)}
    table = ev0_table(tables)
    assert table.header[:5] == ["method", "photos", "PSNR mean", "median", "worst"]
    assert "> 30 dB" in table.header
    assert [row[0] for row in table.rows] == ["identity", "grey"]
    assert table.rows[0][5] == "2/4 (50%)" and table.rows[0][4] == pytest.approx(20.0, abs=1e-3)
    assert table.rows[1][5] == "0/4 (0%)"
    assert "| identity | 4 | inf | 33.01 | 20.00 | 2/4 (50%) |" in table.to_markdown()
    unknown = [{**item, "ev": float("nan")} for item in data]
    assert ev0_table({"identity": evaluate(Identity(), unknown, progress=False)}).rows == []


def test_compare_puts_correctors_side_by_side() -> None:
    data = _tiny_dataset()
    tables = {"identity": evaluate(Identity(), data, progress=False),
              "grey": evaluate(lambda x: torch.zeros_like(x), data, progress=False)}
    table = compare(tables, "ssim")
    assert table.header == ["method", "EV -1.0", "EV 0.0", "EV +1.0", "EV ≠ 0"]
    assert [row[0] for row in table.rows] == ["identity", "grey"]
    assert table.rows[0][2] == pytest.approx(1.0)


def _cli(argv: list[str]) -> int:
    """Run ``python -m expolib`` with only this module's subcommand (the others are tested elsewhere)."""
    parser = argparse.ArgumentParser()
    add_cli(parser.add_subparsers())
    args = parser.parse_args(argv)
    return args.func(args)


@pytest.mark.slow
def test_cli_evaluates_baselines_on_the_embedded_test_photos(capsys: pytest.CaptureFixture[str]) -> None:
    status = _cli(["evaluate", "--no-model", "--baselines", "identity,report3x3", "--side", "48", "--quiet"])
    out = capsys.readouterr().out
    assert status == 0
    items = len(embedded_photos("test")) * 5  # every test photo at five EVs
    assert out.count(f"{items} items") == 3  # the book's camera, the held-out one and the film response
    assert "held out from training" in out and "film-like" in out
    assert "| identity |" in out and "| report3x3 |" in out and "PSNR" in out and "ΔE00" in out
    assert "checkerboard" in out and "| all |" not in out
    assert _cli(["evaluate", "--no-model", "--baselines", "nonsense", "--quiet"]) == 2


def test_cli_prints_ev0_on_its_own_auto_levels_and_the_bound_last(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["evaluate", "--no-model", "--baselines", "identity,autolevels", "--side", "32", "--quiet",
            "--camera", "film"]
    assert _cli(argv) == 0
    out = capsys.readouterr().out
    photos = len(embedded_photos("test"))
    assert out.count(" items") == 1 and "film-like" in out
    ev0, rest = out.split("**PSNR (dB) ↑**")
    assert "EV 0: well-exposed photos" in ev0 and "| method | photos | PSNR mean | median | worst |" in ev0
    assert f"| identity | {photos} | inf | inf | inf | {photos}/{photos} (100%) | 0.00 |" in ev0
    bound = "| bound: a curve per channel fitted to the truth |"
    sections = [part for part in (ev0, *rest.split("**")) if "|" in part]
    assert len(sections) == 5  # the EV 0 table and one table per metric
    for section in sections:
        lines = [line for line in section.splitlines() if line.startswith("| ")]
        assert lines[-1].startswith(bound), section  # the bound is the last row of every table
        assert any(line.startswith("| autolevels |") for line in lines)
    assert "not a method to beat" in out
    assert _cli([*argv, "--no-bound"]) == 0
    assert "bound" not in capsys.readouterr().out
    for camera in ("plain", "both"):
        assert _cli(["evaluate", "--no-model", "--baselines", "identity", "--side", "32", "--quiet",
                     "--no-bound", "--camera", camera]) == 0
        assert capsys.readouterr().out.count(" items") == {"plain": 1, "both": 2}[camera]


def test_cli_runs_the_model_as_correct_does_with_per_scene_tables(
    tmp_path, capsys: pytest.CaptureFixture[str]
) -> None:
    from expolib.networks.modelfile import save_generator
    from expolib.networks.unet import UNetConfig, UNetGenerator

    weights = save_generator(UNetGenerator(UNetConfig(ngf=4, depth=3, residual=True)), tmp_path / "g.safetensors",
                             working_side=32)
    argv = ["evaluate", "--weights", str(weights), "--baselines", "", "--side", "40", "--quiet",
            "--camera", "plain", "--per-scene"]
    assert _cli(argv) == 0
    out = capsys.readouterr().out
    assert "model (guided, 32 px)" in out and "per scene" in out
    for scene in embedded_photos("test"):
        assert f"| {scene[0]} |" in out
    assert _cli([*argv[:-3], "--mode", "direct", "--camera", "held-out"]) == 0
    out = capsys.readouterr().out
    assert "model (direct)" in out and out.count(" items") == 1


def test_cli_evaluates_a_folder_of_pairs_and_reports_a_bad_one(
    tmp_path, capsys: pytest.CaptureFixture[str]
) -> None:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(1)
    for folder in ("in", "gt"):
        (tmp_path / folder).mkdir()
        for name in ("a", "b"):
            Image.fromarray(rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(tmp_path / folder / f"{name}.png")
    argv = ["evaluate", "--no-model", "--baselines", "identity", "--quiet", "--side", "24", "--pairs",
            str(tmp_path / "in"), str(tmp_path / "gt")]
    assert _cli(argv) == 0
    out = capsys.readouterr().out
    assert "2 items" in out and "EV unknown" in out
    (tmp_path / "in" / "c.png").write_bytes((tmp_path / "in" / "a.png").read_bytes())  # no ground truth
    status = _cli(argv)
    err = capsys.readouterr().err
    assert status == 2 and err.startswith("error:") and "c.png" in err and err.count("\n") == 1
    assert _cli([*argv[:-3], "--pairs", str(tmp_path / "missing"), str(tmp_path / "gt")]) == 2
    assert "missing" in capsys.readouterr().err


@pytest.fixture(scope="module")
def shipped_on_the_test_split() -> dict[str, dict[str, EvaluationTable]]:
    """The shipped model, run as `correct` runs it, and every baseline on the test photos (long side
    256 px: small enough for a quick test), rendered by the book's camera and by the held-out one."""
    from expolib.data.rendered import EmbeddedPairs
    from expolib.evaluation.baselines import BASELINES
    from expolib.evaluation.infer import PhotoCorrector
    from expolib.imaging.camera import HELD_OUT_CAMERA
    from expolib.networks.modelfile import load_pretrained

    model = PhotoCorrector(load_pretrained())
    results = {}
    for label, camera in (("plain", None), ("held-out", HELD_OUT_CAMERA)):
        dataset = EmbeddedPairs(split="test", size=None, augment=False, max_side=256, camera=camera)
        items = [dataset[i] for i in range(len(dataset))]  # render once, evaluate many times
        tables = {"model": evaluate(model, items, metrics=("psnr", "ssim"), progress=False)}
        for name, factory in BASELINES.items():
            tables[name] = evaluate(factory(), items, metrics=("psnr", "ssim"), progress=False)
        results[label] = tables
    return results


@pytest.mark.slow
@pytest.mark.parametrize("camera", ["plain", "held-out"])
def test_shipped_model_beats_every_baseline_at_every_misexposed_level(
    shipped_on_the_test_split: dict[str, dict[str, EvaluationTable]], camera: str
) -> None:
    tables = dict(shipped_on_the_test_split[camera])
    model = tables.pop("model")
    assert model.count() == len(embedded_photos("test")) * 5
    misexposed = [ev for ev in model.evs if ev != 0]
    for name, baseline in tables.items():
        for ev in misexposed:
            # a margin above rounding and precision; the closest is auto levels at EV -1 with the
            # held-out camera, 1.0 dB behind
            assert model.mean("psnr", ev) > baseline.mean("psnr", ev) + 0.5, (name, ev)
            # SSIM at every level; the model card lists the one exception: with the held-out camera,
            # auto levels keeps a little more structure at EV -1.5 (0.964 against 0.959).
            exception = camera == "held-out" and name == "autolevels" and ev == -1.5
            if name != "identity" and not exception:  # identity: see the next assertions
                assert model.mean("ssim", ev) > baseline.mean("ssim", ev), (name, ev)
        assert model.mean("ssim", "misexposed") > baseline.mean("ssim", "misexposed"), name
    for ev in misexposed:  # more structure than doing nothing at every EV
        assert model.mean("ssim", ev) > tables["identity"].mean("ssim", ev), ev
    best = max(t.mean("psnr", "misexposed") for t in tables.values())
    assert model.mean("psnr", "misexposed") > best + 3.0  # the model card's claim, with its margin
    # Under-exposure, the hardest case for the previous model, is now where the model is best.
    assert model.mean("psnr", -1.5) > model.mean("psnr", 1.5)


@pytest.mark.slow
def test_shipped_model_returns_most_well_exposed_test_photos_unchanged(
    shipped_on_the_test_split: dict[str, dict[str, EvaluationTable]],
) -> None:
    """Do no harm: the global stage leaves a photo it estimates to be well exposed alone, bit for bit.
    At 256 px it leaves every test photo alone, but two estimates lie within 0.05 EV of the threshold
    (the model card says which), so the test asks for two thirds, not all."""
    import math

    ev0 = shipped_on_the_test_split["plain"]["model"].ev0()
    assert ev0["above"] >= 2 * ev0["count"] / 3  # two thirds of the held-out photos above 30 dB
    assert math.isinf(ev0["median_psnr"])  # ... returned unchanged: the median photo is not touched at all
    assert ev0["ssim"] > shipped_on_the_test_split["plain"]["gamma"].ev0()["ssim"]


def test_the_shipped_generator_is_the_two_stage_recipe() -> None:
    from expolib.networks.ev_estimator import LEAVE_ALONE_EV
    from expolib.networks.modelfile import PRETRAINED_PATH, load_pretrained
    from expolib.networks.two_stage import TwoStageGenerator

    model = load_pretrained()
    assert isinstance(model, TwoStageGenerator)
    assert model.config.unet.residual and model.working_side == 192
    assert model.config.threshold == LEAVE_ALONE_EV  # the threshold chosen on validation
    assert PRETRAINED_PATH.stat().st_size < 10 * 2**20


def test_pairs_of_unknown_exposure_form_one_group(tmp_path) -> None:
    import numpy as np
    from PIL import Image

    from expolib.data.filepairs import PairFolder

    rng = np.random.default_rng(0)
    for name in ("x", "y"):
        for folder in ("in", "out"):
            (tmp_path / folder).mkdir(exist_ok=True)
            photo = rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)
            Image.fromarray(photo).save(tmp_path / folder / f"{name}.png")
    table = evaluate(Identity(), PairFolder(tmp_path / "in", tmp_path / "out"), progress=False)
    assert table.evs == [] and table.count() == 2
    summary = table.summary()
    assert [row["ev"] for row in summary] == ["unknown", "all"]
    assert [row["count"] for row in summary] == [2, 2]
    assert all(math.isfinite(row["psnr"]) for row in summary)
    assert table.mean("psnr", "unknown") == pytest.approx(table.mean("psnr"))
    assert "nan" not in table.to_markdown()
    side_by_side = compare({"identity": table}, "psnr")
    assert side_by_side.header == ["method", "EV unknown", "all"]
    assert all(math.isfinite(v) for v in side_by_side.rows[0][1:])


def test_cli_reports_a_missing_weights_file_in_one_line(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nothing.safetensors"
    status = _cli(["evaluate", "--weights", str(missing), "--baselines", "", "--side", "48", "--quiet"])
    captured = capsys.readouterr()
    assert status == 2
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "nothing.safetensors" in lines[0] and "Traceback" not in captured.err
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"not a safetensors file")
    assert _cli(["evaluate", "--weights", str(broken), "--baselines", "", "--side", "48", "--quiet"]) == 2
    assert "broken.safetensors" in capsys.readouterr().err
