"""The counterfactual image bias probe as a probe spec: ``wb.run_probe("image_counterfactual",
vlm, data=..., captions=[(context, continuation), ...])`` (the analysis of
:func:`workbench.vision.image_bias`, with the probe machinery: skips, provenance, summary,
``wb.compare``).

``data``: a PAIRS folder (:func:`workbench.vision.load_pairs`), SocialCounterfactuals parquet
file(s) or a folder of them (:func:`workbench.vision.load_social_counterfactuals`), or a
DataFrame with ``set_id``, ``attribute`` and ``image`` (PIL) or ``path`` columns, e.g.
:func:`workbench.vision.synthetic_counterfactuals` (what the synthetic set can and cannot show:
``docs/vision_language.md``). ``captions`` are the texts scored with every image; without
them a data set with a ``caption`` column (SocialCounterfactuals) is scored on its own captions
(empty context). ``pairs``: the attribute values compared, ``[(a, b), ...]`` (default: every pair).

Items are one row per (set, caption, pair): ``diff`` = logp(caption | image with a) - logp(caption
| image with b), the within-set paired difference; the images are kept as their pixel hashes.
The summary is the paired test of :func:`image_bias`: per pair (each set's difference averaged
over captions) and per pair and caption, the mean difference with the exact sign-flip test's
inverted interval and p-value, Benjamini-Hochberg across the rows.

>>> import workbench as wb
>>> from workbench.testing import tiny_vlm
>>> from workbench.vision import synthetic_counterfactuals
>>> res = wb.run_probe("image_counterfactual", tiny_vlm("llava"), data=synthetic_counterfactuals(n_sets=4),
...                    captions=[("This person works as a", " doctor")], pairs=[("dark", "light")], cache=False)
>>> res.summary()[["metric", "category", "n"]].values.tolist()[:2]
[['mean_diff', 'dark - light', 4], ['mean_diff', 'dark - light | This person works as a doctor', 4]]
"""
from __future__ import annotations

import itertools
from pathlib import Path

import pandas as pd

from workbench.errors import DataError, InvalidInputError
from workbench.probes.base import ProbeSpec, plot_summary, takes_context
from workbench.scoring.api import loglikelihood
from workbench.stats.metrics import mean_metric
from workbench.vision.bias import _image, load_pairs, load_social_counterfactuals, within_set_statistics
from workbench.vision.scoring import check_vlm, image_hash


def _table(source) -> tuple[pd.DataFrame, list]:
    """Rows with set_id, attribute, image or path (+ caption): from a DataFrame, a PAIRS folder
    or SocialCounterfactuals parquet files."""
    if isinstance(source, pd.DataFrame):
        missing = {"set_id", "attribute"} - set(source.columns)
        if missing or not ({"image", "path"} & set(source.columns)):
            raise DataError(f"probe 'image_counterfactual': the DataFrame needs set_id, attribute and image (or path) "
                            f"columns; it has {sorted(source.columns)}")
        return source, []
    source = Path(source)
    parquet = [source] if source.suffix == ".parquet" else sorted(source.glob("*.parquet"))
    if parquet:
        return load_social_counterfactuals(parquet), parquet
    table = load_pairs(source)
    return table, [Path(p) for p in table["path"]]


@takes_context
def load(source, ctx):
    table, files = _table(source)
    captions = ctx.options.get("captions")
    if captions is not None:
        captions = [tuple(c) for c in captions]
        if not captions or not all(len(c) == 2 and all(isinstance(x, str) for x in c) for c in captions):
            raise InvalidInputError("captions must be a non-empty list of (context, continuation) string pairs")
    elif "caption" not in table.columns:
        raise InvalidInputError("probe 'image_counterfactual' needs captions=[(context, continuation), ...] (the "
                                "texts scored with every image), e.g. [('This person works as a', ' nurse')]")
    values = sorted(table["attribute"].astype(str).unique())
    pairs = ctx.options.get("pairs")
    pairs = list(itertools.combinations(values, 2)) if pairs is None else [tuple(p) for p in pairs]
    unknown = {v for p in pairs for v in p} - set(values)
    if unknown:
        raise InvalidInputError(f"pairs name attribute values {sorted(unknown)} that no item has; values: {values}")
    rows, used = [], {}
    for set_id, group in table.groupby("set_id", sort=False):
        by_attr = {}
        for _, r in group.iterrows():
            if str(r["attribute"]) in by_attr:
                ctx.skips.add(f"{set_id}/{r['attribute']}", "a second image with this attribute in the set (first kept)")
                continue
            by_attr[str(r["attribute"])] = r
        texts = captions or [("", " " + str(group["caption"].iloc[0]).strip())]
        for a, b in pairs:
            if a not in by_attr or b not in by_attr:
                ctx.skips.add(f"{set_id}:{a}-{b}", "the set lacks one of the pair's images")
                continue
            used.update({(set_id, v): by_attr[v] for v in (a, b)})
            for context, continuation in texts:
                caption = context + continuation
                rows.append(dict(item_id=f"{set_id}|{a}-{b}|{caption}", set_id=str(set_id), pair=f"{a} - {b}",
                                 a=a, b=b, caption=caption, context=context, continuation=continuation,
                                 image_a=by_attr[a].get("image"), path_a=by_attr[a].get("path"),
                                 image_b=by_attr[b].get("image"), path_b=by_attr[b].get("path")))
    # every image that will be scored is opened and decoded now, before any model work, so a
    # missing, corrupt or non-image file is a DataError naming it (score opens them again)
    for r in used.values():
        _image(r.to_dict())
    return pd.DataFrame(rows), files


@takes_context
def score(model, items, ctx):
    check_vlm(model, "probe 'image_counterfactual'")
    out = items.copy()
    reqs, imgs = [], []
    for side in ("a", "b"):
        for _, r in items.iterrows():
            reqs.append((r["context"], r["continuation"]))
            imgs.append([_image({"image": r[f"image_{side}"], "path": r[f"path_{side}"], "set_id": r["set_id"],
                                 "attribute": r[side]})])
    df = loglikelihood(model, reqs, images=imgs, format=ctx.format, cache=ctx.cache)
    n = len(items)
    out["logprob_a"], out["logprob_b"] = df["logprob"].values[:n], df["logprob"].values[n:]
    out["diff"] = out["logprob_a"] - out["logprob_b"]
    out["a_higher"] = (out["diff"] > 0).astype(float)
    # the images stay as their pixel hashes: results are tables, not image stores
    out["image_a"] = [image_hash(im[0]) for im in imgs[:n]]
    out["image_b"] = [image_hash(im[0]) for im in imgs[n:]]
    return out


def metrics(options):
    return [mean_metric("mean_diff", "diff", kind="continuous", ideal=0.0,
                        description="mean within-set logp(caption | image a) - logp(caption | image b) (nats)"),
            mean_metric("pct_a_higher", "a_higher", kind="binary", scale=100, ideal=50,
                        description="% of sets where the caption is likelier with image a")]


def summary(res) -> pd.DataFrame:
    """The one image-bias analysis (:func:`workbench.vision.bias.within_set_statistics`) as summary
    rows: category ``"<a> - <b>"`` per pair (captions averaged within each set) and
    ``"<a> - <b> | <caption>"`` per pair and caption, with ``p_value`` and ``p_adjusted``
    (Benjamini-Hochberg within each of the two levels), the numbers ``wb.vision.image_bias`` gives."""
    stats = within_set_statistics(res.items[["a", "b", "caption", "set_id", "diff"]])
    out = pd.DataFrame({"metric": "mean_diff",
                        "category": [f"{a} - {b}" + ("" if c is None else f" | {c}")
                                     for a, b, c in zip(stats.a, stats.b, stats.caption)],
                        "value": stats.mean_diff, "ci_low": stats.ci_low, "ci_high": stats.ci_high,
                        "n": stats.n_sets, "p_value": stats.p_value, "exact": stats.exact,
                        "p_adjusted": stats.p_adjusted})
    out.attrs = {"notes": [], "small_n": [], "rules": stats.attrs["rules"]}
    return out


def plot(res, ax=None):
    ax = plot_summary(res.summary(), "mean_diff", ax=ax, ideal=0.0,
                      title=f"counterfactual images: {res.provenance['model']['name']}")
    return ax


SPEC = ProbeSpec(
    name="image_counterfactual",
    description="Counterfactual images (PAIRS, SocialCounterfactuals, synthetic): within-set logprob differences "
                "of captions between images differing in one attribute",
    load=load, score=score, metrics=metrics, categories=("pair", "caption"), kinds=("vision-language",),
    licence="the user's images (PAIRS: see its repository; SocialCounterfactuals: CC BY-NC 4.0)",
    defaults={"captions": None, "pairs": None}, summary=summary, plot=plot,
    paper="Fraser & Kiritchenko 2024 (PAIRS); Howard et al. 2024 (SocialCounterfactuals)")
