"""What a person sees of the shipped peeps edits: per editor direction, at steps ±3 on inverted test images, the mean
|Δpixel| inside the attribute's region (from the renderer), over the whole image, and the change of the domain's
attribute scorer (independent of the directions, which are fitted with a separate labeller) with the share of
images it moves the right way. Several directions files can be compared (e.g. the previous one from git).

Usage::

    python benchmarks/edit_visibility.py                                   # shipped directions, psp + optim
    git show HEAD~1:plugins/zoo_peeps/weights/directions.safetensors > old_directions.safetensors  # an earlier file
    python benchmarks/edit_visibility.py --compare old=old_directions.safetensors --methods psp,optim,e4e

Writes `benchmarks/board/peeps/edit_visibility.json` and `.md` (or `--out`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "plugins"))

import zoo  # noqa: E402
from zoo_peeps.domain import PeepsDomain  # noqa: E402

ATTRS = ("smile", "glasses", "facial_hair")


class FileDirections(PeepsDomain):
    """The peeps domain with the directions (and StyleSpace channels, regions) of another file."""

    def __init__(self, path: Path, regions: dict[str, torch.Tensor]) -> None:
        super().__init__()
        self._path, self._regions = path, regions

    def _direction_tensors(self) -> dict[str, torch.Tensor]:
        return load_file(str(self._path))

    def _direction_meta(self, key: str) -> dict:
        with safe_open(str(self._path), "pt") as f:
            meta = json.loads((f.metadata() or {}).get(key, "{}"))
        if key == "fit":  # files before the labeller were fitted with the domain's own scorers
            meta = {k: v if "labeller" in v else {**v, "scored_by": k} for k, v in meta.items()}
        return meta

    def edit_region(self, direction: str, device="cpu"):
        region = self._regions.get(direction)
        return None if region is None else region.to(device)


@torch.no_grad()
def measure(domain: PeepsDomain, inversion, editor_name: str, direction: str, step: float) -> dict:
    editor = zoo.create_editor(editor_name)
    scorer = domain.attribute_model()
    base = inversion.render().clamp(-1, 1)
    edited = editor.edit(inversion, direction, step).clamp(-1, 1)
    diff = (edited - base).abs().mean(1)
    region = domain.edit_region(direction)
    delta = scorer(edited)[direction] - scorer(base)[direction]
    out = {"change": float(diff.mean()), "independent": direction not in editor.scorers_used(direction, domain),
           "attr_delta": float(delta.mean()), "right_way": float(((delta * step) > 0).float().mean())}
    if region is not None:
        out["change_region"] = float(((diff * region).sum((1, 2)) / region.sum()).mean())
    if editor_name == "stylespace":
        slot, ch, sign = editor.channel(direction, domain)
        out["channel"] = f"{'-' if sign < 0 else ''}s{slot}_{ch}"
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--methods", default="psp,optim", help="inverters (comma-separated)")
    ap.add_argument("--limit", type=int, default=16, help="peeps test images per method")
    ap.add_argument("--steps", default="-3,3")
    ap.add_argument("--compare", action="append", default=[], help="LABEL=directions.safetensors (repeatable)")
    ap.add_argument("--out", default=str(HERE / "board" / "peeps" / "edit_visibility"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    shipped = PeepsDomain()
    regions = {a: r for a in ATTRS if (r := shipped.edit_region(a)) is not None}
    sets = {"shipped": shipped}
    for item in args.compare:
        label, _, path = item.partition("=")
        sets[label] = FileDirections(Path(path), regions)
    steps = [float(s) for s in args.steps.split(",")]
    images = shipped.images("test", limit=args.limit)
    rows, t0 = [], time.time()
    for method in args.methods.split(","):
        inversion = zoo.create_inverter_for(method, shipped).invert(images, shipped)
        for label, domain in sets.items():
            inversion.domain = domain
            fit = domain.direction_fit()
            for editor in ("interfacegan", "stylespace"):
                for direction in ATTRS:
                    for step in steps:
                        r = measure(domain, inversion, editor, direction, step)
                        acc = fit.get(direction, {})
                        rows.append({"directions": label, "method": method, "editor": editor, "direction": direction,
                                     "step": step, "heldout_accuracy": acc.get("val_accuracy",
                                                                               acc.get("heldout_accuracy")), **r})
        print(f"{method} done ({time.time() - t0:.0f} s)", file=sys.stderr)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"limit": args.limit, "steps": steps, "seconds": round(time.time() - t0, 1),
            "regions_pixels": {a: int(r.sum()) for a, r in regions.items()}}
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    out.with_suffix(".md").write_text(table(rows, meta) + "\n")
    print(table(rows, meta))


def table(rows: list[dict], meta: dict) -> str:
    """Markdown: one line per (directions, method, editor, direction), the ±step values side by side."""
    head = ("| directions | method | editor | direction | held-out acc. | region mean abs Δ (−/+) | "
            "image mean abs Δ (−/+) | Δ scorer (−/+) | right way (−/+) | independent |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    keys = list(dict.fromkeys((r["directions"], r["method"], r["editor"], r["direction"]) for r in rows))
    for k in keys:
        part = sorted((r for r in rows if (r["directions"], r["method"], r["editor"], r["direction"]) == k),
                      key=lambda r: r["step"])

        def pair(field: str, fmt: str = "{:.3f}") -> str:
            vals = [r.get(field) for r in part]
            return " / ".join("–" if v is None else fmt.format(v) for v in vals)

        acc = part[0]["heldout_accuracy"]
        name = k[3] + (f" ({part[0]['channel']})" if "channel" in part[0] else "")
        lines.append(f"| {k[0]} | {k[1]} | {k[2]} | {name} | {'–' if acc is None else f'{acc:.3f}'} | "
                     f"{pair('change_region')} | {pair('change')} | {pair('attr_delta', '{:+.3f}')} | "
                     f"{pair('right_way', '{:.2f}')} | {'yes' if part[0]['independent'] else 'no'} |")
    return "\n".join(lines) + f"\n\n{meta['limit']} peeps test images per method, steps {meta['steps']}."


if __name__ == "__main__":
    main()
