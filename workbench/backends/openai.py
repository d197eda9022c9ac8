"""The OpenAI-compatible server backend: a model served by vLLM, SGLang, llama.cpp's server or
``llama-cpp-python``'s, reached through its ``/v1/completions`` endpoint.

    >>> import workbench as wb
    >>> s = wb.load_model("http://127.0.0.1:8000/v1", backend="openai",          # doctest: +SKIP
    ...                   model_name="meta-llama/Llama-3.1-70B", tokenizer="/models/llama-3.1-70b")

This is how a model split over many GPUs or machines (vLLM's tensor and pipeline parallelism)
is audited without the workbench running a distributed engine of its own.

Log-likelihoods come from prompt log-probs, the way lm-evaluation-harness's
``local-completions`` model gets them: ``echo=True, logprobs=1, max_tokens=1, temperature=0``,
and the log-probs echoed for the prompt's own tokens are read at the continuation's positions.
Tokenisation stays above the backend: the prompt is sent as the token ids the workbench made
(vLLM and SGLang take them, batched, several prompts per request). A server that takes text
only (``llama-cpp-python``'s) is sent the ids' text one prompt at a time, and its echoed tokens
must line up with ours one for one, else the request fails with a clear error rather than
scoring other tokens. The tokenizer is therefore required (``tokenizer=``: an embedded alias, a
``.gguf`` file, a transformers folder) and must be the served model's.

At load, one probe checks that the server gives prompt log-probs at all and that they are
*aligned* (the log-prob echoed for token ``t_i`` is ``log p(t_i | t_<i)``): the greedy token
``g`` after a prompt ``P`` must get the same log-prob when it is echoed as the last token of
``P + [g]``. ``llama-cpp-python``'s server passes this only for prompts that start with the BOS
token (it drops a leading BOS and shifts the rest otherwise); the backend then refuses other
prompts with an error that says so, instead of returning shifted numbers.

Requests are retried with exponential backoff on connection errors, timeouts, 429 and 5xx.
The first contact (``GET /v1/models``, at load) has its own short limit, ``connect_timeout``
(10 s, all attempts together): a wrong address, a port that is not an HTTP server, an HTTP server
that is not OpenAI-compatible, or one that accepts the connection and never answers is a clear
:class:`~workbench.errors.ServerError` within seconds; scoring requests keep the long ``timeout``.

Greedy flags (``is_greedy``) come from the echoed ``top_logprobs``; a server that sends none
leaves them unknown (``None``), never "greedy".
"""
from __future__ import annotations

import http.client
import json
import os
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import transformers as T
from tqdm.auto import tqdm

from workbench.backends import gguf_files
from workbench.backends.base import Backend
from workbench.engine.causal import max_length
from workbench.engine.prompts import prompt_text
from workbench.errors import InvalidInputError, InvalidTypeError, ServerError
from workbench.models.fingerprint import fingerprint_record
from workbench.models.loading import _load_tokenizer
from workbench.models.model import Model
from workbench.models.registry import EMBEDDED
from workbench.progress import show_progress
from workbench.validate import check_int, check_real

ALIGN_TOLERANCE = 1e-3  # |echoed - generated| log-prob of the same token at the same position


class _Client:
    """JSON over HTTP with retries (exponential backoff) and a timeout per attempt."""

    def __init__(self, base_url: str, api_key: str | None, timeout: float, max_retries: int, backoff: float):
        self.base_url = base_url.rstrip("/")
        self.api_key, self.timeout, self.max_retries, self.backoff = api_key, timeout, max_retries, backoff

    def request(self, path: str, payload: dict | None = None, *, within: float | None = None) -> dict:
        """The decoded JSON answer. A 4xx other than 429 is raised at once as
        :class:`_Rejected` (the request itself is wrong, retrying cannot help); an answer that is
        not HTTP at all (another service on the port) as :class:`ServerError`.

        ``within``: seconds for all attempts together (the first contact); each attempt then
        waits at most what is left, and the error says that nothing answered in that time."""
        url = self.base_url + path
        data = json.dumps(payload).encode() if payload is not None else None
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        what = f"{'POST' if data else 'GET'} {url}"
        deadline = None if within is None else time.monotonic() + within
        last, attempts = None, 0
        for attempt in range(self.max_retries + 1):
            if attempt:
                pause = min(self.backoff * 2 ** (attempt - 1), 30.0)
                if deadline is not None and time.monotonic() + pause >= deadline:
                    break
                time.sleep(pause)
            timeout = self.timeout if deadline is None else min(self.timeout, deadline - time.monotonic())
            if timeout <= 0:
                break
            attempts += 1
            req = urllib.request.Request(url, data=data, headers=headers, method="POST" if data else "GET")
            try:
                with urllib.request.urlopen(req, timeout=timeout) as resp:
                    return json.loads(resp.read().decode("utf-8"))
            except urllib.error.HTTPError as e:
                body = e.read().decode("utf-8", "replace")[:500]
                # llama-cpp-python's server answers an invalid request with a 500 that says so
                if (e.code != 429 and e.code < 500) or "validation error" in body:
                    raise _Rejected(e.code, body) from None
                last = f"HTTP {e.code}: {body}"
            except (TimeoutError, ConnectionError) as e:  # before OSError: RemoteDisconnected is retried
                last = (f"connected, but no answer within {timeout:.3g} s" if isinstance(e, TimeoutError)
                        else f"{type(e).__name__}: {e}")
            except (urllib.error.URLError, OSError) as e:
                reason = getattr(e, "reason", e)
                last = (f"could not connect within {timeout:.3g} s" if isinstance(reason, TimeoutError)
                        else f"{type(e).__name__}: {reason}")
            except http.client.HTTPException as e:  # e.g. BadStatusLine: what answered does not speak HTTP
                raise ServerError(f"what answers at {self.base_url} is not an HTTP server ({what} got "
                                  f"{type(e).__name__}: {str(e).strip()[:120]!r}): check the address and port of "
                                  "the model server (e.g. http://127.0.0.1:8000/v1)") from None
            except ValueError as e:  # not JSON
                last = f"the answer is not JSON ({e})"
        limit = (f"connect_timeout={within:g} s for the first contact, all attempts together" if within is not None
                 else f"timeout {self.timeout:g} s each")
        raise ServerError(f"the server at {self.base_url} did not answer {what} after {attempts} attempt(s) "
                          f"({limit}; last: {last}). Is it running, has it finished loading, and is the address "
                          "right? Raise connect_timeout= (first contact), timeout= or max_retries= for a slow "
                          "server.")


class _Misaligned(ServerError):
    """An echo whose length is not the prompt's: the server tokenised the text another way."""


class _Rejected(Exception):
    def __init__(self, code: int, body: str):
        super().__init__(f"HTTP {code}: {body}")
        self.code, self.body = code, body


class OpenAIBackend(Backend):
    """Answers token log-prob and generation requests with an OpenAI-compatible completions server."""

    name = "openai"
    capabilities = frozenset({"token_logprobs", "generate"})

    def __init__(self, client: _Client, model_name: str, config, tokenizer, batch_size: int = 16,
                 concurrency: int = 4):
        self.client, self.model_name, self.config, self.tokenizer = client, model_name, config, tokenizer
        self.batch_size, self.concurrency = batch_size, concurrency
        self.n_params = 0  # not known from a server
        self.limit = max_length(self)  # the scoring window, as for every backend
        self.token_prompts = True
        self.bos_only = False  # prompt log-probs aligned only when the prompt starts with BOS

    def settings(self) -> dict:
        return {"url": self.client.base_url, "model": self.model_name}

    # -- requests ------------------------------------------------------------------------------
    def _completions(self, prompts: list, **options) -> list[dict]:
        """One choice per prompt (in order): token-id prompts batched, else texts one by one."""
        base = {"model": self.model_name, **options}
        if self.token_prompts:
            answer = self.client.request("/completions", {**base, "prompt": prompts})
            return _choices(answer, len(prompts) * options.get("n", 1), self.client.base_url)
        out = []
        for p in prompts:
            text = self.tokenizer.decode(p, skip_special_tokens=False) if isinstance(p, list) else p
            answer = self.client.request("/completions", {**base, "prompt": text})
            out += _choices(answer, options.get("n", 1), self.client.base_url)
        return out

    def _echo(self, prompts: list[list[int]]) -> list[dict]:
        try:
            return self._completions(prompts, max_tokens=1, temperature=0, logprobs=1, echo=True, seed=0)
        except _Rejected as e:
            raise ServerError(f"the server at {self.client.base_url} refused a prompt log-prob request "
                              f"(echo=True, logprobs=1): {e}. It cannot give prompt log-probs (llama-cpp-python's "
                              "server needs logits_all; OpenAI's hosted chat models have none); vLLM and SGLang "
                              "give them.") from None

    def _no_logprobs(self, what: str) -> ServerError:
        return ServerError(f"the server at {self.client.base_url} gives no log-probs: {what}. It cannot score "
                           "text (llama-cpp-python's server needs --logits_all true; vLLM and SGLang give prompt "
                           "log-probs with echo=True, logprobs=1)")

    def _prompt_logprobs(self, prompt: list[int], choice: dict) -> tuple[list, list]:
        """(log p(t_i | t_<i), greedy?) for i = 1 .. len(prompt)-1, from an echoed choice. A
        greedy flag is None (unknown) where the server sent no ``top_logprobs`` to compare with."""
        lp = choice.get("logprobs") or {}
        tokens, top = lp.get("token_logprobs"), lp.get("top_logprobs")
        if not tokens or all(t is None for t in tokens):
            raise self._no_logprobs("its answer to a prompt log-prob request (echo=True, logprobs=1) holds no "
                                    "logprobs.token_logprobs")
        n = len(prompt)
        # the echo holds the prompt then the generated token; a server may drop a leading BOS
        if len(tokens) == n + 1:
            tokens, top = tokens[1:n], (top or [None] * (n + 1))[1:n]
        elif len(tokens) == n and prompt[0] == self.tokenizer.bos_token_id:
            tokens, top = tokens[0:n - 1], (top or [None] * n)[0:n - 1]
        else:
            raise _Misaligned(f"the server echoed {len(tokens) - 1} prompt tokens for a prompt of {n} tokens: it "
                              "tokenised the text differently from the workbench's tokenizer, so its log-probs "
                              "cannot be matched to the scored tokens. Pass the served model's own tokenizer, "
                              "or use a server that accepts token-id prompts (vLLM, SGLang)")
        greedy = [None if t is None or not isinstance(d, dict) or not d else bool(t >= max(d.values()) - 1e-9)
                  for t, d in zip(tokens, top)]
        return tokens, greedy

    def probe(self) -> None:
        """Find out what the server takes (token-id prompts?) and whether its prompt log-probs are
        aligned (see the module docstring); raise ServerError when it gives none."""
        tok = self.tokenizer
        ids = list(tok("The capital of France is", add_special_tokens=False)["input_ids"])
        try:
            self._completions([ids], max_tokens=1, temperature=0, logprobs=1, echo=True, seed=0)
        except _Rejected as e:  # the server refuses token-id prompts (llama-cpp-python's): text only
            self.token_prompts, refused = False, e
        else:
            refused = None
        # (a server that does not answer at all raises ServerError here: it must not be mistaken for
        # one that takes text only, which would change how every later request is sent)
        self.bos_only = False
        try:
            if self._aligned(ids):
                return
            bos = tok.bos_token_id
            if bos is not None and self._aligned([bos] + ids):
                self.bos_only = True
                return
        except _Rejected as e:  # refused as text too: nothing this backend can send is taken
            raise ServerError(f"the server at {self.client.base_url} refused completion requests for model "
                              f"{self.model_name!r}, with token-id prompts ({refused}) and with text prompts ({e}). "
                              "Is model_name= one it serves (GET /v1/models lists them)?") from None
        raise ServerError(f"the server at {self.client.base_url} echoes prompt log-probs that are not the "
                          "log-probs of the prompt's tokens given the tokens before them (checked against its own "
                          "greedy next token): its numbers cannot be used for scoring")

    def _aligned(self, ids: list[int]) -> bool:
        [gen] = self._completions([ids], max_tokens=1, temperature=0, logprobs=1, seed=0)
        glp = (gen.get("logprobs") or {}).get("token_logprobs") or []
        g_ids = tok_ids(self.tokenizer, gen.get("text", ""))
        if not glp or all(x is None for x in glp):  # none at all: not a question of alignment
            raise self._no_logprobs("asked for logprobs=1, its completion came back without logprobs.token_logprobs")
        if glp[-1] is None or len(g_ids) != 1:
            return False
        [echo] = self._echo([ids + g_ids])
        try:
            got, _ = self._prompt_logprobs(ids + g_ids, echo)
        except _Misaligned:  # an echo of another length than the prompt's: not usable as is
            return False
        return got[-1] is not None and abs(got[-1] - glp[-1]) < ALIGN_TOLERANCE

    def score_tokens(self, model, requests, *, token_budget=None, progress=None, desc="scoring",
                     share_contexts=True, moments=False):
        bos = self.tokenizer.bos_token_id
        # the server's window holds the prompt and the one token it generates
        prompts = [(list(ctx) + list(cont))[-(self.limit - 1):] for ctx, cont in requests]
        if self.bos_only:
            bad = [i for i, p in enumerate(prompts) if p[0] != bos]
            if bad:
                raise ServerError(f"the server at {self.client.base_url} gives aligned prompt log-probs only for "
                                  f"prompts that start with the BOS token (llama-cpp-python's server shifts the "
                                  f"others by one); {len(bad)} requests do not (e.g. request {bad[0]}). Score with "
                                  "bos=True, or serve the model with vLLM or SGLang")
        size = self.batch_size if self.token_prompts else 1
        batches = [list(range(s, min(s + size, len(prompts)))) for s in range(0, len(prompts), size)]
        results: list = [None] * len(prompts)
        show = show_progress(progress, default=len(batches) > 4)

        def run(batch):
            choices = self._echo([prompts[i] for i in batch])
            for i, choice in zip(batch, choices):
                lps, greedy = self._prompt_logprobs(prompts[i], choice)
                n = len(requests[i][1])
                if any(x is None for x in lps[-n:]):
                    raise ServerError(f"the server at {self.client.base_url} echoed no log-prob for a scored token "
                                      f"of request {i} (llama-cpp-python's server gives none for the first token "
                                      "after the BOS, so a text scored from its start cannot be); give it a "
                                      "context, or serve the model with vLLM or SGLang")
                results[i] = {"token_logprobs": [float(x) for x in lps[-n:]], "greedy": greedy[-n:]}
            return len(batch)

        with tqdm(total=len(prompts), desc=desc, disable=not show, leave=False) as bar, \
                ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            for done in pool.map(run, batches):
                bar.update(done)
        return results

    def generate(self, model, prompts, *, max_new_tokens, seed, do_sample, temperature, top_p, top_k,
                 num_return_sequences, batch_size, chat, progress=None, system_prompt=None):
        tok = self.tokenizer
        rows = []
        for start in range(0, len(prompts), batch_size):
            b = start // batch_size
            chunk = prompts[start:start + batch_size]
            texts = [prompt_text(tok, p, chat, system_prompt) for p in chunk]
            ids = [list(tok(t, add_special_tokens=not chat)["input_ids"]) for t in texts]
            options = dict(max_tokens=max_new_tokens, seed=seed + b, temperature=float(temperature) if do_sample else 0.0)
            if num_return_sequences > 1:
                options["n"] = num_return_sequences
            if do_sample:
                options["top_p"] = float(top_p)
                if top_k is not None:
                    options["top_k"] = int(top_k)
            try:
                choices = self._completions(ids, **options)
            except _Rejected as e:
                raise ServerError(f"the server at {self.client.base_url} refused a completion request: {e}") from None
            for j, choice in enumerate(choices):
                text = choice.get("text", "")
                rows.append({"prompt": chunk[j // num_return_sequences], "sample": j % num_return_sequences,
                             "completion": text, "n_new_tokens": len(tok_ids(tok, text)), "seed": seed + b})
        return rows


def tok_ids(tokenizer, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"]) if text else []


def _choices(answer: dict, expected: int, url: str) -> list[dict]:
    choices = answer.get("choices") if isinstance(answer, dict) else None
    if not isinstance(choices, list) or len(choices) != expected:
        raise ServerError(f"the server at {url} answered {len(choices) if isinstance(choices, list) else 'no'} "
                          f"choices for {expected} prompts: {str(answer)[:300]}")
    return sorted(choices, key=lambda c: c.get("index", 0))


def load_openai(spec, *, model_name: str | None = None, tokenizer=None, name: str | None = None,
                licence: str | None = None, kind: str | None = None, batch_size: int = 16, concurrency: int = 4,
                timeout: float = 120.0, max_retries: int = 4, backoff: float = 0.5, api_key: str | None = None,
                connect_timeout: float = 10.0, **options):
    """The registry's loader for ``backend="openai"``: ``spec`` is the server's base URL (ending in
    ``/v1``); ``model_name`` the served model (default: the only one ``/v1/models`` lists);
    ``tokenizer`` (required) the served model's tokenizer: an embedded alias, a ``.gguf`` file or
    a transformers folder (its config gives the context window). ``connect_timeout``: seconds the
    first contact (``GET /v1/models``) may take, all attempts together; ``timeout`` (per attempt)
    and ``max_retries`` apply to every later request."""
    if options:
        raise InvalidTypeError(f"load_model(backend='openai') got options it does not take: {sorted(options)}; it "
                               "takes model_name, tokenizer, name, licence, batch_size, concurrency, timeout, "
                               "connect_timeout, max_retries, backoff and api_key")
    timeout, connect_timeout = check_real("timeout", timeout, gt=0), check_real("connect_timeout", connect_timeout, gt=0)
    backoff, max_retries = check_real("backoff", backoff, ge=0), check_int("max_retries", max_retries, min=0)
    if not isinstance(spec, str) or not spec.startswith(("http://", "https://")):
        raise InvalidInputError(f"backend='openai' needs the server's base URL, e.g. 'http://127.0.0.1:8000/v1', "
                                f"got {spec!r}")
    if kind not in (None, "causal"):
        raise InvalidInputError(f"a completions server serves causal LMs; kind={kind!r} does not apply")
    if tokenizer is None:
        raise InvalidInputError("backend='openai' needs tokenizer=: the served model's tokenizer (an embedded alias, "
                                "a .gguf file or a transformers folder), because the workbench tokenises and sends "
                                "token ids, so that scores use its own tokenisation conventions")
    client = _Client(spec, api_key if api_key is not None else os.environ.get("OPENAI_API_KEY"),
                     timeout, max_retries, backoff)
    served = _served_models(client, connect_timeout)  # the first contact: seconds, not timeout x attempts
    if model_name is None:
        if len(served) != 1:
            raise InvalidInputError(f"the server at {spec} serves {served}: pass model_name= (one of them)")
        model_name = served[0]
    tok, config, tok_source = _tokenizer_and_config(tokenizer)
    backend = OpenAIBackend(client, model_name, config, tok, batch_size=batch_size, concurrency=concurrency)
    backend.probe()
    # the served weights cannot be hashed from here: the server and model name stand for them
    fp = fingerprint_record(weights_sha256=None, weight_files={}, tokenizer=tok, config=config, dtype="served",
                            device="server", licence=licence or "unknown (served model: check its source)",
                            source=f"server:{client.base_url} ({model_name}); tokenizer {tok_source}",
                            served_model=model_name)
    return Model(hf=None, tokenizer=tok, name=name or model_name, kind="causal", fingerprint=fp,
                 licence=fp["licence"], source=fp["source"], backend=backend)


def _served_models(client: _Client, within: float) -> list:
    """The model ids ``GET /models`` lists: the first contact, which also shows that an
    OpenAI-compatible API answers at this address."""
    url = client.base_url
    try:
        answer = client.request("/models", within=within)
    except _Rejected as e:
        if e.code in (401, 403):
            raise ServerError(f"the server at {url} refused GET {url}/models (HTTP {e.code}: {e.body[:200]}): it needs "
                              "an API key; pass api_key= or set OPENAI_API_KEY") from None
        raise ServerError(f"GET {url}/models answered HTTP {e.code} ({e.body[:200]!r}): there is no OpenAI-compatible "
                          f"API at {url}. Check the address: the base URL ends in /v1, e.g. "
                          "'http://127.0.0.1:8000/v1', and the server must be a completions server (vLLM, SGLang, "
                          "llama.cpp's or llama-cpp-python's)") from None
    data = answer.get("data") if isinstance(answer, dict) else None
    if not isinstance(data, list) or not all(isinstance(m, dict) for m in data):
        raise ServerError(f"GET {url}/models answered {str(answer)[:200]!r}, which is not an OpenAI model list "
                          "({'data': [{'id': ...}]}): is this the address of an OpenAI-compatible server?")
    return [m.get("id") for m in data]


def _tokenizer_and_config(spec):
    """(tokenizer, config, description) from an embedded alias, a .gguf file or a folder."""
    if not isinstance(spec, (str, os.PathLike)):
        raise InvalidInputError("tokenizer= must name the served model's tokenizer (an embedded alias, a .gguf file "
                                f"or a transformers folder with its config.json), got {type(spec).__name__}")
    text = os.fspath(spec)
    path = Path(text).expanduser()
    if text in EMBEDDED or path.suffix.lower() == ".gguf":
        folder = gguf_files.header_folder(gguf_files.resolve(text))
    elif path.is_dir() and (path / "config.json").is_file():
        folder = path
    else:
        raise InvalidInputError(f"tokenizer={text!r} is not an embedded alias, a .gguf file or a folder with a "
                                "config.json and tokenizer files")
    return _load_tokenizer(folder, False), T.AutoConfig.from_pretrained(folder), text
