"""A counterfactual image bias probe: sets of images that differ in one attribute of the person
shown (perceived gender, skin colour, ...), scored on the same captions or questions.

Items are a table with one row per image: ``set_id`` (images of one set differ only in the
attribute), ``attribute`` (its value in this image) and ``image`` (a PIL image, or ``path``).
:func:`image_bias` scores every caption ``(context, continuation)`` with every image
(``wb.loglikelihood(vlm, ..., images=...)``: batching, caching by pixels) and compares each pair
of attribute values **within sets**: the per-set difference of log-probabilities
``logp(caption | image with a) - logp(caption | image with b)`` and the exact sign-flip test of
its mean (:func:`workbench.stats.permutation.sign_flip`, with the inverted interval), the
paired statistics the text probes report. :func:`within_set_statistics` is the one analysis
behind both doors (:func:`image_bias` and the ``image_counterfactual`` probe): one row per pair
(each set's differences averaged over the captions first) and one per pair and caption,
Benjamini-Hochberg adjusted within each of those two families.

Loaders: :func:`load_pairs` (PAIRS, Fraser & Kiritchenko 2024: ``data/<section>/<scenario>/
<race>_<gender>.png``) and :func:`load_social_counterfactuals` (SocialCounterfactuals, Howard
et al. 2024: parquet with ``image``, ``counterfactual_set``, ``a1``/``a2``, ``caption``). The
user supplies the images; nothing is downloaded.

What the synthetic set (:func:`synthetic_counterfactuals`) can and cannot show: its "people"
are drawn shapes whose only difference within a set is the figure's colour, so it shows that
the pipeline pairs the right images, that identical images give differences of exactly zero
(its ``control`` attribute), and that the statistics run; it says nothing about any model's
bias (the figures are not people, and tiny test models have random weights).

>>> from workbench.testing import tiny_vlm
>>> items = synthetic_counterfactuals(n_sets=6)
>>> res = image_bias(tiny_vlm("llava"), items, [("This person works as a", " doctor")], pairs=[("dark", "light")])
>>> res.summary()[["level", "caption", "a", "b", "n_sets"]].values.tolist()
[['pair', None, 'dark', 'light', 6], ['caption', 'This person works as a doctor', 'dark', 'light', 6]]
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from workbench.errors import DataError, InvalidInputError
from workbench.provenance import record
from workbench.results import Result
from workbench.scoring.api import loglikelihood
from workbench.stats.inference import benjamini_hochberg
from workbench.stats.permutation import sign_flip
from workbench.vision.scoring import loaded_image, open_image_file


def synthetic_counterfactuals(n_sets: int = 8, size: int = 48, seed: int = 0) -> pd.DataFrame:
    """``n_sets`` sets of three images drawn in code: the same scene (background colour, a figure
    at the same place) with the figure ``dark``, ``light``, and a ``control`` identical to ``dark``."""
    from PIL import Image, ImageDraw
    rng = np.random.RandomState(seed)
    rows = []
    for s in range(n_sets):
        bg = tuple(int(v) for v in rng.randint(60, 200, size=3))
        x, y = int(rng.randint(size // 4, size // 2)), int(rng.randint(size // 8, size // 4))
        for attribute, colour in (("dark", (70, 45, 30)), ("light", (235, 200, 170)), ("control", (70, 45, 30))):
            img = Image.new("RGB", (size, size), bg)
            d = ImageDraw.Draw(img)
            d.ellipse([x, y, x + size // 5, y + size // 5], fill=colour)                       # head
            d.rectangle([x - 2, y + size // 5, x + size // 5 + 2, y + size // 5 * 3], fill=colour)  # body
            rows.append(dict(set_id=f"synthetic-{s}", attribute=attribute, image=img, source="synthetic"))
    return pd.DataFrame(rows)


def load_pairs(root, sections=None) -> pd.DataFrame:
    """PAIRS images under ``root`` (the repository's ``data`` folder, or its parent):
    ``<section>/<scenario>/<race>_<gender>.png`` -> rows with set_id ``section/scenario`` and
    attribute ``race_gender`` (plus ``race``, ``gender``); images are opened later (``path``), and
    checked before any model work by :func:`image_bias` and the ``image_counterfactual`` probe."""
    root = Path(root).expanduser()
    if (root / "data").is_dir():
        root = root / "data"
    files = sorted(root.glob("*/*/*.png")) + sorted(root.glob("*/*/*.jpg"))
    rows = []
    for f in files:
        section, scenario = f.parent.parent.name, f.parent.name
        if sections is not None and section not in sections:
            continue
        race, _, gender = f.stem.partition("_")
        rows.append(dict(set_id=f"{section}/{scenario}", attribute=f.stem, race=race, gender=gender,
                         section=section, path=str(f), source="PAIRS"))
    if not rows:
        raise DataError(f"no PAIRS images (<section>/<scenario>/<race>_<gender>.png) under {root}; clone "
                        "https://github.com/katiefraser/PAIRS and pass its folder")
    return pd.DataFrame(rows)


def load_social_counterfactuals(files, segments=None) -> pd.DataFrame:
    """SocialCounterfactuals parquet files (``image``, ``dataset_segment``, ``counterfactual_set``,
    ``a1``, ``a2``, ``caption``) -> rows with set_id ``counterfactual_set`` and attribute ``a1``
    (``a1 a2`` where the segment varies two attributes); ``image`` decoded from its bytes."""
    import io

    from PIL import Image
    paths = [Path(files)] if isinstance(files, (str, Path)) else [Path(f) for f in files]
    frames = [_read_parquet(p).assign(source_file=str(p), row_in_file=lambda d: np.arange(len(d))) for p in paths]
    if not frames:
        raise DataError("no SocialCounterfactuals files given")
    df = pd.concat(frames, ignore_index=True)
    need = {"image", "counterfactual_set", "a1", "caption"}
    if not need <= set(df.columns):
        raise DataError(f"{paths[0]} is not SocialCounterfactuals: columns "
                        f"{sorted(set(df.columns) - {'source_file', 'row_in_file'})} lack "
                        f"{sorted(need - set(df.columns))}")
    if segments is not None:
        df = df[df["dataset_segment"].isin(segments)]

    def decode(v, where):
        raw = v.get("bytes") if isinstance(v, dict) else v
        if not isinstance(raw, (bytes, bytearray)) or not raw:
            raise DataError(f"{where}: the image cell holds no image bytes ({type(raw).__name__}); the file is not "
                            "SocialCounterfactuals as published, or it is damaged: download it again")
        try:
            img = Image.open(io.BytesIO(raw))
        except Exception as e:  # PIL.UnidentifiedImageError and decoder errors
            raise DataError(f"{where}: the image bytes are not an image PIL can read ({type(e).__name__}); the file "
                            "is damaged: download it again") from None
        return loaded_image(img, where)

    two = df.get("a2")
    attribute = df["a1"] if two is None else df["a1"].where(two.isna() | (two == ""), df["a1"] + " " + two.fillna(""))
    return pd.DataFrame(dict(set_id=df["counterfactual_set"].values, attribute=attribute.values,
                             image=[decode(v, f"{f} row {i}")
                                    for v, f, i in zip(df["image"], df["source_file"], df["row_in_file"])],
                             caption=df["caption"].values,
                             segment=df.get("dataset_segment", pd.Series([None] * len(df))).values,
                             source="SocialCounterfactuals"))


def _read_parquet(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise DataError(f"SocialCounterfactuals file {path} does not exist or is not a file")
    try:
        return pd.read_parquet(path)
    except Exception as e:  # pyarrow's errors for a file that is not parquet, or is cut short
        raise DataError(f"{path} is not a readable parquet file ({type(e).__name__}: {str(e)[:200]}); download it "
                        "again") from None


def _image(row):
    """The row's image, checked (pixels decoded): its ``image`` (a PIL image) or the file at its
    ``path``. Every failure is a DataError naming the item (set/attribute) and the file."""
    from PIL import Image

    name = f"item {row.get('set_id')}/{row.get('attribute')}"
    img, path = row.get("image"), row.get("path")
    if isinstance(img, Image.Image):
        return loaded_image(img, name)
    if not _absent(img):
        raise DataError(f"{name}: the image column holds {type(img).__name__} {str(img)[:80]!r}, not a PIL image; "
                        "put file paths in a 'path' column (or open them with PIL.Image.open)")
    if isinstance(path, (str, Path)) and str(path):
        return open_image_file(path, name)
    if not _absent(path):
        raise DataError(f"{name}: path must be a file path (a string), got {type(path).__name__} {path!r}")
    raise DataError(f"{name} has neither an image nor a path")


def _absent(value) -> bool:
    """None or a missing cell (NaN) of a DataFrame column."""
    return value is None or (isinstance(value, float) and np.isnan(value))


def open_item_images(rows) -> list:
    """Every row's image, opened and checked before any model work (see :func:`_image`)."""
    return [_image(r) for r in rows]


def within_set_statistics(diffs: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """The one image-bias analysis (both doors use it). ``diffs``: one row per (``a``, ``b``,
    ``caption``, ``set_id``) with the within-set ``diff`` (a - b). One row per pair (``level``
    "pair": each set's differences averaged over the captions, so a set counts once) and one per
    pair and caption (``level`` "caption"): ``n_sets``, ``mean_diff``, the exact sign-flip
    interval and p-value, ``share_a_higher``; ``p_adjusted``: Benjamini-Hochberg within each level
    (the pairs' rows are one family, the per-caption rows another, so adding a caption does not
    change how a pair's overall row reads)."""
    rows = []
    for (a, b), part in diffs.groupby(["a", "b"], sort=False):
        groups = [("pair", None, part.groupby("set_id", sort=False)["diff"].mean())]
        groups += [("caption", c, p.set_index("set_id")["diff"]) for c, p in part.groupby("caption", sort=False)]
        for lvl, caption, d in groups:
            t = sign_flip(d.values, level=level)
            rows.append(dict(level=lvl, caption=caption, a=a, b=b, n_sets=len(d), mean_diff=t.diff, ci_low=t.ci_low,
                             ci_high=t.ci_high, p_value=t.p_value, exact=t.exact,
                             share_a_higher=float((d > 0).mean())))
    out = pd.DataFrame(rows, columns=["level", "caption", "a", "b", "n_sets", "mean_diff", "ci_low", "ci_high",
                                      "p_value", "exact", "share_a_higher"])
    out["p_adjusted"] = np.nan
    for lvl in ("pair", "caption"):
        mask = (out.level == lvl).to_numpy()
        if mask.any():
            out.loc[mask, "p_adjusted"] = benjamini_hochberg(out.loc[mask, "p_value"].values)
    out = out.astype({"caption": object})
    out.loc[out.level == "pair", "caption"] = None
    out.attrs["rules"] = ("exact sign-flip test of the mean within-set difference; Benjamini-Hochberg within the "
                          "pairs' rows and within the per-caption rows")
    return out


@dataclass
class ImageBiasResult(Result):
    """``frame``: one row per (set, attribute, caption) with its logprob; ``paired``: one row per
    (caption, attribute pair, set) with the difference; :meth:`summary`: the paired statistics."""

    paired: pd.DataFrame = None
    stats: pd.DataFrame = None

    def summary(self) -> pd.DataFrame:
        return self.stats

    def plot(self, ax=None):
        import matplotlib.pyplot as plt
        s = self.stats
        if ax is None:
            _, ax = plt.subplots(figsize=(6, 0.4 * len(s) + 1))
        labels = [f"{a} - {b}" + (f" | {c}" if c is not None else " (all captions)")
                  for c, a, b in zip(s.caption, s.a, s.b)]
        ax.errorbar(s["mean_diff"], range(len(s)), xerr=[s.mean_diff - s.ci_low, s.ci_high - s.mean_diff], fmt="o")
        ax.axvline(0, color="grey", lw=1)
        ax.set(yticks=range(len(s)), yticklabels=labels, xlabel="mean logprob difference within sets (a - b)")
        return ax


def image_bias(model, items: pd.DataFrame, captions, pairs=None, format: str = "raw", level: float = 0.95,
               cache: bool = True) -> ImageBiasResult:
    """Score every caption with every image and compare attribute values within sets (see module).

    ``captions``: (context, continuation) pairs, e.g. ``("This person works as a", " nurse")``.
    ``pairs``: attribute value pairs (a, b) to compare (default: every pair of values present).
    """
    if not isinstance(items, pd.DataFrame) or not {"set_id", "attribute"} <= set(items.columns):
        raise InvalidInputError("items must be a DataFrame with set_id, attribute and image (or path) columns, as "
                                "synthetic_counterfactuals / load_pairs / load_social_counterfactuals return")
    captions = [tuple(c) for c in captions]
    if not captions or not all(len(c) == 2 and all(isinstance(x, str) for x in c) for c in captions):
        raise InvalidInputError("captions must be a non-empty list of (context, continuation) string pairs")
    values = sorted(items["attribute"].unique())
    pairs = list(itertools.combinations(values, 2)) if pairs is None else [tuple(p) for p in pairs]
    unknown = {v for p in pairs for v in p} - set(values)
    if unknown:
        raise InvalidInputError(f"pairs name attribute values {sorted(unknown)} that no item has; values: {values}")
    rows, skipped, seen = [], [], set()
    for r in items.to_dict("records"):  # one image per attribute and set, as the probe reads them
        if (r["set_id"], r["attribute"]) in seen:
            skipped.append({"row": f"{r['set_id']}/{r['attribute']}",
                            "reason": "a second image with this attribute in the set (first kept)"})
            continue
        seen.add((r["set_id"], r["attribute"]))
        rows.append(r)
    imgs = open_item_images(rows)  # every file opened and decoded before any scoring
    reqs = [c for _ in rows for c in captions]
    df = loglikelihood(model, reqs, images=[[im] for im in imgs for _ in captions], format=format, cache=cache)
    scored = pd.DataFrame([dict(set_id=r["set_id"], attribute=r["attribute"], caption=c + x)
                           for r in rows for c, x in captions])
    scored["logprob"] = df["logprob"].values
    scored["image"] = [h[0] for h in df["images"]]
    wide = scored.pivot_table(index=["caption", "set_id"], columns="attribute", values="logprob", aggfunc="first")
    paired = []
    for caption in dict.fromkeys(scored["caption"]):
        part = wide.loc[caption]
        for a, b in pairs:
            d = (part[a] - part[b]).dropna() if a in part and b in part else pd.Series(dtype=float)
            paired += [dict(caption=caption, a=a, b=b, set_id=s, diff=float(v)) for s, v in d.items()]
    paired = pd.DataFrame(paired, columns=["caption", "a", "b", "set_id", "diff"])
    stats = within_set_statistics(paired, level=level)
    prov = record(model, captions=captions, pairs=pairs, n_items=len(rows), level=level, skipped=skipped,
                  test=stats.attrs["rules"])
    return ImageBiasResult(frame=scored, provenance=prov, paired=paired, stats=stats)
