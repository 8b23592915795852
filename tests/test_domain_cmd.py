"""`zoo domain new` / `zoo domain check` / `zoo show FILE.toml` on tiny official-format files."""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tomllib
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))
from official_files import save_interfacegan, save_rosinality, tiny_generator, write_domain  # noqa: E402

from zoo.cli import main  # noqa: E402
from zoo.encoders.official import strip_prefix  # noqa: E402
from zoo.userdomain import load_domain_generator  # noqa: E402
from zoo.userdomain.check import _Checker, short, state_dict_digest  # noqa: E402
from zoo.userdomain.spec import parse_domain_file  # noqa: E402

GOOD_BODY = '''
[generator]
path = "files/generator.pt"

[images]
test = "photos/test"
ood = "photos/ood/*.png"

[directions.interfacegan]
smile = "files/smile.pt"
'''


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    """write_domain's folder (its domain.toml, generator, pSp / e4e checkpoints, directions, photos)."""
    root = tmp_path_factory.mktemp("tinydomain")
    write_domain(root, identity="none")  # "dlib" would need the optional dlib install
    save_rosinality(tiny_generator(seed=1), root / "files" / "other_generator.pt")
    save_interfacegan(root / "files" / "wrong.pt", (1, 256))
    return root


def run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def lines(output: str, kind: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith(f"{kind}: ")]


def test_new_then_check_passes(tiny, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = run("domain", "new", "mine", "--generator", str(tiny / "files" / "generator.pt"),
              "--images", str(tiny / "photos" / "test"), "--ood", str(tiny / "photos" / "ood"),
              "--identity", "none", "--out", "sub/mine.toml")
    assert res.exit_code == 0, res.output
    out = tmp_path / "sub" / "mine.toml"
    text = out.read_text()
    data = tomllib.loads(text)
    # paths relative to the TOML's folder; the sha256 of the generator offered, commented out
    assert data["generator"]["path"] == Path(os.path.relpath(tiny / "files" / "generator.pt", out.parent)).as_posix()
    assert data["images"]["test"].startswith("../")
    assert "# sha256 = \"" in text and "sha256" not in data["generator"]
    for field in ("name", "title", "face", "resize", "identity", "notes", "licence", "sha256", "test", "ood",
                  "train", "limit", "align", "[directions.interfacegan]", "[directions.ganspace]", "edits",
                  "[directions.stylespace]", "[methods.psp]", "w_encoder", "[metrics]", "size", "lpips"):
        assert field in text, field
    spec = parse_domain_file(out)
    assert spec.generator.resolve() == (tiny / "files" / "generator.pt").resolve()
    check = run("domain", "check", str(out), "--no-estimate")
    assert check.exit_code == 0, check.output
    assert not lines(check.output, "problem")
    # never overwrites
    again = run("domain", "new", "mine", "--generator", "g.pt", "--images", "x", "--out", "sub/mine.toml")
    assert again.exit_code == 1 and "already exists" in again.output
    assert out.read_text() == text


def test_new_refuses_bad_identity_and_name(tmp_path):
    res = run("domain", "new", "x", "--generator", "g.pt", "--images", "i", "--identity", "arcface",
              "--out", str(tmp_path / "x.toml"))
    assert res.exit_code == 1 and "needs its weights file" in res.output
    res = run("domain", "new", "1bad", "--generator", "g.pt", "--images", "i", "--out", str(tmp_path / "y.toml"))
    assert res.exit_code == 1 and "must start with a letter" in res.output
    assert not (tmp_path / "x.toml").exists() and not (tmp_path / "y.toml").exists()


def test_check_write_domain_passes_with_card_and_estimate(tiny, monkeypatch):
    # the generator forward is timed for real; an IR-SE50 encoder pass at 256 px takes seconds on a CPU: stubbed
    monkeypatch.setattr(_Checker, "_time_encoder", lambda self, model: 0.5)
    res = run("domain", "check", str(tiny / "domain.toml"), "--json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["ok"] and doc["problems"] == [] and doc["warnings"] == []
    card = doc["card"]
    gen = card["generator"]
    assert (gen["format"], gen["resolution"], gen["n_styles"], gen["w_dim"], gen["mapping_layers"]) == \
        ("rosinality", 64, 10, 512, 2)
    assert card["images"]["splits"]["test"]["files"] == 5
    assert card["images"]["splits"]["ood"]["files"] == 2  # only the *.png of the glob
    assert card["images"]["splits"]["test"]["first"] == "photos/test/face_0.png"
    assert card["directions"]["interfacegan"]["smile"]["shape"] == [512]
    assert card["directions"]["ganspace"]["components"] == 8
    assert card["methods"]["psp"]["checkpoint"]["method"] == "psp"
    assert card["methods"]["e4e"]["decoder"] == "same as the generator"
    est = doc["estimate"]
    assert est["generator_forward_s"] > 0 and est["images"] == {"default_run": 7, "whole_splits": 7}
    assert est["methods"]["psp"]["per_image_s"] == 0.5  # one encoder pass x n_iters 1
    assert est["methods"]["psp"]["whole_splits_s"] == pytest.approx(0.5 * 7)
    assert est["methods"]["optim"]["per_image_s"] == pytest.approx(1000 * 3 * est["generator_forward_s"])
    assert est["methods"]["restyle_psp"]["per_image_s"] is None  # no weights: unavailable
    assert "estimate" in est["how"]


def test_broken_file_lists_every_problem(tiny):
    toml = tiny / "broken.toml"
    toml.write_text('''colour = "red"
identity = "arcface:files/model_ir_se50.pth"

[generator]
path = "files/generator.pt"
sha256 = "0000000000000000000000000000000000000000000000000000000000000000"

[images]
test = "photos/test"

[directions.interfacegan]
smile = "files/smile.pt"
wrong = "files/wrong.pt"

[methods.psq]
steps = 3

[methods.psp]
weights = "files/e4e_ffhq_encode.pt"
''')
    res = run("domain", "check", str(toml), "--no-estimate")
    assert res.exit_code == 1, res.output
    problems = lines(res.output, "problem")
    assert len(problems) == 6, problems
    expect = {
        "unknown field 'colour'": toml,
        "sha256": tiny / "files" / "generator.pt",
        "identity weights not found": tiny / "files" / "model_ir_se50.pth",
        "has shape [256]": tiny / "files" / "wrong.pt",
        "did you mean 'psp'": toml,
        "is an e4e checkpoint": tiny / "files" / "e4e_ffhq_encode.pt",
    }
    for what, file in expect.items():
        hit = [p for p in problems if what in p]
        assert len(hit) == 1, (what, problems)
        assert hit[0].startswith(f"problem: {file}: "), hit[0]
    assert "move it to [methods.e4e]" in res.output


def test_missing_generator_and_wrong_identity_file(tiny):
    toml = tiny / "nogen.toml"
    toml.write_text('identity = "curricularface:files/smile.pt"\n' + GOOD_BODY.replace("files/generator.pt",
                                                                                     "files/absent.pt"))
    res = run("domain", "check", str(toml), "--json", "--no-estimate")
    assert res.exit_code == 1
    doc = json.loads(res.stdout)
    assert len(doc["problems"]) == 2, doc["problems"]
    assert doc["problems"][0].startswith(f"{tiny / 'files' / 'absent.pt'}: generator file not found")
    assert "not a curricularface IR backbone" in doc["problems"][1]


def test_decoder_differing_from_generator_is_a_warning(tiny):
    toml = tiny / "otherdecoder.toml"
    toml.write_text(GOOD_BODY.replace("files/generator.pt", "files/other_generator.pt")
                    + '\n[methods.psp]\nweights = "files/psp_ffhq_encode.pt"\n')
    res = run("domain", "check", str(toml), "--no-estimate")
    assert res.exit_code == 0, res.output
    warnings = lines(res.output, "warning")
    assert len(warnings) == 1, warnings
    gen, _ = load_domain_generator(tiny / "files" / "other_generator.pt")
    sd = torch.load(tiny / "files" / "psp_ffhq_encode.pt", weights_only=True)["state_dict"]
    g_digest = state_dict_digest(gen.generator.state_dict())
    d_digest = state_dict_digest(strip_prefix(sd, "decoder"))
    assert g_digest != d_digest
    line = warnings[0]
    assert line.startswith(f"warning: {tiny / 'files' / 'psp_ffhq_encode.pt'}: its decoder differs")
    assert short(g_digest) in line and short(d_digest) in line


def test_digest_ignores_dtype_and_key_order():
    g = tiny_generator()
    sd = g.state_dict()
    half = {k: v.half() if v.is_floating_point() else v for k, v in reversed(list(sd.items()))}
    assert state_dict_digest(sd) != state_dict_digest(half)  # fp16 rounding changes values ...
    as_fp32 = {k: v.float() for k, v in half.items()}
    assert state_dict_digest(as_fp32) == state_dict_digest(dict(reversed(list(as_fp32.items()))))  # ... order not


def test_show_domain_file_prints_the_check(tiny, tmp_path, monkeypatch):
    monkeypatch.setattr(_Checker, "_time_generator", lambda self: 0.01)  # same numbers in both outputs
    toml = tiny / "showme.toml"
    toml.write_text(GOOD_BODY)
    shown = run("show", str(toml))
    assert shown.exit_code == 0, shown.output
    assert "domain showme" in shown.output and "bench time estimate" in shown.output
    assert re.search(r"^ok, 0 warnings", shown.output, re.M)
    checked = run("domain", "check", str(toml))
    assert checked.exit_code == 0
    clock = re.compile(r"checked in [\d.]+ s")
    assert clock.sub("", shown.output) == clock.sub("", checked.output)
    as_json = json.loads(run("show", str(toml), "--json").stdout)
    assert as_json["card"]["name"] == "showme"
    copy = tmp_path / "broken_show.toml"
    shutil.copy(toml, copy)  # paths now resolve against tmp_path: nothing exists
    bad = run("show", str(copy))
    assert bad.exit_code == 1 and lines(bad.output, "problem")


@pytest.mark.parametrize("name", ["ffhq", "cars"])
def test_example_domain_files_parse(name):
    path = Path(__file__).parents[1] / "examples" / "domains" / f"{name}.toml"
    spec = parse_domain_file(path, strict=False)
    assert spec.problems == [] and spec.name == name
    assert "hyperstyle" in spec.methods and spec.ganspace_file is not None
