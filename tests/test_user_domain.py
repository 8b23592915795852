"""A user's domain from a `domain.toml` built of tiny official-format files: generator formats, image order,
directions from files, method weights, and `zoo bench` end to end."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))
from official_files import (  # noqa: E402
    latent_avg,
    save_encoder_checkpoint,
    save_nvlabs_pkl,
    save_rosinality,
    tiny_generator,
    write_domain,
)

from zoo import registry  # noqa: E402
from zoo.cli import main  # noqa: E402
from zoo.errors import CheckpointError, InputError  # noqa: E402
from zoo.userdomain import FileDomain, load_domain_generator, parse_domain_file  # noqa: E402


@pytest.fixture(scope="module")
def domain_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_domain(tmp_path_factory.mktemp("userdomain"), identity="none")


@pytest.mark.parametrize("fmt", ["rosinality", "rosinality_no_avg", "nvlabs", "psp", "e4e"])
def test_generator_from_every_official_format_equals_the_original(tmp_path: Path, fmt: str) -> None:
    g = tiny_generator()
    path = {"rosinality": lambda: save_rosinality(g, tmp_path / "g.pt"),
            "rosinality_no_avg": lambda: save_rosinality(g, tmp_path / "g.pt", with_latent_avg=False),
            "nvlabs": lambda: save_nvlabs_pkl(g, tmp_path / "g.pkl"),
            "psp": lambda: save_encoder_checkpoint("psp", g, tmp_path / "psp.pt"),
            "e4e": lambda: save_encoder_checkpoint("e4e", g, tmp_path / "e4e.pt")}[fmt]()
    loaded, source = load_domain_generator(path)
    ours = loaded.generator.state_dict()
    assert set(ours) == set(g.state_dict())
    assert all(torch.equal(ours[k], v) for k, v in g.state_dict().items())
    assert loaded.generator.size == 64 and loaded.generator.n_latent == 10 and loaded.generator.config.n_mlp == 2
    if fmt == "rosinality_no_avg":
        assert loaded.latent_avg_computed
    else:
        assert torch.allclose(loaded.latent_avg, latent_avg(g))
    assert source == {"psp": "encoder-decoder", "e4e": "encoder-decoder", "nvlabs": "nvlabs"}.get(fmt, "rosinality")
    assert not (tmp_path / "SHOULD_NOT_EXIST").exists() and not Path("SHOULD_NOT_EXIST").exists()


def test_domain_file_is_a_real_domain(domain_file: Path) -> None:
    d = registry.get_domain(str(domain_file))
    assert isinstance(d, FileDomain) and d.name == "tinyfaces" and registry.get_domain("tinyfaces") is d
    assert d.resolution == 64 and d.splits() == ["test", "ood"] and not d.embedded
    files = [f.name for f in d.image_files("test")]
    assert files == ["face_0.png", "face_1.jpg", "face_2.png", "face_3.png", "face_4.png"]  # documented order
    x = d.images("test")
    assert x.shape == (5, 3, 64, 64) and x.min() >= -1 and x.max() <= 1
    assert d.images("test", limit=2).shape[0] == 2 and len(d.image_files("ood")) == 2  # the glob: PNGs only
    dirs = d.directions()
    assert set(dirs) == {"smile", "age"} and dirs["smile"].shape == (512,)
    assert torch.allclose(dirs["smile"].norm(), torch.tensor(1.0))
    pca = d.ganspace()
    assert pca["comp"].shape == (8, 512) and pca["std"].shape == (8,) and pca["edits"]["pose"].last == 4
    assert d.method_options("psp")["weights"].endswith("files/psp_ffhq_encode.pt")
    assert Path(d.method_options("psp")["weights"]).is_file()  # resolved relative to the file
    assert d.weights["generator"].sha256 and "directions/ganspace" in d.weights
    info = d.describe()
    assert info["resolution"] == 64 and info["file"] == str(domain_file.resolve())


def test_paths_expand_home_and_variables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MYDATA", str(tmp_path / "data"))
    (tmp_path / "d.toml").write_text('[generator]\npath = "$MYDATA/g.pt"\n[images]\ntest = "~/faces"\n')
    spec = parse_domain_file(tmp_path / "d.toml")
    assert spec.generator == tmp_path / "data" / "g.pt" and spec.name == "d"
    assert spec.images["test"] == [str(Path.home() / "faces")]


@pytest.mark.parametrize("text, match", [
    ('[images]\ntest = "x"\n', r"\[generator\] path"),
    ('[generator]\npath = "g.pt"\n', r"\[images\] test"),
    ('[generator]\npath = "g.pt"\n[images]\ntest = "x"\nalign = "dlib"\n', "images.align must be one of none, ffhq"),
    ('identity = "arcface"\n[generator]\npath = "g.pt"\n[images]\ntest = "x"\n', "arcface needs its weights file"),
    ('colour = 1\n[generator]\npath = "g.pt"\n[images]\ntest = "x"\n', "unknown field 'colour'"),
    ('[generator]\npath = "g.pt"\n[images]\ntest = "x"\n[directions.ganspace]\nfile = "p.pt"\n'
     'edits = { pose = [0, 5, 2, 1.0] }\n', "exclusive, > first"),
    ('[generator\n', "not a valid TOML file"),
])
def test_bad_domain_files_are_one_line_errors_naming_the_file(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(InputError, match=match) as err:
        parse_domain_file(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_generator_sha256_is_verified(domain_file: Path, tmp_path: Path) -> None:
    text = domain_file.read_text().replace('path = "files/generator.pt"',
                                           'path = "files/generator.pt"\nsha256 = "' + "0" * 64 + '"')
    bad = domain_file.parent / "bad_sha.toml"
    bad.write_text(text.replace('name = "tinyfaces"', 'name = "badsha"'))
    with pytest.raises(CheckpointError, match="does not match generator.sha256"):
        registry.get_domain(str(bad)).generator()


def test_name_of_a_registered_domain_is_refused(domain_file: Path) -> None:
    clash = domain_file.parent / "clash.toml"
    clash.write_text(domain_file.read_text().replace('name = "tinyfaces"', 'name = "peeps"'))
    with pytest.raises(Exception, match="taken by a registered domain"):
        registry.get_domain(str(clash))


def test_bench_quick_on_a_domain_file_writes_every_output(domain_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = CliRunner().invoke(main, [
        "bench", "--domain", str(domain_file), "--quick", "--methods", "e4e,optim", "--limit", "2", "--no-ood",
        "--steps", "-1,1", "--out", str(out), "--device", "cpu", "--threads", "2", "--no-progress"])
    assert result.exit_code == 0, result.output
    for name in ("results.json", "leaderboard.md", "leaderboard.csv", "edits.csv", "report.html", "rows.jsonl"):
        assert (out / name).is_file(), name
    results = json.loads((out / "results.json").read_text())
    assert set(results["methods"]) == {"e4e", "optim"} and not results["failures"]
    assert results["domains"]["tinyfaces"]["resolution"] == 64
    agg = {(a["method"], a["metric"]): a for a in results["aggregates"]}
    for method in ("e4e", "optim"):
        for metric in ("l2", "lpips", "ms_ssim", "id"):
            a = agg[(method, metric)]
            assert a["status"] in ("ok", "unavailable"), a
            if a["status"] == "unavailable":
                assert a["reason"]
        assert agg[(method, "id")]["status"] == "unavailable" and "identity" in agg[(method, "id")]["reason"]
        assert agg[(method, "l2")]["status"] == "ok" and agg[(method, "l2")]["n"] == 2
    opts = results["config"]["domain_options"]["tinyfaces"]
    assert opts["e4e"]["weights"].endswith("e4e_ffhq_encode.pt")  # the file's official weights were used
    assert results["methods"]["e4e"]["weights_sha256"]["tinyfaces"]["checkpoint"]
    from zoo.bench import ResultCache

    cache = ResultCache(out / "cache")
    recon = cache.load_tensors(next(iter(cache.keys())))["reconstruction"]
    assert recon.shape == (3, 64, 64)  # at the domain's resolution, never shrunk to another domain's
    edits = (out / "edits.csv").read_text()
    assert "interfacegan" in edits and "smile" in edits
    # no attribute scorers and identity = none: the sweep still reports the image change, growing with |step|
    change = {(e["method"], e["editor"], e["direction"], e["step"]): e for e in results["edit_aggregates"]
              if e["measure"] == "change"}
    assert change and all(e["n"] == 2 and e["mean"] > 0 for e in change.values())
    assert not [e for e in results["edit_aggregates"] if e["measure"] == "attribute"]
    ids = [e for e in results["edit_aggregates"] if e["measure"] == "id"]
    assert ids and all(e["n"] == 0 for e in ids)  # no identity model: ID kept unavailable, not faked


def test_directions_from_files_drive_the_editors(domain_file: Path) -> None:
    d = registry.get_domain(str(domain_file))
    g = d.generator().generator
    w = g.style(torch.randn(2, 512, generator=torch.Generator().manual_seed(0)))[:, None].repeat(1, g.n_latent, 1)
    ifg = registry.create_editor("interfacegan")
    assert set(ifg.directions(d)) == {"age", "smile"}
    moved = ifg.edit_latents(w, "smile", 2.0, d)
    assert torch.allclose((moved - w)[:, 0].norm(dim=-1), torch.tensor(2.0), atol=1e-4)  # unit boundary x step
    gs = registry.create_editor("ganspace")
    assert "pose" in gs.directions(d) and "pc7" in gs.directions(d) and not gs.accepts("pc8", d)
    pca = d.ganspace()
    comp, std, mean = pca["comp"][0], pca["std"][0], pca["mean"]
    out = gs.edit_latents(w, "pose", 1.5, d)  # e4e/HyperStyle: coordinate of layers [0, 4) moved to 1.5 * 2.0
    coord = ((out[:, :4] - mean) * comp).sum(-1) / std
    assert torch.allclose(coord, torch.full_like(coord, 3.0), atol=1e-3)
    assert torch.equal(out[:, 4:], w[:, 4:]) and torch.equal(gs.edit_latents(w, "pose", 0.0, d), w)
    ss = registry.create_editor("stylespace")
    assert "brow" in ss.directions(d) and ss.accepts("brow", d) and ss.channel("brow", d) == (3, 5, 1.0)
    from zoo.errors import InputError as _InputError

    bad = domain_file.parent / "far.toml"
    bad.write_text(domain_file.read_text().replace('name = "tinyfaces"', 'name = "far"')
                   .replace("pose = [0, 0, 4, 2.0]", "pose = [0, 8, 12, 2.0]"))
    far = registry.get_domain(str(bad))
    with pytest.raises(_InputError, match="beyond the generator's 10 styles"):
        gs.check_direction("pose", far, far.generator().generator.n_latent)


def test_identity_from_the_file_or_unavailable_with_the_reason(domain_file: Path) -> None:
    metric = registry.create_metric("id")
    for identity, reason in (("none", 'sets identity = "none"'),
                             ("arcface:missing/model_ir_se50.pth", "model_ir_se50.pth"),
                             ("moco:missing/moco_v2_800ep_pretrain.pt", "MoCo weights not found")):
        text = domain_file.read_text().replace('identity = "none"', f'identity = "{identity}"')
        path = domain_file.parent / f"id_{identity.split(':')[0]}.toml"
        path.write_text(text.replace('name = "tinyfaces"', f'name = "id_{identity.split(":")[0]}"'))
        d = registry.get_domain(str(path))
        got = metric.unavailable_reason(d)
        assert got is not None and reason in got, got
        with pytest.raises(CheckpointError, match="identity unavailable"):
            d.identity_model()


def test_invert_and_edit_with_the_files_official_weights(domain_file: Path, tmp_path: Path) -> None:
    """`zoo invert psp IMAGE --domain FILE` uses [methods.psp] (the paper configuration), writes 64-px outputs and a
    saved inversion that renders back exactly; `zoo edit --from` edits it with directions from the file."""
    from PIL import Image

    from zoo.inversion import Inversion

    face = domain_file.parent / "photos" / "test" / "face_1.jpg"
    before = face.read_bytes()
    inv_dir = tmp_path / "inv"
    res = CliRunner().invoke(main, ["invert", "psp", str(face), "--domain", str(domain_file), "--out", str(inv_dir)])
    assert res.exit_code == 0, res.output
    assert face.read_bytes() == before
    png = next(inv_dir.glob("*.png"))
    assert Image.open(png).size == (64, 64)
    saved = Inversion.load(next(inv_dir.glob("*.inversion.safetensors")))
    assert saved.domain is registry.get_domain(str(domain_file)) and saved.options["weights"].endswith("psp_ffhq_encode.pt")
    assert saved.extras.get("configuration") in (None, "paper")
    with torch.no_grad():
        again = ((saved.render().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)[0].permute(1, 2, 0).numpy()
    import numpy as np

    assert np.array_equal(again, np.asarray(Image.open(png).convert("RGB")))
    ed_dir = tmp_path / "ed"
    for direction in ("smile", "ganspace:pose"):
        res = CliRunner().invoke(main, ["edit", "--from", str(inv_dir), "--direction", direction, "--steps", "-1:1",
                                        "--out", str(ed_dir)])
        assert res.exit_code == 0, res.output
    strips = sorted(ed_dir.glob("*.png"))
    assert len(strips) == 2 and Image.open(strips[0]).size[1] >= 64


@pytest.mark.parametrize("resample, pil", [("bilinear", "BILINEAR"), ("lanczos", "LANCZOS")])
def test_inputs_are_resized_as_the_official_transform(tmp_path: Path, resample: str, pil: str) -> None:
    """Files of another size are resized with PIL's bilinear filter, as the official `Resize((256, 256))` on PIL
    images (Lanczos only when a domain asks for it)."""
    import numpy as np
    from PIL import Image

    from zoo.bench.inputs import load_image_file

    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, (100, 100, 3), dtype=np.uint8)
    Image.fromarray(arr).save(tmp_path / "x.png")
    x, notes = load_image_file(tmp_path / "x.png", 32, resample) if resample != "bilinear" else \
        load_image_file(tmp_path / "x.png", 32)  # bilinear is the default
    ref = np.asarray(Image.fromarray(arr).resize((32, 32), getattr(Image.Resampling, pil)), dtype=np.float32)
    assert torch.equal(x, torch.from_numpy(ref).permute(2, 0, 1) / 127.5 - 1) and "resized" in notes[0]


def test_ffhq_alignment_of_a_domain_files_photos_and_of_given_inputs(domain_file: Path, tmp_path: Path) -> None:
    """`align = "ffhq"`: split photos and photos given to `zoo invert` are the aligned crops (no face: skipped)."""
    pytest.importorskip("dlib", reason="the align extra (dlib-bin) is not installed")
    import numpy as np
    import skimage.data
    from PIL import Image

    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(skimage.data.astronaut()).save(photos / "astronaut.png")
    Image.fromarray(np.full((80, 80, 3), 128, np.uint8)).save(photos / "grey.png")
    text = domain_file.read_text().replace('name = "tinyfaces"', 'name = "aligned"').replace(
        'test = "photos/test"', f'test = "{photos}"\nalign = "ffhq"')
    path = domain_file.parent / "aligned.toml"
    path.write_text(text)
    d = registry.get_domain(str(path))
    files = d.image_files("test")
    assert len(files) == 1 and files[0] != photos / "astronaut.png" and Image.open(files[0]).size == (64, 64)
    assert any("grey.png" in n and "no face" in n for n in d.notes["test"])
    res = CliRunner().invoke(main, ["invert", "optim", str(photos / "astronaut.png"), "--domain", str(path),
                                    "-o", "steps=1", "-o", "w_avg_samples=100", "--out", str(tmp_path / "inv")])
    assert res.exit_code == 0, res.output
    assert "aligned" in res.output or "cached" in res.output  # the note says which crop was used
