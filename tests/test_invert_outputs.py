"""`zoo invert` / `zoo edit` outputs on the embedded `peeps` domain and its shipped weights: whole inversions saved
and re-rendered exactly, unique output names with a manifest, inputs never overwritten, batches streamed and saved
as they finish, Ctrl-C and --resume, files and folders as arguments without a silent limit, one-line errors."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from click.testing import CliRunner, Result
from PIL import Image

from zoo import registry
from zoo.cli import main
from zoo.inversion import Inversion, TunedWeights, WeightOffsets

# the cheapest options of every method that has costly ones (2 optimisation steps, LPIPS at 64 px)
CHEAP: dict[str, list[str]] = {
    "optim": ["steps=2", "lpips_size=64", "w_avg_samples=1000"],
    "optim_wplus": ["steps=2", "lpips_size=64", "w_avg_samples=1000"],
    "pti": ["pivot_steps=2", "steps=2", "lpips_size=64", "w_avg_samples=200"],
    "idinvert": ["steps=2", "lpips_size=64"],
    "restyle_psp": ["n_iters=2"], "restyle_e4e": ["n_iters=2"], "hyperstyle": ["n_iters=2"],
}


def run(*args: Any) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def quantize(x: torch.Tensor) -> np.ndarray:
    """What the PNG writer stores: [3, H, W] in [-1, 1] -> uint8 [H, W, 3]."""
    return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).numpy()


def png(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def save_image(x: torch.Tensor, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(quantize(x)).save(path)
    return path


@pytest.fixture(scope="module")
def peeps() -> Any:
    return registry.get_domain("peeps")


@pytest.fixture(scope="module")
def test_images(peeps: Any) -> torch.Tensor:
    return peeps.images("test", limit=12)


@pytest.fixture(scope="module", autouse=True)
def _two_threads() -> Any:
    old = torch.get_num_threads()
    torch.set_num_threads(min(old, 2))
    yield
    torch.set_num_threads(old)


def manifest(out: Path) -> dict[str, Any]:
    return json.loads((out / "manifest.json").read_text())


def one_line_error(res: Result) -> str:
    lines = [line for line in res.output.splitlines() if line.startswith("Error:")]
    assert res.exit_code == 1 and len(lines) == 1 and "Traceback" not in res.output, res.output
    return lines[0]


class Spy:
    """Records every Inversion an inverter class returns (and optionally interrupts the n-th call)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, cls: type, interrupt_at: int | None = None) -> None:
        self.calls: list[int] = []
        self.results: list[Inversion] = []
        original = cls.invert

        def invert(inner: Any, images: torch.Tensor, domain: Any, *, progress: bool = False) -> Inversion:
            self.calls.append(len(images))
            if interrupt_at is not None and len(self.calls) == interrupt_at:
                raise KeyboardInterrupt
            out = original(inner, images, domain, progress=progress)
            self.results.append(out)
            return out

        monkeypatch.setattr(cls, "invert", invert)


# ------------------------------------------------------------------------------------------- 1. whole inversions
# the built-in inverters (a fixed list: the test ids must not depend on which third-party plugins a venv holds)
BUILTIN = ("optim", "optim_wplus", "pti", "idinvert", "idinvert_encoder", "psp", "e4e", "restyle_psp",
           "restyle_e4e", "hyperstyle")


def test_every_builtin_inverter_is_covered() -> None:
    builtin = [n for n in registry.list_inverters()
               if registry.get_registration("inverter", n).origin()["distribution"] == "inversion-zoo"]
    assert sorted(builtin) == sorted(BUILTIN)


@pytest.mark.parametrize("method", BUILTIN)
def test_saved_inversion_rerenders_the_written_reconstruction(method: str, tmp_path: Path, test_images: torch.Tensor,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "in"
    for i in range(2):
        save_image(test_images[i], src / f"img{i}.png")
    spy = Spy(monkeypatch, registry.get_inverter_class(method))
    out = tmp_path / "out"
    opts = [w for o in CHEAP.get(method, []) for w in ("-o", o)]
    res = run("invert", method, src, "--out", out, "--batch-size", 2, *opts)
    assert res.exit_code == 0, res.output
    recon = torch.cat([r.reconstructions for r in spy.results]).cpu()
    entries = manifest(out)["entries"]
    assert [e["input"] for e in entries] == [str(src / "img0.png"), str(src / "img1.png")]
    for i, e in enumerate(entries):
        assert e["status"] == "done"
        loaded = Inversion.load(out / e["inversion"])
        assert loaded.method == method and loaded.domain.name == "peeps" and len(loaded) == 1
        assert loaded.sources[0]["path"] == str(src / f"img{i}.png") and loaded.options == manifest(out)["options"]
        with torch.no_grad():
            again = loaded.render()
        np.testing.assert_array_equal(quantize(again[0]), png(out / e["reconstruction"]))
        torch.testing.assert_close(again[0], recon[i], atol=1e-4, rtol=0)
        torch.testing.assert_close(loaded.reconstructions[0], recon[i], atol=1e-5, rtol=0)
        np.testing.assert_array_equal(quantize(loaded.images[0]), png(src / f"img{i}.png"))
        assert loaded.seconds.shape == (1,) and float(loaded.seconds[0]) == pytest.approx(e["seconds"])
    last = spy.results[-1]
    if isinstance(last.change, WeightOffsets):
        assert isinstance(loaded.change, WeightOffsets)
    if isinstance(last.change, TunedWeights):
        assert isinstance(loaded.change, TunedWeights) and loaded.change.deltas[0]
    assert (loaded.noise is None) == (last.noise is None)


def test_inversion_save_load_api_keeps_every_part(tmp_path: Path, peeps: Any, test_images: torch.Tensor) -> None:
    inv = registry.create_inverter("optim", steps=2, lpips_size=64, w_avg_samples=1000)
    out = inv.invert(test_images[:2], peeps)
    path = out.save(tmp_path / "both.inversion.safetensors")
    back = Inversion.load(path, domain="peeps")
    assert torch.equal(back.latents, out.latents) and torch.equal(back.reconstructions, out.reconstructions)
    assert all(torch.equal(a, b) for a, b in zip(back.noise, out.noise))
    assert back.extras["steps_run"] == out.extras["steps_run"]
    with torch.no_grad():
        assert torch.equal(back.render(), out.render())
        assert torch.equal(back.select([1]).render(), out.select([1]).render())
    assert back.select([1]).extras["steps_run"] == [out.extras["steps_run"][1]]
    from zoo.errors import InputError

    (tmp_path / "junk.inversion.safetensors").write_bytes(b"not a tensor file")
    with pytest.raises(InputError, match="junk.inversion.safetensors: not a saved inversion"):
        Inversion.load(tmp_path / "junk.inversion.safetensors")


# ------------------------------------------------------------------------------------------- 2. unique names
def test_same_stem_inputs_get_distinct_outputs_and_a_manifest(tmp_path: Path, test_images: torch.Tensor) -> None:
    src = tmp_path / "photos"
    save_image(test_images[0], src / "face.png")
    save_image(test_images[1], src / "face.jpg")
    out = tmp_path / "out"
    res = run("invert", "psp", src, "--out", out)
    assert res.exit_code == 0, res.output
    assert res.stdout.startswith("2 images inverted")
    m = manifest(out)
    by_input = {e["input"]: e for e in m["entries"]}
    assert set(by_input) == {str(src / "face.png"), str(src / "face.jpg")}
    assert by_input[str(src / "face.png")]["reconstruction"] == "face_png.png"
    assert by_input[str(src / "face.jpg")]["reconstruction"] == "face_jpg.png"
    assert len(list(out.glob("*.png"))) == 2 and len(list(out.glob("*.inversion.safetensors"))) == 2
    # two folders with the same file names: one strip each
    a, b = tmp_path / "dirA", tmp_path / "dirB"
    save_image(test_images[2], a / "x.png")
    save_image(test_images[3], a / "y.png")
    save_image(test_images[4], b / "x.png")
    res = run("edit", a, b, "-m", "psp", "-d", "smile", "--steps", "0,1", "--out", tmp_path / "ed")
    assert res.exit_code == 0, res.output
    assert res.stdout.startswith("3 strip(s)")
    strips = sorted(p.name for p in (tmp_path / "ed").glob("*.png"))
    assert strips == ["dirA_x_png_psp_interfacegan_smile.png", "dirB_x_png_psp_interfacegan_smile.png",
                      "y_png_psp_interfacegan_smile.png"]
    inputs = {e["input"]: e["strip"] for e in manifest(tmp_path / "ed")["entries"]}
    assert inputs[str(b / "x.png")] == "dirB_x_png_psp_interfacegan_smile.png" and len(inputs) == 3


# ------------------------------------------------------------------------------------------- 3. never overwrite
def test_inputs_and_earlier_outputs_are_never_overwritten(tmp_path: Path, test_images: torch.Tensor) -> None:
    src = tmp_path / "photos"
    portrait = save_image(test_images[0], src / "portrait.png")
    before = portrait.read_bytes()
    err = one_line_error(run("invert", "psp", src, "--out", src))
    assert "is the input folder" in err and portrait.read_bytes() == before
    (tmp_path / "link").symlink_to(src, target_is_directory=True)
    assert "is the input folder" in one_line_error(run("invert", "psp", src, "--out", tmp_path / "link"))
    assert "is the input folder" in one_line_error(run("edit", src, "-m", "psp", "-d", "smile", "--out", src))
    assert sorted(p.name for p in src.iterdir()) == ["portrait.png"] and portrait.read_bytes() == before
    # an input file inside --out whose name an output would take: the output gets another name
    out = tmp_path / "out"
    clash = save_image(test_images[1], out / "face_png.png")
    clash_bytes = clash.read_bytes()
    save_image(test_images[2], tmp_path / "other" / "face.png")
    res = run("invert", "psp", tmp_path / "other" / "face.png", clash, "--out", out)
    assert res.exit_code == 0, res.output
    assert clash.read_bytes() == clash_bytes
    names = {e["input"]: e["reconstruction"] for e in manifest(out)["entries"]}
    assert names[str(tmp_path / "other" / "face.png")] == "face_png-2.png"
    assert names[str(clash)] == "face_png_png.png"
    # an earlier run is kept unless resumed or replaced on purpose
    first = (out / "face_png-2.png").read_bytes()
    err = one_line_error(run("invert", "e4e", tmp_path / "other", "--out", out))
    assert "already holds a `zoo invert` run" in err and "--resume" in err and "--overwrite" in err
    assert (out / "face_png-2.png").read_bytes() == first
    res = run("invert", "e4e", tmp_path / "other", "--out", out, "--overwrite")
    assert res.exit_code == 0, res.output
    assert manifest(out)["method"] == "e4e" and clash.read_bytes() == clash_bytes
    # files in a folder that is not a run are not replaced either
    loose = tmp_path / "loose"
    save_image(test_images[3], loose / "keep.png")
    save_image(test_images[3], loose / "face_png.png")
    kept = (loose / "face_png.png").read_bytes()
    err = one_line_error(run("invert", "psp", tmp_path / "other", "--out", loose))
    assert "face_png.png already exists" in err and (loose / "face_png.png").read_bytes() == kept


# ------------------------------------------------------------------------------------------- 4./5. streaming, Ctrl-C
def test_batches_are_streamed_saved_as_they_finish_and_resumed_after_ctrl_c(
        tmp_path: Path, test_images: torch.Tensor, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "in"
    for i in range(4):
        save_image(test_images[i], src / f"p{i}.png")
    cls = registry.get_inverter_class("optim")
    loads: list[str] = []
    import zoo.bench.inputs as inputs_module

    original_load = inputs_module.load_image_file

    def counting_load(path: Any, resolution: int, *args: Any) -> Any:
        loads.append(Path(path).name)
        return original_load(path, resolution, *args)

    monkeypatch.setattr(inputs_module, "load_image_file", counting_load)
    spy = Spy(monkeypatch, cls, interrupt_at=3)
    out = tmp_path / "out"
    res = run("invert", "optim", src, "--out", out, "-o", "steps=2", "-o", "lpips_size=64", "-o",
              "w_avg_samples=1000")
    assert res.exit_code == 130, res.output
    assert spy.calls == [1, 1, 1]  # optimisation methods: one image per call
    assert loads == ["p0.png", "p1.png", "p2.png"]  # read from disk batch by batch, not all at once
    m = manifest(out)
    assert m["status"] == "interrupted" and [e["status"] for e in m["entries"]] == ["done", "done", "pending",
                                                                                     "pending"]
    assert sorted(p.name for p in out.glob("*.png")) == ["p0_png.png", "p1_png.png"]
    line = next(x for x in res.output.splitlines() if x.startswith("Interrupted:"))
    assert "kept 2 finished image(s) of 4" in line
    command = shlex.split(line.split("resume with: ", 1)[1])
    assert command[:3] == ["zoo", "invert", "optim"] and command[-1] == "--resume"
    # a changed input is redone; the unchanged finished one is not
    kept = (out / "p1_png.inversion.safetensors").read_bytes()
    save_image(test_images[7], src / "p0.png")
    spy = Spy(monkeypatch, cls)
    res = run(*command[1:])
    assert res.exit_code == 0, res.output
    assert spy.calls == [1, 1, 1] and "3 images inverted with optim" in res.output
    assert "1 already done (--resume)" in res.output
    assert (out / "p1_png.inversion.safetensors").read_bytes() == kept
    m = manifest(out)
    assert m["status"] == "complete" and all(e["status"] == "done" for e in m["entries"])
    loaded = Inversion.load(out / "p0_png.inversion.safetensors")
    np.testing.assert_array_equal(quantize(loaded.images[0]), quantize(test_images[7]))


def test_encoders_invert_in_batches_of_batch_size(tmp_path: Path, test_images: torch.Tensor,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "in"
    for i in range(5):
        save_image(test_images[i], src / f"p{i}.png")
    spy = Spy(monkeypatch, registry.get_inverter_class("psp"))
    res = run("invert", "psp", src, "--out", tmp_path / "out", "--batch-size", 2)
    assert res.exit_code == 0, res.output
    assert spy.calls == [2, 2, 1]


# ------------------------------------------------------------------------------------------- 6. inputs, limits
def test_files_and_folders_as_arguments_and_no_silent_limit(tmp_path: Path, test_images: torch.Tensor) -> None:
    src = tmp_path / "many"
    for i in range(10):
        save_image(test_images[i], src / f"m{i:02d}.png")
    single = save_image(test_images[11], tmp_path / "face.png")
    res = run("invert", "psp", single, "--out", tmp_path / "one")
    assert res.exit_code == 0, res.output
    assert res.stdout.startswith("1 image inverted with psp")
    res = run("invert", "psp", single, src, "--out", tmp_path / "all")
    assert res.exit_code == 0, res.output
    assert res.stdout.startswith("11 images inverted") and "--limit" not in res.output
    res = run("invert", "psp", src, "--out", tmp_path / "lim", "--limit", 8)
    assert res.exit_code == 0, res.output
    assert res.stdout.startswith("8 images inverted") and "8 of 10 inputs (--limit 8)" in res.output
    assert [e["status"] for e in manifest(tmp_path / "lim")["entries"]][-2:] == ["not_reached", "not_reached"]
    res = run("invert", "psp", "--images", src, "--out", tmp_path / "alias")  # deprecated alias still works
    assert res.exit_code == 0, res.output
    assert "deprecated" in res.output and "10 images inverted" in res.output
    res = run("invert", "psp", "--out", tmp_path / "split")  # no inputs: the domain's split, first 8
    assert res.exit_code == 0, res.output
    assert res.stdout.startswith("8 images inverted")
    assert "no such file or folder" in one_line_error(run("invert", "psp", tmp_path / "nope.png", "--out",
                                                          tmp_path / "x"))


# ------------------------------------------------------------------------------------------- edit --from
def test_edit_from_saved_inversions_without_inverting_again(tmp_path: Path, test_images: torch.Tensor,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "in"
    for i in range(2):
        save_image(test_images[i], src / f"e{i}.png")
    out = tmp_path / "inv"
    assert run("invert", "hyperstyle", src, "--out", out, "-o", "n_iters=2").exit_code == 0
    spy = Spy(monkeypatch, registry.get_inverter_class("hyperstyle"))
    res = run("edit", "--from", out, "-d", "smile", "--steps", "0,2", "--out", tmp_path / "ed")
    assert res.exit_code == 0, res.output
    assert spy.calls == [] and res.stdout.startswith("2 strip(s)")
    strip = png(tmp_path / "ed" / "e0_png_hyperstyle_interfacegan_smile.png")
    tiles = [strip[:, k * 32 : (k + 1) * 32] for k in range(4)]  # input | reconstruction | step 0 | step 2
    np.testing.assert_array_equal(tiles[0], png(src / "e0.png"))
    np.testing.assert_array_equal(tiles[2], png(out / "e0_png.png"))  # offsets kept: step 0 = the reconstruction
    assert np.abs(tiles[3].astype(int) - tiles[2].astype(int)).mean() > 0.5
    res = run("edit", "--from", out / "e1_png.inversion.safetensors", "-d", "smile", "--steps", "0",
              "--out", tmp_path / "ed1")
    assert res.exit_code == 0, res.output
    assert "unknown domain 'tiny'" in one_line_error(  # a name that is not a domain is refused before any work
        run("edit", "--from", out, "-d", "smile", "--domain", "tiny", "--out", tmp_path / "ed2"))
    assert "not a saved inversion" in one_line_error(
        run("edit", "--from", src / "e0.png", "-d", "smile", "--out", tmp_path / "ed3"))


# ------------------------------------------------------------------------------------------- 7. small things
def test_edit_errors_do_not_name_images_option_and_devices_are_checked(tmp_path: Path) -> None:
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "readme.txt").write_text("not an image")
    err = one_line_error(run("edit", folder, "-m", "psp", "-d", "smile", "--out", tmp_path / "ed"))
    assert "--images" not in err and str(folder) in err
    assert "--images" not in run("edit", "--help").output
    if not torch.cuda.is_available():
        for args in (["invert", "psp", "--out", tmp_path / "a"], ["edit", "-m", "psp", "-d", "smile"]):
            err = one_line_error(run(*args, "--device", "cuda"))
            assert "CUDA is not available" in err and "unexpected" not in err
    assert "unknown device" in one_line_error(run("invert", "psp", "--out", tmp_path / "b", "--device", "gpu0"))
