"""What `zoo invert` and `zoo edit` share: which images to process (files, folders or a domain split, with the
limit rules), streaming them from disk in batches, the batch size per method, and the device check."""

from __future__ import annotations

import shlex
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..bench.inputs import InputItem, InputMessage, collect_inputs, load_items, split_items

if TYPE_CHECKING:
    from ..domain import Domain
    from ..inverter import Inverter

ENCODER_BATCH = 8  # default images per invert call of batchable encoders (as `zoo bench`)
DEFAULT_SPLIT_LIMIT = 8  # images of the domain split that `zoo invert` / `zoo edit` use without INPUTS (as `zoo bench`)


@dataclass
class InputPlan:
    """The images a command will process, not loaded yet (files are read batch by batch).

    items: files in the order given (folders expanded) or the domain split's first images.
    split_images: the split's images [N, 3, R, R] when the items are a domain split (else None).
    limit: stop after this many usable images (None = all). limit_option: the --limit value the user gave.
    folders / files: the input folders and files (protected from being written over).
    """

    items: list[InputItem]
    split_images: torch.Tensor | None = None
    limit: int | None = None
    limit_option: int | None = None
    folders: list[Path] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    messages: list[InputMessage] = field(default_factory=list)
    source: str = ""
    used: int = 0  # usable images streamed so far
    skipped: list[tuple[InputItem, str]] = field(default_factory=list)  # (item, why) of files that are not images
    not_reached: int = 0  # items left out by the limit

    def limit_note(self) -> str:
        """'8 of 12 inputs (--limit 8)' when the limit left inputs out, else ''."""
        if not self.not_reached:
            return ""
        return f"{self.used} of {self.used + len(self.skipped) + self.not_reached} inputs (--limit {self.limit})"


def plan_inputs(domain: Domain, paths: Iterable[str], split: str, limit: int | None, default_split_limit: int
                ) -> InputPlan:
    """Inputs from files / folders (`paths`), else the domain's `split`.

    Given inputs are never truncated by a default: `limit` None = all of them (the domain split: its first
    `default_split_limit` images); 0 = all; N = the first N usable images. Raises InputError for a path that does not
    exist or an empty folder.
    """
    paths = list(paths)
    if paths:
        items, messages = collect_inputs(paths)
        return InputPlan(items, None, limit or None, limit, folders=[Path(p) for p in paths if Path(p).is_dir()],
                         files=[i.path for i in items if i.path is not None], messages=messages,
                         source=", ".join(paths) if len(paths) <= 3 else f"{len(paths)} paths")
    n = default_split_limit if limit is None else limit
    x = domain.images(split, limit=n or None)
    desc = f"{domain.name}/{split}" + (f" (first {len(x)} images; --limit 0 = all)" if n else "")
    return InputPlan(split_items(domain.name, split, len(x)), x, None, limit, source=desc)


def stream_images(plan: InputPlan, resolution: int, echo: Callable[[str], None], resample: str = "bilinear",
                  prepare: Any = None) -> Iterator[tuple[InputItem, torch.Tensor]]:
    """Yield (item, image [3, R, R]) one usable image at a time, reading each file only now (resized with
    `resample`, the domain's choice); every conversion or skipped file is reported through `echo` (one line each)
    and skipped files are recorded in `plan.skipped`."""
    for m in plan.messages:
        echo(m.line())
    for i, item in enumerate(plan.items):
        if plan.limit is not None and plan.used >= plan.limit:
            plan.not_reached = len(plan.items) - i
            return
        x, kept, messages = load_items([item], resolution, plan.split_images, resample, prepare)
        for m in messages:
            echo(m.line())
        if not kept:
            plan.skipped.append((item, messages[-1].text if messages else "not usable"))
            continue
        plan.used += 1
        yield item, x[0]


def batched(pairs: Iterable[Any], size: int, block: Callable[[Any], int] | None = None) -> Iterator[list[Any]]:
    """Consecutive lists of at most `size` elements; with `block`, elements of different blocks never share a list
    (fixed blocks such as `position // size` make a batch independent of which elements were already done, so a
    resumed run inverts exactly the batches an uninterrupted one does)."""
    batch: list[Any] = []
    for p in pairs:
        if batch and block is not None and block(p) != block(batch[0]):
            yield batch
            batch = []
        batch.append(p)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def batch_size_for(inverter: Inverter, requested: int | None) -> int:
    """Images per invert call: `requested` for methods that can batch (`is_batchable`, as `zoo bench`), else 1.
    Default: 1 for optimisation methods (seconds to minutes per image: each image is saved as soon as it is done,
    and Ctrl-C loses at most the image in progress), 8 for encoders and hybrids."""
    from ..bench.units import is_batchable

    if not is_batchable(inverter):
        return 1
    if requested is None:
        return 1 if inverter.kind == "optimization" else ENCODER_BATCH
    return max(1, requested)


def check_device(device: str) -> str:
    """The device as `zoo bench` validates it (`resolve_device`): 'auto' resolved, InputError (one line) for an
    unknown device or CUDA on a machine without it."""
    from ..bench.config import resolve_device

    return resolve_device(device)


def command_line(words: Iterable[Any]) -> str:
    """Words -> a shell-quoted command line (None entries dropped)."""
    return " ".join(shlex.quote(str(w)) for w in words if w is not None)


def option_words(name: str, values: Iterable[Any]) -> list[str]:
    """('-o', ['a=1', 'b=2']) -> ['-o', 'a=1', '-o', 'b=2']."""
    out: list[str] = []
    for v in values:
        out += [name, str(v)]
    return out


def echo_err(line: str) -> None:
    """A `note:` / `warning:` / `skipped:` / progress line on stderr at its logging level (`zoo -q` hides notes)."""
    from .. import log as zlog

    zlog.line(line)
