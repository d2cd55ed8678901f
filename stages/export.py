"""DVC stage `export`: the augmented dataset as a product (docs/export.md): the real training images
plus the synthetic images of the configuration evaluate chose on validation (generate's shipped
set when it chose none), val and test beside them, in the input's own format (export.format),
with DATASHEET.md; pipeline/export does the work."""

from pathlib import Path

from pipeline.export.datasheet import SheetInputs, datasheet
from pipeline.export.inputs import (
    digest, read_metrics, source_facts, summary, synthesizer_settings,
)
from pipeline.export.rows import build_export
from pipeline.export.writers import DATASHEET, resolve_format, write_export
from pipeline.stage import Stage, run


def main(s: Stage) -> None:
    cfg, out = s.cfg, Path(s.args.out)
    docs = read_metrics(Path(s.args.metrics_dir))
    prepare = docs["prepare"]
    ex = build_export(Path(s.args.data), Path(s.args.synthetic), evaluate=docs["evaluate"],
                      cfg=cfg.evaluate, class_names=list(prepare["class_names"]),
                      checkpoint_sha256=docs["generate"].get("checkpoint_sha256", ""),
                      seed=cfg.seed)
    fmt = resolve_format(cfg.export.format, cfg.data.source)
    sheet = datasheet(SheetInputs(
        ex, fmt, prepare, docs["train_gan"], docs["generate"], docs["evaluate"],
        source=source_facts(cfg.data, Path(s.args.data), Path(s.args.lock)),
        synthesizer_settings=synthesizer_settings(Path(s.args.checkpoint))))
    write_export(ex, out, fmt=fmt, datasheet=sheet)
    s.log_params("data", "export", format_resolved=fmt, chosen=ex.chosen)
    for split, context in (("train", "training"), ("val", "validation"), ("test", "test")):
        part = ex.parts[split]
        s.run.log_data(name=f"export-{split}", digest=digest(ex, split), source=str(out),
                       context=context, features=part.images, targets=part.labels)
    metrics = summary(ex, fmt)
    s.finish(metrics, [out / DATASHEET])
    print(f"export: {metrics['n_images']} images as {fmt} in {out} ({metrics['n_synthetic']} "
          f"synthetic, from {ex.chosen or 'generate target'}); see {out / DATASHEET}")


if __name__ == "__main__":
    run("export", main, {
        "data": "folder with train.npz, val.npz and test.npz",
        "synthetic": "folder with pool.npz, synthetic.npz and manifest.csv",
        "checkpoint": "generator checkpoint (its settings go into the datasheet)",
        "metrics-dir": "folder of the stages' metrics JSONs", "lock": "dvc.lock (the data's hash)",
        "out": "export folder (replaced as a whole)", "metrics": "JSON metrics file",
    })
