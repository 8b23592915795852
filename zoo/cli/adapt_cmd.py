"""`zoo adapt IMAGES --source peeps --target lorelei --method hyperstyle`: domain adaptation (zoo.adaptation).

Output folder (--out): per input and method `<name>.<method>.png` = source | source reconstruction | target render
(the source generator and the target generator with the same codes and the same transferred change), plus
`adapt.json` (options, layers, seconds per method, inputs).
"""

from __future__ import annotations

import json
from pathlib import Path

import click
import torch

from .. import registry
from .batches import check_device, echo_err, plan_inputs, stream_images


@click.command("adapt")
@click.argument("inputs", nargs=-1, type=click.Path())
@click.option("--source", default="peeps", show_default=True, help="Source domain (its ReStyle-e4e / HyperStyle).")
@click.option("--target", default="lorelei", show_default=True,
              help="Target domain (a generator fine-tuned from the source generator).")
@click.option("--method", "methods", default="hyperstyle", show_default=True,
              help="Comma-separated: hyperstyle (codes + source HyperStyle offsets), codes (codes only), pti "
                   "(PTI-tuned source weight changes transferred).")
@click.option("--layers", default="default", show_default=True,
              help="Slots that receive offsets: default (the 16+32-px convs), all, none, res:R1,R2, indices "
                   "(5,6,8,9) or official (the 1024-px list 14,15,17,18,20,21,23,24).")
@click.option("--restyle-iters", type=click.IntRange(min=1), default=2, show_default=True,
              help="ReStyle-e4e iterations of the source codes (official default 2).")
@click.option("--hyperstyle-iters", type=click.IntRange(min=1), default=2, show_default=True,
              help="Source HyperStyle iterations (official README example 2).")
@click.option("--pti-steps", type=click.IntRange(min=1), default=None, help="PTI tuning steps (default: the "
              "pti refiner's embedded setting).")
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Output folder.")
@click.option("--split", default="test", show_default=True, help="Source split when no INPUTS are given.")
@click.option("--limit", type=click.IntRange(min=0), default=None,
              help="At most this many images (default: all inputs; 8 of the split without INPUTS).")
@click.option("--device", default="auto", show_default=True, help="cpu, cuda, cuda:N or auto.")
def adapt_command(inputs: tuple[str, ...], source: str, target: str, methods: str, layers: str, restyle_iters: int,
                  hyperstyle_iters: int, pti_steps: int | None, out: str, split: str, limit: int | None,
                  device: str) -> None:
    """Transfer INPUTS (images of the SOURCE domain; default its test split) to the TARGET domain's generator."""
    from ..adaptation.transfer import AdaptOptions, adapt
    from ..io.outputs import OutputGuard, base_name, write_png

    device = check_device(device)
    src, tgt = registry.get_domain(source), registry.get_domain(target)
    plan = plan_inputs(src, inputs, split, limit, 8)
    guard = OutputGuard(plan.files, plan.folders)
    out_dir = Path(out)
    guard.check_out_dir(out_dir)
    pairs = list(stream_images(plan, src.resolution, echo_err, src.resample))
    if not pairs:
        raise click.UsageError("no usable input images")
    x = torch.stack([img for _, img in pairs])
    names = [base_name(item.name) for item, _ in pairs]
    opts = AdaptOptions(layers=layers, restyle_iters=restyle_iters, hyperstyle_iters=hyperstyle_iters,
                        pti_steps=pti_steps, device=device)
    res = adapt(x, src, tgt, [m.strip() for m in methods.split(",") if m.strip()], opts)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for m in res.targets:
        strips = res.strips(m)
        for name, strip in zip(names, strips):
            written.append(str(write_png(strip, out_dir / f"{name}.{m}.png", guard)))
    summary = {"source": source, "target": target, "methods": list(res.targets), "layers": res.layers,
               "options": res.options, "seconds": res.seconds, "inputs": [item.name for item, _ in pairs],
               "files": written}
    (out_dir / "adapt.json").write_text(json.dumps(summary, indent=2) + "\n")
    click.echo(json.dumps({k: v for k, v in summary.items() if k != "files"}, indent=2))
