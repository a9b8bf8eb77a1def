"""`automl eda`: the statistics one looks at before splitting or training, as text and plotly HTML.

Images and boxes per class, image sizes, boxes per image, box aspect, box area (with the count
under a small-box threshold) and images without boxes, for train and val as shares of each
split; where boxes sit and how large they are; sample images of each class, boxes drawn. Images
and boxes are read by ultralytics' own code, as its trainer reads them (automl.data.yolo_reader:
polygon rows as their boxes; images it leaves out are left out here too, and counted); image
sizes come from the image headers, EXIF rotation applied (pixels are decoded for the samples
alone).
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
    xywh: np.ndarray | None = None  # (boxes, 4) centre x, y, width, height as shares of the image
    files: tuple[str, ...] = ()  # (images,) the image files, as listed

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
                      left_out=len(reads) - len(kept), xywh=allb[:, 1:5],
                      files=tuple(r.image for r in kept))


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


def _share(counts) -> list[float]:
    counts = np.asarray(counts, dtype=float)
    return (counts / counts.sum()).tolist() if counts.sum() else counts.tolist()


def figure(stats: list[SplitStats], names: tuple[str, ...], small_area: float):
    """One plotly figure with a panel per statistic, train and val side by side as shares of
    their own split (a val a quarter of train's size is compared by its mix, not its counts)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    titles = ("images per class (share of the split's images)",
              "boxes per class (share of the split's boxes)",
              "image sizes, w x h px (share of images)",
              "boxes per image (share of images; 0 = no boxes)",
              "box aspect w/h (log scale; share of boxes)",
              f"box area px (sqrt; dashed: {small_area:g} px area; share of boxes)")
    fig = make_subplots(rows=3, cols=2, subplot_titles=titles)
    colors = {"train": "#1f77b4", "val": "#ff7f0e"}
    for s in stats:
        kw = {"name": s.name, "legendgroup": s.name, "marker_color": colors.get(s.name)}
        n_images = max(len(s.sizes), 1)
        per_class_images = [len(np.unique(s.image_of_box[s.classes == c])) / n_images
                            for c in range(len(names))]
        per_class_boxes = _share([int((s.classes == c).sum()) for c in range(len(names))])
        fig.add_trace(go.Bar(x=list(names), y=per_class_images, **kw), 1, 1)
        fig.add_trace(go.Bar(x=list(names), y=per_class_boxes, showlegend=False, **kw), 1, 2)
        size_counts = Counter(f"{int(w)}x{int(h)}" for w, h in s.sizes).most_common(20)
        fig.add_trace(go.Bar(x=[k for k, _ in size_counts],
                             y=[n / n_images for _, n in size_counts], showlegend=False, **kw),
                      2, 1)
        bpi = np.bincount(s.boxes_per_image) if len(s.boxes_per_image) else np.zeros(1, int)
        fig.add_trace(go.Bar(x=list(range(len(bpi))), y=_share(bpi), showlegend=False, **kw),
                      2, 2)
        fig.add_trace(go.Histogram(x=np.log10(np.clip(s.aspects, 1e-3, None)), nbinsx=40,
                                   histnorm="probability", showlegend=False, **kw), 3, 1)
        fig.add_trace(go.Histogram(x=np.sqrt(s.areas), nbinsx=50, histnorm="probability",
                                   showlegend=False, **kw), 3, 2)
    fig.add_vline(x=float(np.sqrt(small_area)), line_dash="dash", row=3, col=2)
    fig.update_xaxes(title_text="log10(w/h): <0 tall, >0 wide", row=3, col=1)
    fig.update_xaxes(title_text="sqrt(box area), px", row=3, col=2)
    fig.update_yaxes(tickformat=".0%")
    fig.update_layout(height=1100, barmode="group", title_text="dataset statistics")
    return fig


def placement_figure(stats: list[SplitStats]):
    """Where boxes sit (a heat map of their centres) and how large they are (width against
    height, as shares of the image), one column per split, colours as shares of its boxes."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=2, cols=len(stats), horizontal_spacing=0.12, vertical_spacing=0.12,
                        subplot_titles=[*(f"{s.name}: box centres" for s in stats),
                                        *(f"{s.name}: box width and height" for s in stats)])
    for i, s in enumerate(stats, 1):
        xywh = s.xywh if s.xywh is not None else np.zeros((0, 4))
        bins = {"start": 0, "end": 1, "size": 0.05}
        for row, (x, y) in ((1, (xywh[:, 0], xywh[:, 1])), (2, (xywh[:, 2], xywh[:, 3]))):
            fig.add_trace(go.Histogram2d(x=x, y=y, xbins=bins, ybins=bins, name=s.name,
                                         histnorm="probability", coloraxis="coloraxis"), row, i)
        fig.update_xaxes(title_text="x (share of width)", range=[0, 1], row=1, col=i)
        fig.update_yaxes(title_text="y (share of height)", range=[1, 0], row=1, col=i)
        fig.update_xaxes(title_text="width (share of image)", range=[0, 1], row=2, col=i)
        fig.update_yaxes(title_text="height (share of image)", range=[0, 1], row=2, col=i)
    # one colour scale for every panel: the same colour is the same share of a split's boxes
    fig.update_layout(height=900, title_text="where boxes sit (top of the image at the top) "
                                             "and how large they are",
                      coloraxis={"colorscale": "Blues",
                                 "colorbar": {"title": "share of boxes", "tickformat": ".1%"}})
    return fig


SAMPLES, THUMB = 4, 192  # sample images per class, their longer side in px


def samples_html(stats: SplitStats, names: tuple[str, ...], *, seed: int = 0,
                 boxes: bool = True) -> str:
    """Up to SAMPLES images per class with every box drawn and named (the class's own boxes
    thick), as inline PNGs: a look at the data a table cannot give. `boxes` False: class
    folders (each image one "box", its class), nothing drawn."""
    import base64
    import io
    from html import escape

    from PIL import ImageDraw, ImageOps

    from automl.data.checks import pil_open

    palette = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6",
               "#bfef45", "#fabed4", "#469990"]
    rng = np.random.default_rng(seed)
    xywh = stats.xywh if stats.xywh is not None else np.zeros((0, 4))
    rows = []
    for c, cname in enumerate(names):
        having = np.unique(stats.image_of_box[stats.classes == c])
        picked = rng.choice(having, size=min(SAMPLES, len(having)), replace=False)
        cells = []
        for i in sorted(picked.tolist()):
            with pil_open()(stats.files[i]) as im:
                im = ImageOps.exif_transpose(im).convert("RGB")
            w, h = im.size
            im.thumbnail((THUMB, THUMB))
            sx, sy = im.size[0] / w, im.size[1] / h
            draw = ImageDraw.Draw(im)
            for b in np.flatnonzero(stats.image_of_box == i) if boxes else ():
                cx, cy, bw, bh = xywh[b] * (w, h, w, h)
                k = int(stats.classes[b])
                box = [(cx - bw / 2) * sx, (cy - bh / 2) * sy, (cx + bw / 2) * sx,
                       (cy + bh / 2) * sy]
                draw.rectangle(box, outline=palette[k % len(palette)], width=3 if k == c else 1)
                draw.text((box[0] + 2, box[1] + 1), names[k] if k < len(names) else str(k),
                          fill=palette[k % len(palette)])
            buffer = io.BytesIO()
            im.save(buffer, format="PNG")
            data = base64.b64encode(buffer.getvalue()).decode()
            cells.append(f"<figure><img class='sample' alt='{escape(cname)}' "
                         f"src='data:image/png;base64,{data}'><figcaption>"
                         f"{escape(Path(stats.files[i]).name)}</figcaption></figure>")
        rows.append(f"<h3>{escape(cname)}</h3><div class='samples'>"
                    + ("".join(cells) or "<p>no image of this class</p>") + "</div>")
    drawn = " (every box drawn; the class's own boxes thick)" if boxes else ""
    return f"<h2>Sample {stats.name} images per class{drawn}</h2>" + "".join(rows)


def class_stats(name: str, dataset: Dataset, files) -> SplitStats:
    """A split of class folders: each image ultralytics trains on, one "object" of its class
    (the whole image); its size from its header, EXIF rotation applied."""
    from automl.data.checks import pil_open
    from automl.data.class_folders import verify_images
    from automl.data.yolo_reader import _ultralytics

    exif_size = _ultralytics().exif_size
    kept = [f for f, reason in zip(files, verify_images(files), strict=True) if not reason]
    sizes = []
    for f in kept:
        with pil_open()(f) as im:
            sizes.append(exif_size(im))  # (width, height)
    sizes = np.array(sizes, dtype=float).reshape(-1, 2)
    n = len(kept)
    return SplitStats(name, sizes, np.ones(n, dtype=int),
                      np.array([dataset.members[f][0] for f in kept], dtype=int), np.arange(n),
                      sizes.copy(), left_out=len(files) - n, xywh=np.zeros((n, 4)),
                      files=tuple(str(f) for f in kept))


def class_summary_text(stats: list[SplitStats], names: tuple[str, ...]) -> str:
    """A classification dataset's summary: images per class (and their share of the split),
    images left out, the most common image sizes."""
    from automl.console import text_table

    header = ["class", *(f"{s.name} images" for s in stats), *(f"{s.name} share" for s in stats)]
    rows = [[c, *(int((s.classes == i).sum()) for s in stats),
             *(f"{(s.classes == i).mean():.1%}" if len(s.classes) else "-" for s in stats)]
            for i, c in enumerate(names)]
    parts = [text_table(header, rows)]
    rows = [["images", *(len(s.sizes) for s in stats)],
            ["left out by ultralytics", *(s.left_out for s in stats)],
            ["image sizes (most common)", *(", ".join(
                f"{int(w)}x{int(h)} ({n})" for (w, h), n in Counter(map(tuple, s.sizes))
                .most_common(3)) for s in stats)]]
    parts.append(text_table(["", *(s.name for s in stats)], rows, right=False))
    return "\n\n".join("\n".join(line.rstrip() for line in p.splitlines()) for p in parts)


def class_figure(stats: list[SplitStats], names: tuple[str, ...]):
    """Images per class and image sizes, train and val side by side as shares of their split."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, subplot_titles=(
        "images per class (share of the split's images)", "image sizes, w x h px (share of images)"))
    colors = {"train": "#1f77b4", "val": "#ff7f0e"}
    for s in stats:
        kw = {"name": s.name, "legendgroup": s.name, "marker_color": colors.get(s.name)}
        fig.add_trace(go.Bar(x=list(names), y=_share(np.bincount(s.classes, minlength=len(names))),
                             **kw), 1, 1)
        size_counts = Counter(f"{int(w)}x{int(h)}" for w, h in s.sizes).most_common(20)
        fig.add_trace(go.Bar(x=[k for k, _ in size_counts],
                             y=[n / max(len(s.sizes), 1) for _, n in size_counts],
                             showlegend=False, **kw), 1, 2)
    fig.update_yaxes(tickformat=".0%")
    fig.update_layout(height=450, barmode="group", title_text="dataset statistics")
    return fig


def write_eda(data_yaml: str | Path, out: str | Path, *, small_area: float | None = None) -> str:
    """Write the HTML report (plotly.js embedded: opens offline) and return the text summary.

    Raises:
        DataError: a malformed data.yaml.
    """
    dataset: Dataset = load_dataset(data_yaml)
    small_area = SMALL_AREA if small_area is None else small_area
    if dataset.class_folders:
        stats = [class_stats(name, dataset, files)
                 for name, files in (("train", dataset.train), ("val", dataset.val))]
        text = class_summary_text(stats, dataset.names)
        body = (class_figure(stats, dataset.names).to_html(full_html=False,
                                                           include_plotlyjs=True)
                + samples_html(stats[0], dataset.names, boxes=False))
    else:
        stats = [split_stats(name, read_images(files, dataset.nc, kpt_shape=dataset.kpt_shape))
                 for name, files in (("train", dataset.train), ("val", dataset.val))]
        text = summary_text(stats, dataset.names, small_area)
        body = (figure(stats, dataset.names, small_area).to_html(full_html=False,
                                                                 include_plotlyjs=True)
                + placement_figure(stats).to_html(full_html=False, include_plotlyjs=False)
                + samples_html(stats[0], dataset.names))
    from html import escape

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    style = ("body{font-family:sans-serif;margin:2em}.samples{display:flex;flex-wrap:wrap;"
             "gap:.5em}figure{margin:0}figcaption{font-size:.8em;color:#555}")
    out.write_text(
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'>"
        f"<title>automl eda: {escape(str(dataset.yaml_path))}</title><style>{style}</style>"
        f"</head><body><h2>{escape(str(dataset.yaml_path))}</h2><pre>{escape(text)}</pre>"
        f"{body}</body></html>\n",
        encoding="utf-8",
    )
    return text
