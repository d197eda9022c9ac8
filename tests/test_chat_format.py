"""Chat-formatted scoring (format="chat"): exact token accounting across the template, raw vs
chat as different requests and cache entries, the probe/task/multiverse/compare plumbing, and
clear refusals where the chat format does not apply."""
import pytest
import torch

import workbench as wb
from workbench.errors import InvalidInputError, WorkbenchError, WrongModelKindError
from workbench.scoring import chat
from workbench.scoring.cache import request_key

# ChatML as SmolLM2 writes it: no BOS, a default system turn, the assistant prefix ends in "\n"
CHATML_NO_BOS = ("{% for m in messages %}{% if loop.first and m['role'] != 'system' %}<|system|>\nBe brief.\n"
                 "{% endif %}<|{{ m['role'] }}|>\n{{ m['content'] }}\n{% endfor %}"
                 "{% if add_generation_prompt %}<|assistant|>\n{% endif %}")


@pytest.fixture(scope="module")
def chat_model():
    from workbench.testing import tiny_model
    return tiny_model("llama", chat_template=chat.CHATML, max_position_embeddings=1024)  # writes its BOS


@pytest.fixture(scope="module")
def chat_model_no_bos():
    from workbench.testing import tiny_model
    return tiny_model("gpt2", chat_template=CHATML_NO_BOS)


def manual_logprob(model, ctx_ids, cont_ids):
    ids = torch.tensor([ctx_ids + cont_ids])
    with torch.no_grad():
        logp = model.hf(ids).logits[0].float().log_softmax(-1)
    return sum(logp[len(ctx_ids) - 1 + j, t].item() for j, t in enumerate(cont_ids))


@pytest.mark.parametrize("which", ["chat_model", "chat_model_no_bos"])
def test_token_accounting_equals_a_manual_rendering(request, which):
    m = request.getfixturevalue(which)
    tok = m.tokenizer
    question, reply = "Is the doctor at home?", " The nurse said that she would arrive soon."
    df = wb.loglikelihood(m, [(question, reply)], format="chat", system_prompt=None, cache=False)
    prompt = chat.prompt_ids(m, question)           # the template's own tokenisation
    reply_ids = tok(reply.lstrip(), add_special_tokens=False)["input_ids"]
    row = df.iloc[0]
    assert row.context == chat.render(m, question) and row.continuation == reply.lstrip()
    assert row.tokens == tok.convert_ids_to_tokens(reply_ids)  # the reply only: no assistant prefix
    assert row.logprob == pytest.approx(manual_logprob(m, prompt, reply_ids), abs=1e-4)
    # exactly the template's BOS count: one when it writes one, none when it does not
    n_bos = sum(1 for t in prompt[:2] if t == tok.bos_token_id)
    assert n_bos == (1 if which == "chat_model" else 0)
    # and the rendered prompt, the full conversation's first tokens, ends with the assistant prefix
    full = tok.apply_chat_template([{"role": "user", "content": question},
                                    {"role": "assistant", "content": reply.strip()}], tokenize=False)
    assert full.startswith(row.context) and row.context.endswith("<|assistant|>\n")


def test_system_prompt_is_a_turn_and_changes_the_request(chat_model):
    with_sp = chat.render(chat_model, "Hi", system_prompt="You are terse.")
    assert "<|system|>\nYou are terse.\n" in with_sp and with_sp.endswith("<|assistant|>\n")
    a = wb.loglikelihood(chat_model, [("Hi", " hello")], format="chat", cache=False).logprob[0]
    b = wb.loglikelihood(chat_model, [("Hi", " hello")], format="chat", system_prompt="You are terse.",
                         cache=False).logprob[0]
    assert a != b


def test_raw_and_chat_are_different_requests_and_cache_entries(chat_model, isolated_cache):
    reqs = [("The doctor said", " hello")]
    raw = wb.loglikelihood(chat_model, reqs)
    cht = wb.loglikelihood(chat_model, reqs, format="chat")
    assert raw.context[0] == "The doctor said" and cht.context[0] != raw.context[0]
    assert raw.logprob[0] != pytest.approx(cht.logprob[0])
    assert raw.attrs["scoring"] != cht.attrs["scoring"] and cht.attrs["scoring"]["format"] == "chat"
    k_raw = request_key(chat_model.state_id, "loglikelihood", raw.attrs["scoring"], reqs[0])
    k_chat = request_key(chat_model.state_id, "loglikelihood", cht.attrs["scoring"],
                         (cht.context[0], cht.continuation[0]))
    assert k_raw != k_chat
    # served from the cache, each format gets its own numbers back
    assert wb.loglikelihood(chat_model, reqs, format="chat").logprob[0] == cht.logprob[0]
    assert wb.loglikelihood(chat_model, reqs).logprob[0] == raw.logprob[0]


def test_no_template_and_wrong_kinds_are_refused_clearly(tiny):
    with pytest.raises(InvalidInputError, match=r"tiny-gpt2 has no chat template.*format='raw'"):
        wb.loglikelihood(tiny("gpt2"), [("a", " b")], format="chat")
    with pytest.raises(InvalidInputError, match="tiny-gpt2 has no chat template"):
        wb.run_probe("occupations_pronouns", tiny("gpt2"), limit=4, format="chat")
    with pytest.raises(InvalidInputError, match="format must be 'raw' or 'chat'"):
        wb.run_probe("occupations_pronouns", tiny("gpt2"), limit=4, format="instruct")
    with pytest.raises(InvalidInputError, match="system_prompt is used in the chat format only"):
        wb.run_probe("occupations_pronouns", tiny("gpt2"), limit=4, system_prompt="Be nice.")
    with pytest.raises(WrongModelKindError, match="masked model.*format='raw'"):
        wb.run_probe("occupations_pronouns", tiny("bert"), limit=4, format="chat")


def test_probes_without_a_chat_reading_refuse_it(chat_model, shared_data):
    with pytest.raises(InvalidInputError, match=r"probe 'seat' has no chat format.*embeddings.*format='raw'"):
        wb.run_probe("seat", chat_model, data=shared_data / "seat", format="chat")
    with pytest.raises(InvalidInputError, match="probe 'bold' has no chat format"):
        wb.run_probe("bold", chat_model, data=shared_data / "bold", format="chat")
    with pytest.raises(InvalidInputError, match="start='bos' only"):
        wb.run_probe("occupations_pronouns", chat_model, limit=4, format="chat", start="first_word")
    assert set(wb.list_probes().query("formats == 'raw/chat'").probe) >= {"bbq", "crows_pairs", "stereoset"}


def test_bbq_chat_is_recorded_and_compares_with_raw_without_the_flag(chat_model, shared_data):
    data = shared_data / "bbq"
    raw = wb.run_probe("bbq", chat_model, data=data, limit=12, n_boot=100)
    cht = wb.run_probe("bbq", chat_model, data=data, limit=12, n_boot=100, format="chat", system_prompt="Answer.")
    assert cht.options["format"] == "chat" and cht.provenance["options"]["system_prompt"] == "Answer."
    assert raw.options["format"] == "raw" and "system_prompt" not in raw.options
    assert list(cht.summary().columns) == ["metric", "category", "value", "ci_low", "ci_high", "n"]
    assert list(raw.items.item_id) == list(cht.items.item_id)
    assert not (raw.items.score_ans0 == cht.items.score_ans0).all()
    out = wb.compare(raw, cht, n_boot=100)  # same model state, two formats: a paired comparison
    assert set(out.metric) == {"acc_ambig", "acc_disambig", "s_dis", "s_amb"}
    assert out.attrs["model_b"].endswith("(chat)")
    with pytest.raises(InvalidInputError, match="same model state"):
        wb.compare(cht, wb.run_probe("bbq", chat_model, data=data, limit=12, n_boot=100, format="chat",
                                     system_prompt="Answer."))


def test_multiverse_has_format_as_a_dimension(chat_model, tiny):
    from workbench.probes.multiverse import multiverse
    mv = multiverse("occupations_pronouns", chat_model, limit=8, n_boot=100, formats=("raw", "chat"))
    f = mv.to_frame()
    # raw: aggregate x start (4); chat: aggregate only (whole sentences): 2
    assert sorted(f.groupby("format").scoring.nunique().items()) == [("chat", 2), ("raw", 4)]
    with pytest.warns(UserWarning, match="no chat universes for tiny-gpt2"):
        mv2 = multiverse("occupations_pronouns", tiny("gpt2"), limit=8, n_boot=100, formats=("raw", "chat"))
    assert set(mv2.to_frame().format) == {"raw"}
    assert mv2.provenance["skipped_universes"][0]["model"] == "tiny-gpt2"


def test_tasks_take_the_chat_format(chat_model, isolated_cache):
    raw, cht = wb.load_task("capitals"), wb.load_task("capitals", format="chat")
    assert raw.hash != cht.hash and raw.hash == wb.load_task("capitals").hash
    from workbench.tasks.kinds import score_items
    items = cht.select(3)
    r_raw, r_chat = score_items(chat_model, raw, items), score_items(chat_model, cht, items)
    assert [r["logprobs"] for r in r_raw] != [r["logprobs"] for r in r_chat]
    with pytest.raises(InvalidInputError, match="format='chat' applies to multiple_choice and generation"):
        wb.load_task("prose", format="chat")
    with pytest.raises(WorkbenchError, match="no chat template"):
        from workbench.testing import tiny_model
        score_items(tiny_model("gpt2"), cht, items)


def test_smollm_chat_context_is_its_template_tokens(smollm, shared_data):
    tok = smollm.tokenizer
    q = "Who was late, the doctor or the nurse?"
    df = wb.loglikelihood(smollm, [(q, " The nurse")], format="chat", cache=False)
    prompt = chat.prompt_ids(smollm, q)
    reply = tok("The nurse", add_special_tokens=False)["input_ids"]
    # SmolLM2's BOS is <|im_start|>, which its template writes at every turn: one at the start, not two
    assert prompt[0] == tok.bos_token_id and prompt[1] != tok.bos_token_id
    assert df.tokens[0] == tok.convert_ids_to_tokens(reply)
    assert df.logprob[0] == pytest.approx(manual_logprob(smollm, prompt, reply), abs=2e-3)
    res = wb.run_probe("bbq", smollm, data=shared_data / "bbq", limit=3, format="chat", n_boot=50)
    assert res.items.pred.between(0, 2).all()


def test_task_results_raw_vs_chat_compare_without_the_flag(chat_model, tmp_path):
    store = tmp_path / "r.db"
    grid = dict(models={"m": chat_model}, store=store, limit=8, progress=False)
    raw = wb.run(tasks=[wb.load_task("capitals")], **grid)
    cht = wb.run(tasks=[wb.load_task("capitals", format="chat", system_prompt="Answer.")], **grid)
    a, b = raw.comparable("m", "capitals"), cht.comparable("m", "capitals")
    assert a.fingerprint == chat_model.state_id and b.fingerprint.startswith(chat_model.state_id + "|format=chat")
    out = wb.compare(a, b, n_boot=100)  # one model state, two readings: a paired comparison
    assert out.attrs["model_a"] == "m" and out.attrs["model_b"] == "m (chat)" and out.n.iloc[0] == 8
    # the format survives the store: a grid read back identifies its cells the same way
    back = type(cht).from_store(cht.store)
    assert back.comparable("m", "capitals").fingerprint == b.fingerprint  # the latest run: the chat one
    with pytest.raises(InvalidInputError, match="same model state"):  # the same reading twice: refused
        wb.compare(b, back.comparable("m", "capitals"))
    other = wb.run(tasks=[wb.load_task("capitals", format="chat")], **grid)  # no system prompt: another reading
    assert len(wb.compare(b, other.comparable("m", "capitals"), n_boot=100))
    two = wb.run(models={"x": chat_model, "y": chat_model}, tasks=[wb.load_task("capitals", format="chat")],
                 store=store, limit=8, progress=False)
    with pytest.raises(InvalidInputError, match="same model state"):
        two.compare("x", "y", "capitals")
