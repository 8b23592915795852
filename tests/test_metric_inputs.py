"""Input validation of every registered metric (`Metric.check_inputs`): shapes, value range, minimum size."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from zoo import registry
from zoo.cards import Card
from zoo.domain import Domain
from zoo.errors import InputError
from zoo.metric import Metric

try:
    import zoo_metrics
except ImportError:  # source tree before `pip install -e .` picked up the plugin
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins"))
    import zoo_metrics

from zoo_metrics.msssim import MSSSIM, ms_ssim

METRICS = registry.list_metrics()


@pytest.fixture(scope="module")
def peeps() -> Domain:
    return registry.get_domain("peeps")


@pytest.fixture(scope="module")
def images(peeps: Domain) -> torch.Tensor:
    """16 real test images of the peeps domain [16, 3, 32, 32] in [-1, 1]."""
    return peeps.images("test", limit=16)


def test_the_builtin_metrics_are_registered() -> None:
    assert {"l2", "lpips", "ms_ssim", "id"} <= set(METRICS)


@pytest.mark.parametrize("name", METRICS)
def test_real_images_pass_and_score(name: str, peeps: Domain, images: torch.Tensor) -> None:
    m = registry.create_metric(name)
    pred, target = images[:8], images[8:]
    m.check_inputs(pred, target)  # never a false positive on the domain's real images
    m.check_inputs(images, images)
    reason = m.unavailable_reason(peeps)
    if reason is not None:
        pytest.skip(f"{name} weights unavailable (validated only): {reason}")
    assert m.score(pred, target, peeps).shape == (8,)


@pytest.mark.parametrize("name", METRICS)
def test_unit_range_images_are_refused(name: str, peeps: Domain, images: torch.Tensor) -> None:
    """[0, 1] data gave plausible numbers (LPIPS about 4x too good) instead of an error."""
    x = (images + 1) / 2
    with pytest.raises(InputError, match=rf"^{name}: images must be in \[-1, 1\] \(got \[0, 1\].*x \* 2 - 1$"):
        registry.create_metric(name).score(x[:8], x[8:], peeps)


@pytest.mark.parametrize("name", METRICS)
def test_byte_range_images_are_refused(name: str, peeps: Domain, images: torch.Tensor) -> None:
    """[0, 255] data gave L2 ~ 61 instead of an error; uint8 tensors are refused as well."""
    x = (images + 1) * 127.5
    m = registry.create_metric(name)
    with pytest.raises(InputError, match=rf"^{name}: images must be in \[-1, 1\] \(got \[0, 255\].*x / 127.5 - 1$"):
        m.score(x[:8], x[8:], peeps)
    with pytest.raises(InputError, match=rf"^{name}: images must be in \[-1, 1\] \(got \[0, 255\]"):
        m.score(images[:8], x[8:], peeps)  # only the target is wrong
    with pytest.raises(InputError, match="float"):
        m.score(x[:8].round().to(torch.uint8), x[8:].round().to(torch.uint8), peeps)


@pytest.mark.parametrize("name", METRICS)
def test_wrong_shapes_are_refused(name: str, peeps: Domain, images: torch.Tensor) -> None:
    m = registry.create_metric(name)
    for pred, target in ((images[:4], images[:3]),  # batch sizes
                         (images[:4, :1], images[4:8, :1]),  # grey
                         (images[0], images[1]),  # no batch dimension
                         (images[:2, :, :0], images[2:4, :, :0])):  # empty images
        with pytest.raises(InputError, match=rf"^{name}: "):
            m.score(pred, target, peeps)


@pytest.mark.parametrize("name", [n for n in METRICS if registry.get_metric_class(n).min_size > 1])
def test_undersized_images_are_refused_not_a_runtime_error(name: str, peeps: Domain) -> None:
    """Without the resize (size=None) too small images crashed inside the network / pooling (RuntimeError)."""
    m = registry.create_metric(name, size=None)
    side = m.min_size
    g = torch.Generator().manual_seed(0)
    small = torch.rand(2, 3, side - 1, side + 5, generator=g) * 2 - 1
    with pytest.raises(InputError, match=rf"^{name}: images must be at least {side}x{side} px .* is {side - 1}x"):
        m.score(small, small.flip(0), peeps)
    ok = torch.rand(2, 3, side, side, generator=g) * 2 - 1
    m.check_inputs(ok, ok.flip(0))
    with pytest.raises(InputError, match=rf"^{name}: the comparison size 8x8 is below .* {side} px"):
        registry.create_metric(name, size=8)


def test_ms_ssim_minimum_sizes() -> None:
    assert MSSSIM.min_size == 176 and zoo_metrics.LPIPS.min_size == 31
    x = torch.rand(1, 3, 8, 8) * 2 - 1
    with pytest.raises(InputError, match="ms_ssim: images must be at least 176x176 px"):
        MSSSIM(size=None).score(x, x)
    with pytest.raises(InputError, match="at least 16x16 px for 5 scales"):  # the bare function's hard limit
        ms_ssim(x, x)
    assert MSSSIM().score(x, x).item() == pytest.approx(1.0, abs=1e-5)  # the default 256x256 resize is fine
    MSSSIM(size=None).score(torch.rand(1, 3, 176, 180) * 2 - 1, torch.rand(1, 3, 176, 180) * 2 - 1)


def test_range_rule_edge_cases(images: torch.Tensor) -> None:
    l2 = zoo_metrics.L2(size=None)
    g = torch.Generator().manual_seed(0)
    bright = torch.rand(1, 3, 32, 32, generator=g)  # a single bright [-1, 1] pair inside [0, 1]: not flagged
    assert l2.score(bright, bright.flip(-1)).shape == (1,)
    flat = torch.full((4, 3, 32, 32), 0.5)  # flat images in [0, 1]: not flagged
    assert l2.score(flat, torch.zeros_like(flat)).tolist() == [0.25] * 4
    with pytest.raises(InputError, match=r"got \[0, 1\]"):  # two such pairs are
        l2.score(torch.rand(2, 3, 32, 32, generator=g), torch.rand(2, 3, 32, 32, generator=g))
    one_sided = torch.cat([bright, bright])
    assert l2.score(one_sided, images[:2]).shape == (2,)  # target in [-1, 1]: not the [0, 1] mistake
    raw = images[:2] * 2.2  # unclamped generator output overshoots (peeps: up to +-2.19) and is accepted
    assert torch.isfinite(l2.score(raw, images[:2])).all()
    with pytest.raises(InputError, match=r"^l2: images must be in \[-1, 1\] \(got pred in \[-5, 5\]\).*clamp"):
        l2.score(images[:2] * 5, images[:2])
    with_nan = images[:2].clone()
    with_nan[0, 0, 0, 0] = float("nan")  # a diverged reconstruction scores NaN, it is not an input error
    assert torch.isnan(l2.score(with_nan, images[:2])[0])
    l2.check_value_range = False  # the documented escape hatch
    assert l2.score((images[:2] + 1) * 127.5, (images[2:4] + 1) * 127.5).shape == (2,)


class _PluginL1(Metric):
    """A third-party metric that only implements `score`: the base class still validates its inputs."""

    name = "plugin_l1"
    higher_is_better = False
    card = Card(title="L1")
    calls = 0

    def score(self, pred: torch.Tensor, target: torch.Tensor, domain: Domain | None = None) -> torch.Tensor:
        type(self).calls += 1
        return (pred - target).abs().flatten(1).mean(1)


class _CountedPluginL1(_PluginL1):
    checks = 0

    def check_inputs(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        type(self).checks += 1
        super().check_inputs(pred, target)

    def score(self, pred: torch.Tensor, target: torch.Tensor, domain: Domain | None = None) -> torch.Tensor:
        return super().score(pred, target, domain) * 2


def test_subclasses_cannot_skip_the_checks(images: torch.Tensor) -> None:
    x = (images + 1) * 127.5
    with pytest.raises(InputError, match=r"^plugin_l1: images must be in \[-1, 1\] \(got \[0, 255\]"):
        _PluginL1().score(x[:2], x[2:4])
    m = _PluginL1()
    with pytest.raises(InputError, match="plugin_l1: pred .* and target .* differ in size"):
        m.update(images[:2], images[:2, :, :16])
    m = _CountedPluginL1()
    torch.testing.assert_close(m.score(images[:2], images[2:4]), 2 * _PluginL1().score(images[:2], images[2:4]))
    assert _CountedPluginL1.checks == 1  # super().score() inside a checked score is not checked again
