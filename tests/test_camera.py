"""The randomized camera: repeatable under a seed, brighter with EV, EV 0 unchanged, held-out response."""

import numpy as np
import pytest
import torch
from skimage import data as skdata

from expolib.imaging.camera import (
    DEFAULT_FAMILY,
    FILM_CAMERA,
    HELD_OUT_CAMERA,
    PLAIN_CAMERA,
    Camera,
    CameraFamily,
    jpeg_roundtrip,
)
from expolib.imaging.exposure import (
    RESPONSES,
    CameraParams,
    film_curve,
    inverse_film_curve,
    misexpose,
    render_exposure,
    tone_curve,
)


@pytest.fixture(scope="module")
def photo() -> torch.Tensor:
    image = skdata.chelsea()[::4, ::4]  # (75, 113, 3)
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float() / 255.0


def test_plain_camera_is_render_exposure(photo: torch.Tensor) -> None:
    for ev in (-1.5, -1.0, 1.0, 1.5):
        torch.testing.assert_close(PLAIN_CAMERA.render(photo, ev), render_exposure(photo, ev))


def test_tone_curve_defaults_unchanged() -> None:
    y = torch.linspace(0, 3, 50)
    torch.testing.assert_close(tone_curve(y), tone_curve(y, 0.5, 2.0))
    assert not torch.allclose(tone_curve(y, 0.3, 2.5), tone_curve(y))


@pytest.mark.parametrize("camera", [HELD_OUT_CAMERA, FILM_CAMERA, Camera(knee=0.35, white=2.8, gamma=1.2)])
def test_response_round_trip(camera: Camera) -> None:
    display = torch.linspace(0, 1, 101)
    torch.testing.assert_close(camera.to_display(camera.to_scene(display)), display, atol=1e-5, rtol=0)


def test_family_is_repeatable_under_a_seed(photo: torch.Tensor) -> None:
    first = DEFAULT_FAMILY.render(photo, torch.Generator().manual_seed(7))
    again = DEFAULT_FAMILY.render(photo, torch.Generator().manual_seed(7))
    other = DEFAULT_FAMILY.render(photo, torch.Generator().manual_seed(8))
    assert first[2] == again[2] and first[3] == again[3]
    torch.testing.assert_close(first[0], again[0], atol=0, rtol=0)
    assert first[3] != other[3]


def test_brightness_rises_with_ev_for_every_camera(photo: torch.Tensor) -> None:
    generator = torch.Generator().manual_seed(0)
    family = DEFAULT_FAMILY.with_changes(jpeg_p=0.0)
    for _ in range(6):
        camera = family.sample(generator)
        means = [float(camera.render(photo, ev, torch.Generator().manual_seed(1)).mean())
                 for ev in (-2.0, -1.0, 0.0, 1.0, 2.0)]
        assert means == sorted(means) and means[0] < means[-1] - 0.2, (camera, means)
    means = [float(HELD_OUT_CAMERA.render(photo, ev).mean()) for ev in (-1.5, -1.0, 0.0, 1.0, 1.5)]
    assert means == sorted(means)


def test_ev0_returns_the_photo_and_family_draws_ev0(photo: torch.Tensor) -> None:
    camera = DEFAULT_FAMILY.sample(torch.Generator().manual_seed(3))
    assert torch.equal(camera.render(photo, 0.0), photo)
    evs = [DEFAULT_FAMILY.sample_ev(torch.Generator().manual_seed(s)) for s in range(400)]
    zero = sum(ev == 0.0 for ev in evs) / len(evs)
    assert abs(zero - DEFAULT_FAMILY.p_ev0) < 0.08
    others = [ev for ev in evs if ev != 0.0]
    assert min(others) < -1.6 and max(others) > 1.6 and all(-2.0 <= ev <= 2.0 for ev in others)
    assert all(abs(ev) >= DEFAULT_FAMILY.min_abs_ev for ev in others)


def test_held_out_response_differs_from_the_training_family(photo: torch.Tensor) -> None:
    plain = PLAIN_CAMERA.render(photo, -1.5)
    held_out = HELD_OUT_CAMERA.render(photo, -1.5)
    assert float((plain - held_out).abs().mean()) > 0.01


def test_jpeg_and_noise_change_the_input(photo: torch.Tensor) -> None:
    noisy = Camera(shot_noise=0.05, read_noise=0.01).render(photo, -1.0, torch.Generator().manual_seed(0))
    clean = PLAIN_CAMERA.render(photo, -1.0)
    assert 0.003 < float((noisy - clean).abs().mean()) < 0.1
    jpeg = jpeg_roundtrip(photo, 50)
    assert jpeg.shape == photo.shape and 0 < float((jpeg - photo).abs().mean()) < 0.05
    both = jpeg_roundtrip(torch.stack([photo, photo.flip(-1)]), [50, 90])  # a batch, a quality each
    assert torch.equal(both[0], jpeg) and torch.equal(both[1], jpeg_roundtrip(photo.flip(-1), 90))


def test_a_camera_gives_the_chain_its_numbers(photo: torch.Tensor) -> None:
    camera = Camera(knee=0.4, white=2.5, gamma=1.1, wb=(1.05, 1.0, 0.95), shot_noise=0.02, read_noise=0.003)
    params = camera.params(2)
    assert params.knee.tolist() == pytest.approx([0.4, 0.4]) and params.wb.shape == (2, 3)
    assert params.gamma.tolist() == pytest.approx([1.1, 1.1]) and params.response.tolist() == [0, 0]
    assert HELD_OUT_CAMERA.params().response.tolist() == [RESPONSES.index("reinhard")]
    assert FILM_CAMERA.params().response.tolist() == [RESPONSES.index("film")]
    ev = torch.tensor([-1.0, 1.0])
    assert params.noisy(ev).tolist() == [True, False] and not params.clean().noisy(ev).any()
    clean = camera.clean()
    assert clean.wb == (1.0, 1.0, 1.0) and clean.shot_noise == clean.read_noise == 0 and clean.gamma == 1.1
    image = camera.render(photo, -1.0, torch.Generator().manual_seed(4))
    z = torch.randn(photo[None].shape, generator=torch.Generator().manual_seed(4))
    assert torch.equal(image, misexpose(photo[None], ev[:1], camera.params(), z)[0])  # the chain itself


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="response"):
        Camera(response="polaroid")
    with pytest.raises(ValueError, match="knee"):
        Camera(knee=1.2)
    with pytest.raises(ValueError, match="jpeg_quality"):
        Camera(jpeg_quality=0)
    with pytest.raises(ValueError):
        CameraFamily().sample(torch.Generator()).render(torch.zeros(1, 8, 8), -1.0)


def test_ev_margin_and_target_exposure(photo: torch.Tensor) -> None:
    family = CameraFamily(min_abs_ev=0.75, p_ev0=0.3, target_ev=0.5, jpeg_p=0.0)
    evs = [family.sample_ev(torch.Generator().manual_seed(s)) for s in range(300)]
    assert all(ev == 0.0 or 0.75 <= abs(ev) <= 2.0 for ev in evs)
    assert min(evs) < -1.5 and max(evs) > 1.5
    targets = [family.render(photo, torch.Generator().manual_seed(s))[1] for s in range(6)]
    means = [float(t.mean()) for t in targets]
    assert max(means) - min(means) > 0.03  # the ground truth itself is re-exposed
    with pytest.raises(ValueError, match="ev_range"):
        CameraFamily(ev_range=(-0.5, 0.5), min_abs_ev=0.75)


def test_the_film_response_is_a_monotone_s_curve_with_an_exact_inverse() -> None:
    scene = np.linspace(0.0, 4.0, 2001)
    display = film_curve(scene, 4.0, 1.6)
    assert display[0] == 0.0 and display[-1] == pytest.approx(1.0) and np.all(np.diff(display) > 0)
    np.testing.assert_allclose(inverse_film_curve(display, 4.0, 1.6), scene, atol=1e-9)
    assert film_curve(np.array(9.0), 4.0, 1.6) == 1.0  # clipped beyond white
    slope = np.diff(display) / np.diff(scene)
    assert slope[0] < slope[200] > slope[-1]  # a toe and a shoulder: steepest in between
    t = torch.linspace(0, 4, 50, dtype=torch.float64)
    torch.testing.assert_close(film_curve(t, 4.0, 1.6), torch.from_numpy(film_curve(t.numpy(), 4.0, 1.6)))


def test_the_film_camera_leaves_ev0_alone_and_brightens_with_ev(photo: torch.Tensor) -> None:
    assert torch.equal(FILM_CAMERA.render(photo, 0.0), photo)
    through_the_chain = misexpose(photo[None], torch.zeros(1), FILM_CAMERA.params())[0]
    assert float((through_the_chain - photo).abs().max()) < 1e-5  # the chain itself at EV 0
    ramp = torch.linspace(0, 1, 256).view(1, 1, 256).expand(3, 1, 256).contiguous()
    renders = [FILM_CAMERA.render(ramp, ev) for ev in (-1.5, -1.0, 0.0, 1.0, 1.5)]
    for image in renders:
        assert bool((image.diff(dim=-1) >= 0).all())  # a brighter pixel stays brighter
    for darker, brighter in zip(renders, renders[1:]):
        assert bool((darker <= brighter + 1e-6).all()) and float((brighter - darker).mean()) > 0.03


def test_the_film_response_is_outside_the_family_and_the_held_out_camera(photo: torch.Tensor) -> None:
    # In the shadows a shoulder camera after a power gamma scales display light by 2**(ev * gamma);
    # the family's gammas reach 1.25, so 1.5 stops under leave at least 2**-1.875 of a dark pixel.
    # The film's toe leaves less, and the held-out Reinhard curve (slope 1 at black) leaves more.
    dark = torch.full((3, 1, 1), 0.003)  # display linear light
    darkest = 2.0 ** (-1.5 * DEFAULT_FAMILY.gamma[1])
    film = FILM_CAMERA.to_display(FILM_CAMERA.to_scene(dark) * 2**-1.5) / dark
    held = HELD_OUT_CAMERA.to_display(HELD_OUT_CAMERA.to_scene(dark) * 2**-1.5) / dark
    assert float(film.max()) < 0.8 * darkest < float(held.min())
    responses = {DEFAULT_FAMILY.sample(torch.Generator().manual_seed(k)).response for k in range(50)}
    assert FILM_CAMERA.response not in responses | {HELD_OUT_CAMERA.response}
    assert float((FILM_CAMERA.render(photo, -1.5) - HELD_OUT_CAMERA.render(photo, -1.5)).abs().mean()) > 0.01


def test_a_batch_of_three_responses_equals_its_images_one_by_one(photo: torch.Tensor) -> None:
    cameras = [PLAIN_CAMERA, FILM_CAMERA, HELD_OUT_CAMERA, Camera(response="film", white=3.0, gamma=1.3)]
    params = [c.params() for c in cameras]
    batch = CameraParams.uniform(4)
    batch = CameraParams(**{name: torch.cat([getattr(p, name) for p in params]) for name in vars(batch)})
    assert batch.response.tolist() == [RESPONSES.index(c.response) for c in cameras]
    images = torch.stack([photo, photo.flip(-1), photo.flip(-2), photo * 0.8])
    ev = torch.tensor([-1.5, 1.0, -1.0, 1.5])
    together = misexpose(images, ev, batch)
    for i in range(4):
        assert torch.equal(together[i:i + 1], misexpose(images[i:i + 1], ev[i:i + 1], params[i])), cameras[i]
