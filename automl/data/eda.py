"""`automl eda`: the statistics one looks at before splitting or training, as text and plotly HTML.

Images and boxes per class, image sizes, boxes per image, box aspect, box area (with the count
under a small-box threshold) and images without boxes, for train and val. Images and boxes are
read by ultralytics' own code, as its trainer reads them (automl.data.yolo_reader: polygon rows as
their boxes; images it leaves out are left out here too, and counted); image sizes come from the
image headers, EXIF rotation applied (no pixel decode).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from automl.data.dataset import Dataset, load_dataset
from automl.data.yolo_reader import ImageLabels, read_images

SMALL_AREA = 32 * 32  # COCO's "small" object: under 32x32 px


@dataclass
class SplitStats:
    """Per-image and per-box arrays of one split (train or val)."""

    name: str
    sizes: np.ndarray  # (images, 2) width, height in px, EXIF rotation applied
    boxes_per_image: np.ndarray  # (images,)
    classes: np.ndarray  # (boxes,) class id
    image_of_box: np.ndarray  # (boxes,) index into the images
    wh_px: np.ndarray  # (boxes, 2) box width, height in px
    left_out: int = 0  # images ultralytics leaves out (automl check says why)

    @property
    def areas(self) -> np.ndarray:
        return self.wh_px[:, 0] * self.wh_px[:, 1]

    @property
    def aspects(self) -> np.ndarray:
        return self.wh_px[:, 0] / np.clip(self.wh_px[:, 1], 1e-9, None)


def split_stats(name: str, reads: list[ImageLabels]) -> SplitStats:
    """The sizes and boxes of one split's images that ultralytics trains on."""
    kept = [r for r in reads if r.kept]
    sizes = np.array([r.shape[::-1] for r in kept], dtype=float).reshape(-1, 2)  # (w, h)
    counts = np.array([len(r.boxes) for r in kept], dtype=int)
    allb = np.concatenate([np.zeros((0, 5)), *(r.boxes for r in kept)]).astype(float)
    image = np.repeat(np.arange(len(kept)), counts)
    wh = allb[:, 3:5] * sizes[image] if len(allb) else np.zeros((0, 2))
    return SplitStats(name, sizes, counts, allb[:, 0].astype(int), image, wh,
                      left_out=len(reads) - len(kept))


def summary_text(stats: list[SplitStats], names: tuple[str, ...], small_area: float) -> str:
    """The EDA summary as plain text tables."""
    from automl.console import text_table

    parts = []
    header = ["class", *(f"{s.name} images" for s in stats), *(f"{s.name} boxes" for s in stats)]
    rows = []
    for c, cname in enumerate(names):
        rows.append([cname, *(len(np.unique(s.image_of_box[s.classes == c])) for s in stats),
                     *(int((s.classes == c).sum()) for s in stats)])
    parts.append(text_table(header, rows))

    header = ["", *(s.name for s in stats)]
    def row(label, f):
        return [label, *(f(s) for s in stats)]
    rows = [
        row("images", lambda s: len(s.sizes)),
        row("left out by ultralytics", lambda s: s.left_out),
        row("boxes", lambda s: len(s.classes)),
        row("images without boxes", lambda s: int((s.boxes_per_image == 0).sum())),
        row("boxes per image (median / max)", lambda s: (
            f"{np.median(s.boxes_per_image):g} / {s.boxes_per_image.max()}" if len(s.sizes) else "-")),
        row("image sizes (most common)", lambda s: ", ".join(
            f"{int(w)}x{int(h)} ({n})" for (w, h), n in Counter(map(tuple, s.sizes)).most_common(3))),
        row("box aspect w/h (p5 / median / p95)", lambda s: _quantiles(s.aspects, ".2f")),
        row("box area px (p5 / median / p95)", lambda s: _quantiles(s.areas, ".0f")),
        row(f"boxes under {small_area:g} px area", lambda s: (
            f"{int((s.areas < small_area).sum())} ({(s.areas < small_area).mean():.2%})"
            if len(s.areas) else "0")),
    ]
    parts.append(text_table(header, rows, right=False))
    return "\n\n".join("\n".join(line.rstrip() for line in p.splitlines()) for p in parts)


def _quantiles(values: np.ndarray, fmt: str) -> str:
    if not len(values):
        return "-"
    return " / ".join(format(v, fmt) for v in np.percentile(values, [5, 50, 95]))


def figure(stats: list[SplitStats], names: tuple[str, ...], small_area: float):
    """One plotly figure with a panel per statistic, train and val side by side."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    titles = ("images per class", "boxes per class", "image sizes (w x h px)",
              "boxes per image (0 = no boxes)", "box aspect w/h (log scale)",
              f"box area px (sqrt; dashed: {small_area:g} px area)")
    fig = make_subplots(rows=3, cols=2, subplot_titles=titles)
    colors = {"train": "#1f77b4", "val": "#ff7f0e"}
    for s in stats:
        kw = {"name": s.name, "legendgroup": s.name, "marker_color": colors.get(s.name)}
        per_class_images = [len(np.unique(s.image_of_box[s.classes == c])) for c in range(len(names))]
        per_class_boxes = [int((s.classes == c).sum()) for c in range(len(names))]
        fig.add_trace(go.Bar(x=list(names), y=per_class_images, **kw), 1, 1)
        fig.add_trace(go.Bar(x=list(names), y=per_class_boxes, showlegend=False, **kw), 1, 2)
        size_counts = Counter(f"{int(w)}x{int(h)}" for w, h in s.sizes).most_common(20)
        fig.add_trace(go.Bar(x=[k for k, _ in size_counts], y=[n for _, n in size_counts],
                             showlegend=False, **kw), 2, 1)
        bpi = np.bincount(s.boxes_per_image) if len(s.boxes_per_image) else np.zeros(1, int)
        fig.add_trace(go.Bar(x=list(range(len(bpi))), y=bpi.tolist(), showlegend=False, **kw), 2, 2)
        fig.add_trace(go.Histogram(x=np.log10(np.clip(s.aspects, 1e-3, None)), nbinsx=40,
                                   showlegend=False, **kw), 3, 1)
        fig.add_trace(go.Histogram(x=np.sqrt(s.areas), nbinsx=50, showlegend=False, **kw), 3, 2)
    fig.add_vline(x=float(np.sqrt(small_area)), line_dash="dash", row=3, col=2)
    fig.update_xaxes(title_text="log10(w/h): <0 tall, >0 wide", row=3, col=1)
    fig.update_layout(height=1100, barmode="group", title_text="dataset statistics")
    return fig


def write_eda(data_yaml: str | Path, out: str | Path, *, small_area: float | None = None) -> str:
    """Write the HTML report (plotly.js embedded: opens offline) and return the text summary.

    Raises:
        DataError: a malformed data.yaml.
    """
    dataset: Dataset = load_dataset(data_yaml)
    small_area = SMALL_AREA if small_area is None else small_area
    stats = [split_stats(name, read_images(files, dataset.nc, kpt_shape=dataset.kpt_shape))
             for name, files in (("train", dataset.train), ("val", dataset.val))]
    text = summary_text(stats, dataset.names, small_area)
    body = figure(stats, dataset.names, small_area).to_html(full_html=False, include_plotlyjs=True)
    from html import escape

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'>"
        f"<title>automl eda: {escape(str(dataset.yaml_path))}</title></head><body>"
        f"<h2>{escape(str(dataset.yaml_path))}</h2><pre>{escape(text)}</pre>{body}</body></html>\n",
        encoding="utf-8",
    )
    return text
