"""Data module of the embedded `peeps` domain: rendering, ground truth, splits, cache, OOD."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

try:
    import zoo_peeps  # noqa: F401
except ImportError:  # running from a checkout that is not pip-installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins"))

from zoo_peeps import avatars, dataset  # noqa: E402

TINY = {"n_ids": 3, "n_var": 2}


@pytest.fixture
def zoo_home(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_HOME", str(tmp_path))
    return tmp_path


def _frontal(
    identity_seed: int, **changes: object
) -> tuple[avatars.IdentityOptions, avatars.EditableAttributes]:
    """An identity with a plain, unposed face; ``changes`` edit the attributes."""
    attrs = avatars.EditableAttributes(expression="serious")
    return avatars.sample_identity(identity_seed), dataclasses.replace(attrs, **changes)


def _changed_rows(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    rows = np.nonzero(np.abs(a.astype(int) - b.astype(int)).max(axis=(1, 2)) > 8)[0]
    assert rows.size, "images should differ"
    return rows.min() / a.shape[0], (rows.max() + 1) / a.shape[0]


def test_render_is_deterministic():
    first = avatars.render_index(7, 3, 32)
    again = avatars.render_index(7, 3, 32)
    assert first.dtype == np.uint8 and first.shape == (32, 32, 3)
    assert np.array_equal(first, again)
    assert avatars.sample_identity(7) == avatars.sample_identity(7)
    assert avatars.sample_attributes(7, 3) == avatars.sample_attributes(7, 3)
    assert not np.array_equal(first, avatars.render_index(8, 3, 32))


def test_bad_input_raises_value_error():
    ident, attrs = _frontal(0)
    for size in (8, 20, 48, "32", True):
        with pytest.raises(ValueError, match="power of 2"):
            avatars.render(ident, attrs, size)
    with pytest.raises(ValueError, match="unknown head"):
        avatars.render(dataclasses.replace(ident, head="nope"), attrs, 16)
    with pytest.raises(ValueError, match="non-negative"):
        avatars.sample_identity(-1)
    with pytest.raises(ValueError, match="unknown split"):
        dataset.load_split("val", 32)
    with pytest.raises(ValueError, match="disjoint"):
        dataset.split_spec("train", n_ids=dataset.MAX_TRAIN_IDS + 1)


def test_train_and_test_identities_are_disjoint():
    train = dataset.split_index(dataset.split_spec("train"))
    test = dataset.split_index(dataset.split_spec("test"))
    assert len(train) == 3000 * 8 and len(test) == 300 * 4
    train_ids, test_ids = {s for s, _ in train}, {s for s, _ in test}
    assert len(train_ids) == 3000 and len(test_ids) == 300
    assert train_ids.isdisjoint(test_ids)
    assert max(train_ids) < dataset.MAX_TRAIN_IDS <= min(test_ids)


def test_labels_follow_the_sampled_options():
    rows = pd.DataFrame([avatars.labels_for(s, v) for s in range(400) for v in range(5)])
    assert (rows["smile"] == rows["expression"].isin(avatars.SMILE_FACES)).all()
    assert rows["expression"].isin(avatars.EXPRESSIONS).all()
    assert (rows["glasses"] == rows["accessory"].isin(avatars.GLASSES)).all()
    assert (rows["sunglasses"] == rows["accessory"].isin(avatars.SUNGLASSES)).all()
    assert (rows["eyepatch"] == (rows["accessory"] == "eyepatch")).all()
    assert (rows[["glasses", "sunglasses", "eyepatch"]].sum(axis=1) <= 1).all()
    assert (rows["facial_hair"] == (rows["facial_hair_style"] != "none")).all()
    assert (rows["mask"] == (rows["mask_style"] != "none")).all()
    # identity options depend on the identity only
    per_identity = rows.groupby("identity_id")[["head", "hair_color", "skin_color", "clothing_color"]]
    assert (per_identity.nunique() == 1).all().all()
    # mostly clean faces, at the documented rates
    rates = rows[["smile", "glasses", "sunglasses", "eyepatch", "facial_hair", "mask"]].mean()
    expected = [0.5, 0.30, 0.04, 0.02, 0.25, 0.05]
    assert np.allclose(rates.to_numpy(), expected, atol=0.04), rates
    assert rows["rotation"].abs().max() <= avatars.MAX_ROTATION_DEG
    assert rows[["tx", "ty"]].abs().max().max() <= avatars.MAX_SHIFT


def test_edits_change_the_expected_region():
    ident, plain = _frontal(11)
    base = avatars.render(ident, plain, 64)
    glasses = avatars.render(ident, dataclasses.replace(plain, accessory="glasses3"), 64)
    top, bottom = _changed_rows(base, glasses)
    assert 0.3 <= top and bottom <= 0.7  # eye band only
    smile = avatars.render(ident, dataclasses.replace(plain, expression="smileBig"), 64)
    top, bottom = _changed_rows(base, smile)
    assert 0.3 <= top and bottom <= 0.8  # face only, not hair top or clothes
    smiling = dataclasses.replace(plain, expression="smileBig")
    assert avatars.attribute_labels(smiling)["smile"] == 1
    assert avatars.attribute_labels(plain)["smile"] == 0
    moved = avatars.render(ident, dataclasses.replace(plain, tx=0.05, rotation_deg=5.0), 64)
    assert not np.array_equal(base, moved)
    bg = np.array(avatars.BACKGROUND, dtype=np.uint8)
    assert (base[0, 0] == bg).all() and (moved[0, 0] == bg).all()  # background fill


def test_parallel_render_equals_serial():
    index = [(s, v) for s in (1, 2, 3) for v in (0, 1)]
    serial = dataset.render_many(index, 16, workers=1, progress=False)
    parallel = dataset.render_many(index, 16, workers=2, progress=False)
    assert np.array_equal(serial, parallel)


def test_cache_round_trip(zoo_home, monkeypatch):
    built = dataset.load_split("test", 16, **TINY, progress=False)
    path = zoo_home / "peeps" / "v1" / "test_16_3x2.npz"
    assert path.exists() and path.with_suffix(".json").exists()
    manifest = json.loads(path.with_suffix(".json").read_text())
    assert manifest["render_spec"] == avatars.RENDER_SPEC_VERSION and len(manifest["sha256"]) == 64
    assert built.images.shape == (6, 16, 16, 3) and len(built.labels) == 6
    assert list(built.labels["identity_id"]) == [1_000_000 + i // 2 for i in range(6)]

    def no_render(*args, **kwargs):
        raise AssertionError("a valid cache must not be re-rendered")

    monkeypatch.setattr(dataset, "render_many", no_render)
    loaded = dataset.load_split("test", 16, **TINY, progress=False)
    assert np.array_equal(loaded.images, built.images)
    pd.testing.assert_frame_equal(loaded.labels, built.labels)
    # a limit is served by the valid full cache
    head = dataset.load_split("test", 16, **TINY, limit=3, progress=False)
    assert np.array_equal(head.images, built.images[:3]) and len(head.labels) == 3


def test_corrupt_cache_is_detected_and_rebuilt(zoo_home):
    built = dataset.load_split("test", 16, **TINY, progress=False)
    path = dataset.cache_path("test", 16, dataset.split_spec("test", **TINY))
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size // 2)
    with pytest.warns(UserWarning, match="rebuilding"):
        rebuilt = dataset.load_split("test", 16, **TINY, progress=False)
    assert np.array_equal(rebuilt.images, built.images)
    assert json.loads(path.with_suffix(".json").read_text())["sha256"] == dataset._sha256(path)


def test_cache_root_resolution(monkeypatch, tmp_path):
    monkeypatch.delenv("ZOO_HOME", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert dataset.cache_root() == tmp_path / "zoo"
    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "home"))
    assert dataset.cache_root() == tmp_path / "home"


def test_tensors_are_in_range():
    split = dataset.PeepsSplit(
        "test", 16, dataset.render_many([(1, 0), (2, 1)], 16, progress=False), pd.DataFrame()
    )
    x = split.to_tensor()
    assert x.shape == (2, 3, 16, 16) and x.dtype == torch.float32
    assert x.min() >= -1.0 and x.max() <= 1.0 and x.min() < -0.9 and x.max() > 0.9
    assert split.to_tensor(1).shape == (1, 3, 16, 16)
    assert torch.equal(split.to_tensor(np.array([1])), split.to_tensor(1))


def test_load_ood():
    x = dataset.load_ood(32)
    assert x.shape == (100, 3, 32, 32) and x.dtype == torch.float32
    assert x.min() >= -1.0 and x.max() <= 1.0 and x.std() > 0.2
    assert torch.equal(x[:, 0], x[:, 2])  # grey replicated to RGB
