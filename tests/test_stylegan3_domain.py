"""StyleGAN3 generators through the product: a domain file whose generator is an NVlabs SG3 pickle or a
stylegan3-editing `.pt` loads code-free; `zoo invert` runs the methods that support SG3 end to end and refuses the
others in one line; inversions carry per-image user transforms (unaligned frame) through save / load; `zoo domain
check` reports the SG3 generator. Tiny files are built by tests/official_files.py (no ../shared needed)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from official_files import (save_sg3_editing_pt, save_sg3_nvlabs_pkl, tiny_sg3_generator, write_domain,
                            write_sg3_domain)
from zoo.cli import main
from zoo.inversion import Inversion, TunedWeights
from zoo.stylegan3.transforms import generator_transform
from zoo.userdomain import FileDomain
from zoo.userdomain.domain import load_domain_generator


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def domain_file(tmp_path_factory) -> Path:
    return write_sg3_domain(tmp_path_factory.mktemp("sg3dom"), kind="pkl")


def cli(*args: object):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.mark.parametrize("config,kind", [("T", "pkl"), ("R", "pt")])
def test_domain_generator_loads_sg3_files_code_free(tmp_path, monkeypatch, config, kind):
    monkeypatch.chdir(tmp_path)  # the pickle's module source would `touch SHOULD_NOT_EXIST` here if it ran
    g = tiny_sg3_generator(config=config)
    path = (save_sg3_nvlabs_pkl(g, tmp_path / "g.pkl") if kind == "pkl"
            else save_sg3_editing_pt(g, tmp_path / "g.pt", batched_transform=2))
    loaded, fmt = load_domain_generator(path)
    assert fmt == f"stylegan3 ({'nvlabs' if kind == 'pkl' else 'stylegan3-editing'})"
    assert not (tmp_path / "SHOULD_NOT_EXIST").exists()
    assert list(loaded.generator.state_dict()) == list(g.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(loaded.generator.state_dict().values(), g.state_dict().values()))
    assert torch.equal(loaded.latent_avg, g.mapping.w_avg) and not loaded.latent_avg_computed
    ws = g.mapping.w_avg.reshape(1, 1, -1).repeat(2, g.num_ws, 1) + 0.3 * torch.randn(2, g.num_ws, g.w_dim)
    with torch.no_grad():
        torch.testing.assert_close(loaded.generator.synthesis(ws), g.synthesis(ws), rtol=0, atol=1e-6)
    if kind == "pt":  # stylegan3-editing's batched transform buffer is kept apart
        assert loaded.transform is not None and loaded.transform.shape == (2, 3, 3)


def test_invert_on_an_sg3_domain_file_and_reload(domain_file, tmp_path):
    out = tmp_path / "inv"
    res = cli("invert", "optim_wplus", "--domain", domain_file, "--out", out, "-o", "steps=15", "--limit", "2")
    assert res.exit_code == 0, res.output
    files = sorted(out.glob("*.inversion.safetensors"))
    assert len(files) == 2
    dom = FileDomain.from_file(domain_file)
    inv = Inversion.load(files[0], domain=dom)
    assert inv.latents.shape == (1, 6, 16) and inv.transform is None and inv.method == "optim_wplus"
    with torch.no_grad():
        again = inv.render()
    torch.testing.assert_close(again, inv.reconstructions, rtol=0, atol=1e-6)
    # the images it reconstructs are the generator's own renders: the inversion gets close to them
    assert float((inv.reconstructions - inv.images).abs().mean()) < 0.1


def test_encoders_refuse_sg3_in_one_line(domain_file, tmp_path):
    """HyperStyle stays StyleGAN2-only (pSp / e4e / ReStyle run on SG3: tests/test_stylegan3_encoders.py)."""
    res = cli("invert", "hyperstyle", "--domain", domain_file, "--out", tmp_path / "hs", "--limit", "1")
    assert res.exit_code != 0
    assert "hyperstyle cannot run on a StyleGAN3 generator yet" in res.output
    assert len(res.output.strip().splitlines()) == 1 and "restyle_e4e" in res.output
    assert not (tmp_path / "hs").exists()


def test_domain_check_reports_sg3(domain_file):
    res = cli("domain", "check", domain_file)
    assert res.exit_code == 0, res.output
    assert "stylegan3 (nvlabs)" in res.output and "StyleGAN3-T, 5 synthesis layers" in res.output
    assert "6 x 16" in res.output and "n/a: cannot run on a StyleGAN3 generator yet" in res.output
    res = cli("domain", "check", domain_file, "--json")
    gen = json.loads(res.output)["card"]["generator"]
    assert gen["network"] == "StyleGAN3-T" and gen["n_styles"] == 6


def test_with_transform_renders_the_unaligned_frame_and_round_trips(domain_file, tmp_path):
    dom = FileDomain.from_file(domain_file)
    g = dom.generator().generator
    ws = g.mapping.w_avg.reshape(1, 1, -1).repeat(2, g.num_ws, 1) + 0.5 * torch.randn(
        2, g.num_ws, g.w_dim, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        aligned = g.synthesis(ws)
    inv = Inversion(ws, aligned, torch.ones(2), method="optim_wplus", domain=dom)
    pose = (torch.tensor([10.0, -25.0]), torch.tensor([0.1, 0.0]), torch.tensor([0.0, -0.05]))
    un = inv.with_transform(pose)
    with torch.no_grad():
        expect = g.synthesis(ws, transform=generator_transform(*pose))
    torch.testing.assert_close(un.reconstructions, expect, rtol=0, atol=1e-6)
    assert float((un.reconstructions - aligned).abs().max()) > 0.01  # the frame moved
    torch.testing.assert_close(un.extras["aligned_reconstructions"], aligned)
    torch.testing.assert_close(un.poses, torch.stack([p.double() for p in pose], -1), rtol=0, atol=1e-5)
    # per-sample selection keeps each image's own transform
    torch.testing.assert_close(un.select([1]).render(), expect[1:], rtol=0, atol=1e-6)
    # save / load: the transform is part of the file and render() gives the same images
    path = un.save(tmp_path / "u.inversion.safetensors")
    back = Inversion.load(path, domain=dom)
    assert back.transform is not None and torch.equal(back.transform, un.transform)
    torch.testing.assert_close(back.render(), un.render(), rtol=0, atol=0)
    # tuned weights (PTI) render per sample with their transform too
    name = next(iter(g.tuning_parameters()))
    delta = torch.zeros_like(dict(g.named_parameters())[name])
    tuned = Inversion(ws, aligned, torch.ones(2), change=TunedWeights([{name: delta}, {name: delta}]),
                      domain=dom).with_transform(pose)
    torch.testing.assert_close(tuned.reconstructions, expect, rtol=0, atol=1e-5)
    back = Inversion.load(tuned.save(tmp_path / "t.inversion.safetensors"), domain=dom)
    torch.testing.assert_close(back.render(), tuned.reconstructions, rtol=0, atol=0)


def test_invert_with_a_transforms_file(domain_file, tmp_path):
    photos = sorted((domain_file.parent / "photos").glob("*.png"))[:2]
    table = {"kind": "zoo align", "version": 1, "size": 16, "frame": "face",
             "images": {photos[0].name: {"r": 12.0, "tx": 0.05, "ty": -0.1},
                        photos[1].name: {"r": 350.0, "tx": 0.0, "ty": 0.0}}}
    tf = tmp_path / "transforms.json"
    tf.write_text(json.dumps(table))
    out = tmp_path / "inv"
    res = cli("invert", "optim", *photos, "--transforms", tf, "--domain", domain_file, "--out", out, "-o", "steps=5")
    assert res.exit_code == 0, res.output
    dom = FileDomain.from_file(domain_file)
    inv = Inversion.load(out / f"{photos[0].stem}_png.inversion.safetensors", domain=dom)
    torch.testing.assert_close(inv.poses[0], torch.tensor([12.0, 0.05, -0.1], dtype=torch.float64), rtol=0, atol=1e-5)
    g = dom.generator().generator
    with torch.no_grad():
        torch.testing.assert_close(inv.render(), g.synthesis(inv.latents, transform=(12.0, 0.05, -0.1)),
                                   rtol=0, atol=1e-6)
    manifest = json.loads((out / "manifest.json").read_text())
    assert f"--transforms {tf}" in manifest["resume_command"]
    # an input the file does not list, and a StyleGAN2 domain: one-line errors, nothing inverted
    table["images"].pop(photos[1].name)
    tf.write_text(json.dumps(table))
    res = cli("invert", "optim", *photos, "--transforms", tf, "--domain", domain_file, "--out", tmp_path / "x")
    assert res.exit_code != 0 and f"no transform for input {photos[1].name}" in res.output
    sg2 = write_domain(tmp_path / "sg2", methods=False, identity="none")
    res = cli("invert", "optim", photos[0], "--transforms", tf, "--domain", sg2, "--out", tmp_path / "y")
    assert res.exit_code != 0 and "needs an SG3 domain" in res.output
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
    assert os.path.exists(out / f"{photos[1].stem}_png.png")


def test_unaligned_inversion_puts_the_image_back_in_its_frame(domain_file):
    """The stylegan3-editing flow on a known pose: invert the aligned render, render it with the pose; the result
    matches the unaligned render much better than the aligned reconstruction does."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins"))
    from zoo_optim.projector import OptimWPlusInverter

    dom = FileDomain.from_file(domain_file)
    g = dom.generator().generator
    w = g.get_latent(torch.randn(1, g.z_dim, generator=torch.Generator().manual_seed(3)))
    pose = (15.0, 0.08, -0.05)
    with torch.no_grad():
        aligned = g([w], input_is_latent=True)[0]
        unaligned = g([w], input_is_latent=True, transform=pose)[0]
    inv = OptimWPlusInverter(steps=80, mse=1.0, lpips_weight=0.0, w_avg_samples=500).invert(aligned, dom)
    un = inv.with_transform(pose)
    err = float((un.reconstructions - unaligned).pow(2).mean())
    away = float((inv.reconstructions - unaligned).pow(2).mean())
    print(f"unaligned MSE {err:.3g}; aligned reconstruction vs unaligned {away:.3g}; "
          f"aligned fit {float((inv.reconstructions - aligned).pow(2).mean()):.3g}")
    assert err < 0.5 * away
    assert err < 2.0 * float((inv.reconstructions - aligned).pow(2).mean()) + 1e-5  # as good as the aligned fit


def test_resume_with_transforms_redoes_only_changed_poses(domain_file, tmp_path):
    photos = sorted((domain_file.parent / "photos").glob("*.png"))[:2]
    table = {"kind": "zoo align", "version": 1,
             "images": {photos[0].name: {"r": 5.0, "tx": 0.0, "ty": 0.0},
                        photos[1].name: {"r": 0.0, "tx": 0.1, "ty": 0}}}
    tf = tmp_path / "transforms.json"
    tf.write_text(json.dumps(table))
    out = tmp_path / "inv"
    args = ("invert", "optim", *photos, "--transforms", tf, "--domain", domain_file, "--out", out, "-o", "steps=3")
    assert cli(*args).exit_code == 0
    again = cli(*args, "--resume")
    assert again.exit_code == 0 and "2 already done" in again.output, again.output
    table["images"][photos[1].name]["r"] = 20.0
    tf.write_text(json.dumps(table))
    moved = cli(*args, "--resume")
    assert moved.exit_code == 0 and "1 image inverted" in moved.output and "1 already done" in moved.output
    inv = Inversion.load(out / f"{photos[1].stem}_png.inversion.safetensors", domain=FileDomain.from_file(domain_file))
    assert abs(float(inv.poses[0, 0]) - 20.0) < 1e-4
