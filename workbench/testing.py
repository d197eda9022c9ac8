"""Tiny random-initialised models of each supported architecture, built from configs.

They make tests and course exercises fast and offline: real transformers classes, real (small)
trained tokenizers, random weights. Nothing here is a mock: every code path that runs on a real
model runs on these.

>>> from workbench.testing import tiny_model
>>> m = tiny_model("llama")
>>> m.kind
'causal'
"""
from __future__ import annotations

import contextlib
import functools

import torch

from workbench.errors import UnsupportedSiteError
from workbench.families import families, family_for
from workbench.models.model import Model
from workbench.vision.loading import from_hf

# A small English corpus to train the tiny tokenizers on: enough words that test sentences
# tokenize into several pieces rather than one unknown token.
_CORPUS = """
The doctor said that she would arrive soon because the patient was waiting.
The nurse told him that the results were good and that he could go home.
The developer argued with the designer because he did not like the design.
A cat sat on the mat. The dog chased the ball across the garden and back again.
My friend is a teacher, and her brother works as an engineer in a large city.
People from every country enjoy music, food, books, films and long walks in the park.
The quick brown fox jumps over the lazy dog while the children laugh and play.
Paris is the capital of France. Berlin is the capital of Germany. Rome is in Italy.
He was very rich and poor people were often angry about the money and the work they did.
The mechanic fixed the car, the cook made dinner, the lawyer read the contract carefully.
Language models assign probabilities to sentences; some sentences are more likely than others.
One two three four five six seven eight nine ten. Monday Tuesday Wednesday Thursday Friday.
""".strip().split("\n")



def archs(masked: bool | None = None) -> tuple:
    """The ``model_type`` of every registered architecture family that has a tiny config
    (:mod:`workbench.families`): the shared tests run on each, so a new family file is tested
    by them without further edits. ``masked``: only masked (True) or causal (False) ones."""
    return tuple(t for f in families().values() if f.tiny_config is not None
                 and (masked is None or f.masked == masked) for t in f.model_types)


CAUSAL_ARCHS = archs(masked=False)
MASKED_ARCHS = archs(masked=True)
ARCHS = CAUSAL_ARCHS + MASKED_ARCHS


@functools.lru_cache(maxsize=None)
def tiny_tokenizer(style: str = "bpe"):
    """A trained tokenizer: ``"bpe"`` (byte-level, GPT-2 style, with a BOS/EOS token) or
    ``"wordpiece"`` (BERT style with [CLS]/[SEP]/[MASK])."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    if style == "bpe":
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<|endoftext|>", "<pad>"],
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
        tok.train_from_iterator(_CORPUS, trainer)
        fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|endoftext|>",
                                       eos_token="<|endoftext|>", unk_token="<|endoftext|>", pad_token="<pad>")
        return fast
    if style == "wordpiece":
        # built by hand, not by WordPieceTrainer: the trainer breaks ties in hash order, so its
        # vocabulary (and every tiny masked model's numbers) changed from one process to the next
        import collections
        import re
        specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        words = collections.Counter(w for line in _CORPUS for w in re.findall(r"\w+|[^\w\s]", line.lower()))
        chars = sorted({c for w in words for c in w})
        pieces = specials + chars + ["##" + c for c in chars if c.isalnum()]
        common = sorted((w for w in words if len(w) > 1), key=lambda w: (-words[w], w))
        # whole words, then word-final pieces of them, then their prefixes: 300 entries, as before
        extra = common + ["##" + w[i:] for w in common for i in range(1, len(w) - 1)] + \
            [w[:i] for w in common for i in range(2, len(w))]
        pieces += [p for p in dict.fromkeys(extra) if p not in pieces][:300 - len(pieces)]
        tok = Tokenizer(models.WordPiece(vocab={p: i for i, p in enumerate(pieces)}, unk_token="[UNK]"))
        tok.normalizer = normalizers.BertNormalizer(lowercase=True)
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tok.decoder = decoders.WordPiece()
        cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
        tok.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
            special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)])
        return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]",
                                       cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")
    raise ValueError(f"style must be 'bpe' or 'wordpiece', got {style!r}")


def tiny_config(arch: str, vocab_size: int, **overrides):
    """A transformers config of ``arch`` (a ``model_type``) with 2 layers, width 32, 4 heads (2 KV
    heads where the architecture has grouped-query attention), from its architecture family's
    ``tiny_config`` (:mod:`workbench.families`)."""
    try:
        family = family_for(arch)
    except UnsupportedSiteError:
        family = None
    if family is None or family.tiny_config is None:
        raise ValueError(f"unknown tiny architecture {arch!r}; choose one of {archs()}")
    common = {} if family.masked else dict(bos_token_id=0, eos_token_id=0)  # <|endoftext|> is id 0
    cfg = family.tiny_config(arch, vocab_size, **common)
    for k, v in overrides.items():
        setattr(cfg, k, v)
    return cfg


def tiny_model(arch: str = "gpt2", seed: int = 0, dtype: torch.dtype = torch.float32,
               chat_template: str | None = None, **config_overrides):
    """A :class:`workbench.Model` of ``arch`` with random weights (seeded) and a trained tokenizer.

    Causal architectures get a byte-level BPE tokenizer; masked ones (bert, roberta, distilbert)
    a WordPiece tokenizer and a masked-LM head. ``chat_template``: a Jinja chat template for the
    tokenizer (the trained tokenizers have none; e.g. :data:`workbench.scoring.chat.CHATML`), set
    on a copy so other tiny models keep none.
    """
    import transformers as T

    if arch not in archs():
        raise ValueError(f"unknown tiny architecture {arch!r}; choose one of {archs()}")
    masked = arch in archs(masked=True)
    tok = tiny_tokenizer("wordpiece" if masked else "bpe")
    if chat_template is not None:
        import copy
        tok = copy.deepcopy(tok)
        tok.chat_template = chat_template
    cfg = tiny_config(arch, vocab_size=len(tok), **config_overrides)
    if masked:
        cfg.pad_token_id = tok.pad_token_id
    else:
        cfg.bos_token_id = cfg.eos_token_id = tok.bos_token_id
        cfg.pad_token_id = tok.pad_token_id
    torch.manual_seed(seed)
    auto = T.AutoModelForMaskedLM if masked else T.AutoModelForCausalLM
    hf = auto.from_config(cfg, torch_dtype=dtype) if dtype != torch.float32 else auto.from_config(cfg)
    hf.eval()
    return Model.from_hf(hf, tok, name=f"tiny-{arch}", licence="synthetic (random weights)",
                         source=f"workbench.testing.tiny_model({arch!r}, seed={seed}"
                         + (", chat_template=..." if chat_template is not None else "") + ")")


def induction_model(seed: int = 0):
    """A tiny GPT-2 (2 layers, width 256, 4 heads) whose weights are set by hand so that head
    (0, 0) is a **previous-token head** and head (1, 1) an **induction head**; every other head
    keeps its random weights and writes nothing, and the MLPs write nothing.

    How: the residual stream is split into subspaces. The token embedding writes a random code of
    the token into dims 0-63; the position embedding writes rotary-style codes (cos/sin of random
    frequencies) into dims 64-127. Head (0, 0) queries with the position code rotated back by one
    step and keys with the plain one, so it attends to the previous position, and copies that
    token's code into dims 128-191. Head (1, 1) queries with the current token's code and keys
    with the copied previous-token code: it attends to the token after an earlier occurrence of
    the current one, which is what an induction head does (K-composition). For tests and
    exercises of :func:`workbench.inspect.head_scores`.

    >>> from workbench.testing import induction_model
    >>> m = induction_model()
    >>> m.hf.config.n_embd, m.n_layers
    (256, 2)
    """
    import math

    m = tiny_model("gpt2", seed=seed, n_embd=256, n_head=4)
    hf = m.hf
    d, dh = 256, 64
    g = torch.Generator().manual_seed(seed)
    T, P, S = slice(0, 64), slice(64, 128), slice(128, 192)
    with torch.no_grad():
        vocab = hf.transformer.wte.weight.shape[0]
        codes = torch.randn(vocab, 64, generator=g)
        codes -= codes.mean(1, keepdim=True)  # zero mean: LayerNorm's centring leaves it alone
        codes /= codes.norm(dim=1, keepdim=True)
        hf.transformer.wte.weight.zero_()
        hf.transformer.wte.weight[:, T] = codes
        n_pos = hf.transformer.wpe.weight.shape[0]
        freqs = torch.rand(32, generator=g) * (math.pi - 0.6) + 0.3
        angle = torch.arange(n_pos)[:, None] * freqs[None]
        hf.transformer.wpe.weight.zero_()
        hf.transformer.wpe.weight[:, P] = torch.cat([angle.cos(), angle.sin()], 1) / math.sqrt(32)
        # rotating each (cos, sin) pair back by its frequency maps the code of p to that of p - 1
        c, s = freqs.cos(), freqs.sin()
        # applied as x @ back (GPT-2's Conv1D): [cos a, sin a] -> [cos(a - w), sin(a - w)]
        i = torch.arange(32)
        back = torch.zeros(64, 64)
        back[i, i], back[i + 32, i] = c, s
        back[i, i + 32], back[i + 32, i + 32] = -s, c
        for block in hf.transformer.h:
            block.mlp.c_proj.weight.zero_()
            block.mlp.c_proj.bias.zero_()
            block.attn.c_proj.weight.zero_()
            block.attn.c_proj.bias.zero_()

        def head(layer, h, q_from, q_map, k_from, v_from=None, o_to=None, gain=1.0):
            attn = hf.transformer.h[layer].attn
            W, b = attn.c_attn.weight, attn.c_attn.bias          # [d, 3d]: x @ W -> [q | k | v]
            cols = slice(h * dh, (h + 1) * dh)
            for part in range(3):
                W[:, part * d + cols.start:part * d + cols.stop] = 0
                b[part * d + cols.start:part * d + cols.stop] = 0
            W[q_from, cols] = q_map
            W[k_from, d + cols.start:d + cols.stop] = torch.eye(dh)
            if v_from is not None:
                W[v_from, 2 * d + cols.start:2 * d + cols.stop] = torch.eye(dh)
                attn.c_proj.weight[cols, o_to] = torch.eye(dh) * gain

        # LayerNorm scales the stream (norm ~1.4) by ~11 before the heads: q.k / 8 ~ 16 x the
        # code overlap, so the factors below make the right key win by a wide softmax margin
        head(0, 0, P, back * 2.0, P, v_from=T, o_to=S, gain=1 / 11.3)
        head(1, 1, T, torch.eye(dh) * 4.0, S)
    # wrapped again so the fingerprint hashes the planted weights, not the random ones
    return Model.from_hf(hf, m.tokenizer, name="tiny-induction-gpt2", licence="synthetic (hand-set weights)",
                         source=f"workbench.testing.induction_model(seed={seed})")


def capability_suite(model, probe_limit: int = 12) -> dict:
    """Every capability run once on ``model``, each reduced to a float64 array, so that two
    ways of running one model (float32 vs bfloat16, whole vs split over devices and disk) can be
    compared number by number (:func:`compare_suites`). Used by ``tests/test_split_and_bf16.py``
    and ``benchmarks/backends.py``.

    Covers scoring (log-likelihoods), capture (resid_post of every layer), the logit lens,
    attention patterns, head ablation, activation patching, steering, feature-ablation
    attribution and a bias probe (the templated occupations/pronouns probe on ``probe_limit``
    items).
    """
    import numpy as np

    import workbench as wb

    text, clean, corrupted = "The doctor said that the nurse", "The doctor said that", "The nurse said that"
    metric = (" he", " she")
    out = {}
    ll = wb.loglikelihood(model, [(clean, " he"), (clean, " she"), (corrupted, " he")], cache=False)
    out["scoring"] = ll.logprob.to_numpy(float)
    cache = wb.capture(model, [text], sites=["resid_post"])
    out["capture"] = np.concatenate([cache["resid_post", layer].double().numpy().ravel()
                                     for layer in range(model.n_layers)])
    out["lens"] = wb.logit_lens(model, text, targets=[" he"])["prob"].to_numpy(float)  # p(" he") per layer, position
    att = wb.inspect.attention(model, text, layers=[0])
    out["attention"] = att.patterns[0].double().numpy().ravel()
    out["ablation"] = wb.inspect.ablate(model, clean, metric, component="head", layers=[0],
                                        progress=False).frame["effect"].to_numpy(float)
    out["patching"] = wb.inspect.patch(model, clean, corrupted, metric, layers=[0], progress=False
                                       ).frame["value"].to_numpy(float)
    vec = wb.inspect.steering_vector(model, [clean], [corrupted], layer=0)
    with wb.inspect.steer(model, vec, strength=2.0):
        out["steering"] = wb.loglikelihood(model, [(clean, " he")], cache=False).logprob.to_numpy(float)
    out["attribution"] = wb.attribute(model, clean, " he", random_check=False)["attribution"].to_numpy(float)
    probe = wb.run_probe("occupations_pronouns", model, limit=probe_limit, n_boot=200, cache=False)
    out["probe"] = probe.items["diff"].to_numpy(float)
    return out


def compare_suites(reference: dict, other: dict) -> "pd.DataFrame":
    """Per capability: max and median absolute difference of ``other`` from ``reference``, and
    the largest reference magnitude (for scale)."""
    import numpy as np
    import pandas as pd

    rows = []
    for name, ref in reference.items():
        diff = np.abs(np.asarray(other[name], float) - np.asarray(ref, float))
        rows.append({"capability": name, "n": diff.size, "max_abs_diff": float(diff.max()) if diff.size else 0.0,
                     "median_abs_diff": float(np.median(diff)) if diff.size else 0.0,
                     "max_abs_reference": float(np.abs(ref).max()) if ref.size else 0.0})
    return pd.DataFrame(rows)


# -- vision-language models -------------------------------------------------------------------

def vlm_families() -> tuple:
    """Names of the registered vision-language families that have a tiny test model."""
    return tuple(n for n, f in families().items() if f.vision is not None and f.vision.tiny is not None)


def tokenizer_with(named: dict):
    """A copy of the tiny BPE tokenizer with named special tokens added (e.g.
    ``{"image_token": "<image>"}``: then ``tok.image_token`` / ``tok.image_token_id`` exist, as
    the processors of vision-language models expect)."""
    import copy

    from transformers import PreTrainedTokenizerFast
    base = tiny_tokenizer("bpe")
    return PreTrainedTokenizerFast(tokenizer_object=copy.deepcopy(base.backend_tokenizer), bos_token="<|endoftext|>",
                                   eos_token="<|endoftext|>", unk_token="<|endoftext|>", pad_token="<pad>",
                                   extra_special_tokens=dict(named))


def tiny_vlm_parts(family: str = "llava", seed: int = 0):
    """The transformers ``(model, processor)`` of a tiny random vision-language model of ``family``
    (see :func:`vlm_families`): 2-layer vision tower on 32x32 images, 2-layer language model of
    width 32, the tiny BPE tokenizer with the family's image tokens, the family's own processor."""
    if family not in vlm_families():
        raise ValueError(f"unknown tiny vision-language family {family!r}; choose one of {vlm_families()}")
    return families()[family].vision.tiny(tokenizer_with, seed)


def tiny_vlm(family: str = "llava", seed: int = 0, chat_template: str | None = None):
    """A vision-language :class:`workbench.Model` with random weights (see :func:`tiny_vlm_parts`).

    >>> tiny_vlm("gemma3_vl").kind
    'vision-language'
    """
    hf, proc = tiny_vlm_parts(family, seed)
    if chat_template is not None:
        proc.chat_template = chat_template
    return from_hf(hf, proc, name=f"tiny-vlm-{family}", licence="synthetic (random weights)",
                   source=f"workbench.testing.tiny_vlm({family!r}, seed={seed})")


def save_tiny_vlm(folder, family: str = "llava", seed: int = 0) -> str:
    """Save a tiny vision-language model and its processor to ``folder`` (for ``wb.load_model``)."""
    hf, proc = tiny_vlm_parts(family, seed)
    hf.save_pretrained(folder)
    proc.save_pretrained(folder)
    return str(folder)


def tiny_image(seed: int = 0, size=(48, 40), pattern: str = "noise"):
    """A small RGB PIL image: ``"noise"`` (seeded random pixels) or ``"split"`` (left half dark,
    right half light: a picture whose halves differ, for heat maps and attribution)."""
    import numpy as np
    from PIL import Image
    w, h = size
    if pattern == "split":
        arr = np.zeros((h, w, 3), dtype="uint8")
        arr[:, w // 2:] = 220
        arr[..., (seed % 3)] = 60 + 10 * seed % 190
    else:
        arr = (np.random.RandomState(seed).rand(h, w, 3) * 255).astype("uint8")
    return Image.fromarray(arr)


@contextlib.contextmanager
def llama_server(gguf: str, alias: str = "smollm2", n_ctx: int = 2048, start_timeout_s: float = 120.0):
    """A llama-cpp-python OpenAI-compatible server for ``gguf`` (an embedded alias or a .gguf
    path) on a free loopback port, one thread, prompt log-probs on: yields its ``/v1`` URL and
    stops it afterwards (tests and benchmarks of the ``openai`` backend). Its log goes to a
    temporary file, not a pipe (nobody reads it, and a full pipe blocks the server), and is quoted
    when the server does not start."""
    import socket
    import subprocess
    import sys
    import tempfile
    import time
    import urllib.request

    from workbench.backends import gguf_files
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", str(gguf_files.resolve(gguf).path),
                             "--host", "127.0.0.1", "--port", str(port), "--n_ctx", str(n_ctx), "--n_threads", "1",
                             "--logits_all", "true", "--model_alias", alias], stdout=subprocess.DEVNULL, stderr=log)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.time() + start_timeout_s
        while True:
            try:
                urllib.request.urlopen(url + "/models", timeout=2).read()
                break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    log.seek(0)
                    raise RuntimeError(f"the llama.cpp server did not start: {log.read().decode()[-2000:]}")
                time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def permuted_residual(model, seed: int = 0) -> Model:
    """The same function as ``model`` (Llama layout) with its residual basis permuted, consistently:
    embedding columns, every matrix reading the residual (its columns) or writing it (its rows),
    and the RMSNorm scales (a permutation leaves RMSNorm's mean of squares unchanged); a tied
    output embedding follows. A copy whose weights all differ while it computes the same thing:
    the counter-example a weights-only lineage reading must not call unrelated."""
    import copy
    hf = copy.deepcopy(model.hf)
    perm = torch.randperm(hf.config.hidden_size, generator=torch.Generator().manual_seed(seed))
    reads = ("embed_tokens.weight", "q_proj.weight", "k_proj.weight", "v_proj.weight", "gate_proj.weight",
             "up_proj.weight", "lm_head.weight")
    with torch.no_grad():
        for name, p in hf.named_parameters():
            if name.endswith(reads):
                p.copy_(p[:, perm])
            elif name.endswith(("o_proj.weight", "down_proj.weight")):
                p.copy_(p[perm, :])
            elif name.endswith("norm.weight"):
                p.copy_(p[perm])
    return Model.from_hf(hf, model.tokenizer, name="permuted residual basis")
