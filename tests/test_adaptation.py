"""Domain adaptation (offsets on chosen layers only) and encoder bootstrapping (first step = the source encoder's)
on tiny models."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from zoo.adaptation.bootstrap import run_bootstrap
from zoo.adaptation.layers import (OFFICIAL_FFHQ_LAYERS, filter_deltas, select_layers, slot_parameter_prefixes,
                                   slot_resolution)
from zoo.adaptation.transfer import restrict_tuned
from zoo.encoders.restyle import run_restyle
from zoo.errors import InputError
from zoo.inversion import TunedWeights
from zoo.stylegan2 import Generator

CH = {4: 16, 8: 16, 16: 8, 32: 8}


def tiny_generator(seed: int) -> Generator:
    torch.manual_seed(seed)
    g = Generator(32, 16, 2, channels=CH).eval()
    for p in g.parameters():
        p.requires_grad_(False)
    return g


class TinyResidualEncoder(nn.Module):
    """[B, 6, h, w] -> [B, n_styles, D] (stands in for a ReStyle encoder)."""

    def __init__(self, n_styles: int, dim: int, seed: int) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.conv = nn.Conv2d(6, 4, 3, 2, 1)
        self.fc = nn.Linear(4 * 16 * 16, n_styles * dim)
        self.shape = (n_styles, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.1 * self.fc(torch.tanh(self.conv(x)).flatten(1)).view(-1, *self.shape)


def test_layer_specs_on_a_32px_generator() -> None:
    slots = tiny_generator(0).layer_slots()
    assert [slot_resolution(s) for s in slots] == [4, 4, 8, 8, 8, 16, 16, 16, 32, 32, 32]
    assert select_layers("default", slots) == [5, 6, 8, 9]
    assert select_layers("all", slots) == [0, 2, 3, 5, 6, 8, 9]  # HyperStyle's own default: no toRGB
    assert select_layers("none", slots) == []
    assert select_layers("res:8", slots) == [2, 3]
    assert select_layers("3,2,2", slots) == [2, 3]
    for bad in ("official", "res:64", "11", "convs", "res:x"):
        with pytest.raises(InputError):
            select_layers(bad, slots)


def test_official_list_names_the_128_to_1024_px_convs_of_a_1024_generator() -> None:
    g = Generator(1024, 8, 1, channels={r: 4 for r in (4, 8, 16, 32, 64, 128, 256, 512, 1024)})
    slots = g.layer_slots()
    official = select_layers("official", slots)
    assert official == list(OFFICIAL_FFHQ_LAYERS)
    assert len(slots) == 26
    assert all(not slots[i].is_torgb and slot_resolution(slots[i]) in (128, 256, 512, 1024) for i in official)
    assert official == select_layers("res:128,256,512,1024", slots)


def test_offsets_land_only_on_the_chosen_layers() -> None:
    g = tiny_generator(1)
    slots = g.layer_slots()
    torch.manual_seed(2)
    deltas = [0.3 * torch.randn(1, s.out_channels, s.in_channels, 1, 1) for s in slots]
    layers = select_layers("res:16", slots)
    kept = filter_deltas(deltas, layers)
    assert [i for i, d in enumerate(kept) if d is not None] == layers
    codes = torch.randn(1, g.n_latent, g.style_dim)
    with torch.no_grad():
        out, _ = g([codes], input_is_latent=True, randomize_noise=False, weights_deltas=kept)
        # The same render with the offsets baked into exactly those layers' weights: W * (1 + delta).
        baked = tiny_generator(1)
        for i in layers:
            conv = baked.get_submodule(slots[i].name).conv
            conv.weight.mul_(1 + deltas[i][0].unsqueeze(0))
        ref, _ = baked([codes], input_is_latent=True, randomize_noise=False)
        plain, _ = g([codes], input_is_latent=True, randomize_noise=False)
    assert torch.allclose(out, ref, atol=1e-5)
    assert (out - plain).abs().max() > 1e-3  # the offsets do change the render


def test_pti_changes_are_restricted_to_the_layers_modules() -> None:
    slots = tiny_generator(0).layer_slots()
    change = TunedWeights([{"convs.3.conv.weight": torch.ones(1), "convs.1.conv.weight": torch.ones(1),
                            "to_rgbs.1.conv.weight": torch.ones(1), "style.1.weight": torch.ones(1)}])
    kept = restrict_tuned(change, slot_parameter_prefixes(slots, select_layers("res:16", slots)))
    assert set(kept.deltas[0]) == {"convs.3.conv.weight"}
    assert restrict_tuned(change, ()).deltas == [{}]


def test_bootstrapped_first_step_equals_the_source_encoders() -> None:
    g1, g2 = tiny_generator(3), tiny_generator(4)
    e1 = TinyResidualEncoder(g1.n_latent, g1.style_dim, 5)
    e2 = TinyResidualEncoder(g1.n_latent, g1.style_dim, 6)
    lat = torch.randn(g1.style_dim)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        boot = run_bootstrap(e1, g1, lat, e2, g2, x, n_target=2)
        src = run_restyle(e1, g1, lat, x, 1)
    assert len(boot.codes) == 3 and len(boot.images) == 3
    assert torch.allclose(boot.codes[0], src.codes[0]) and torch.allclose(boot.images[0], src.images[0])
    # Target steps add E2's residual to the previous codes and render with G2.
    with torch.no_grad():
        pooled = nn.functional.adaptive_avg_pool2d(boot.images[0], (32, 32))
        w1 = e2(torch.cat([x, pooled], 1)) + boot.codes[0]
        y1, _ = g2([w1], input_is_latent=True, randomize_noise=False)
    assert torch.allclose(boot.codes[1], w1, atol=1e-6) and torch.allclose(boot.images[1], y1, atol=1e-5)
    with pytest.raises(ValueError):
        run_bootstrap(e1, g1, lat, e2, g2, x, n_target=-1)


def test_restyle_bootstrap_options_must_apply() -> None:
    from zoo_encoders.inverters import ReStyleOptions

    assert ReStyleOptions(bootstrap="peeps").target_steps == 1
    for bad in (dict(target_steps=2), dict(bootstrap="peeps", n_iters=3), dict(bootstrap="peeps", target_steps=0)):
        with pytest.raises(InputError):
            ReStyleOptions(**bad)


def test_cross_domain_summary_ranks_methods_per_domain() -> None:
    from zoo.bench.cross_domain import cross_domain_frame, cross_domain_markdown

    def agg(d, m, metric, mean):
        return {"domain": d, "split": "test", "method": m, "metric": metric, "mean": mean, "status": "ok", "n": 4}

    results = {"metrics": {"lpips": {"higher_is_better": False}, "id": {"higher_is_better": True}},
               "aggregates": [agg("peeps", "a", "lpips", 0.1), agg("peeps", "b", "lpips", 0.2),
                              agg("peeps", "a", "id", 0.9), agg("peeps", "b", "id", 0.5),
                              agg("lorelei", "a", "lpips", 0.3), agg("lorelei", "b", "lpips", 0.2),
                              agg("lorelei", "a", "id", 0.4), agg("lorelei", "b", "id", 0.6)]}
    frame = cross_domain_frame(results)
    assert frame is not None
    assert frame.set_index("method").to_dict() == {"peeps": {"a": "1 (1)", "b": "2 (2)"},
                                                   "lorelei": {"a": "2 (2)", "b": "1 (1)"}}
    single = {**results, "aggregates": results["aggregates"][:4]}
    assert cross_domain_frame(single) is None and cross_domain_markdown(single) == []


def test_adapt_cli_reports_a_bad_method_in_one_line(tmp_path) -> None:
    from click.testing import CliRunner

    from zoo.cli import main

    out = CliRunner().invoke(main, ["adapt", "--source", "peeps", "--target", "peeps", "--method", "toonify",
                                    "--limit", "1", "--out", str(tmp_path / "o")])
    assert out.exit_code != 0
    assert "unknown adaptation method" in out.output and "Traceback" not in out.output
