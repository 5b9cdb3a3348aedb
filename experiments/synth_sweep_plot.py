"""Plot the profile controls' drop against the share of synthetic users with a rule (from synth_sweep's sweep.json).

    python -m experiments.synth_sweep_plot runs/synth-sweep/sweep.json --out docs/img/synth_controls.png

One panel per shape; one line per method and control (solid: other-user, dashed: none). Methods whose drop is
0 at every share (they ignore the history, or apply the true rule whatever they are shown) are named in the
panel's title instead of drawn; methods with the same drops at every share share one line ("a = b").
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

CONTROL_STYLE = {"other-user": "-", "none": "--"}


def plot(rows: list[dict], out: Path) -> None:
    shapes = list(dict.fromkeys(r["shape"] for r in rows))
    fig, axes = plt.subplots(len(shapes), 1, figsize=(10, 4.6 * len(shapes)), squeeze=False)
    for ax, shape in zip(axes[:, 0], shapes):
        shape_rows = [r for r in rows if r["shape"] == shape]
        metric = shape_rows[0]["metric"]
        series: dict[tuple, list[str]] = {}  # methods with the same drops at every share share one line
        for method in dict.fromkeys(r["method"] for r in shape_rows):
            drops = tuple((r["share"], *(round(r.get(f"drop {c}", 0.0), 9) for c in CONTROL_STYLE))
                          for r in sorted(shape_rows, key=lambda r: r["share"]) if r["method"] == method)
            series.setdefault(drops, []).append(method)
        flat, colors = [], plt.get_cmap("tab10")
        for index, (drops, names) in enumerate(series.items()):
            if all(abs(d) < 1e-9 for point in drops for d in point[1:]):
                flat += names
                continue
            for position, (control, style) in enumerate(CONTROL_STYLE.items(), 1):
                ax.plot([p[0] for p in drops], [p[position] for p in drops], style, marker="o",
                        color=colors(index % 10), label=f"{' = '.join(names)} / {control}")
        ax.axhline(0, color="grey", linewidth=0.8)
        ax.set_title(f"{shape} ({metric}); flat at 0: {', '.join(flat) or 'none'}", fontsize=9)
        ax.set_xlabel("share of users with a rule")
        ax.set_ylabel(f"drop: own - control ({metric}, + = control is worse)")
        ax.legend(fontsize=7, ncol=1, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("sweep_json")
    parser.add_argument("--out", default="docs/img/synth_controls.png")
    args = parser.parse_args(argv)
    plot(json.loads(Path(args.sweep_json).read_text()), Path(args.out))


if __name__ == "__main__":
    main()
