"""Language-model policy helpers: char tokenizer, tiny model, log-prob formula, KV-cached
sampler (EOS masking, consistency with a full forward), offline loading errors."""

import math
from types import SimpleNamespace

import pytest
import torch

from regrl.agents.models import lm

torch.set_num_threads(1)
ALPHABET = "0123456789+-*= .:?ACenmoprsuwt"


@pytest.fixture(scope="module")
def tok():
    return lm.char_tokenizer(ALPHABET)


@pytest.fixture(scope="module")
def model(tok):
    return lm.tiny_lm(tok, n_layer=2, n_embd=32, n_head=4, seed=0)


def test_char_tokenizer_round_trip_and_specials(tok):
    assert [tok.pad_token_id, tok.bos_token_id, tok.eos_token_id, tok.unk_token_id] == [0, 1, 2, 3]
    ids = tok("12+3=", add_special_tokens=False)["input_ids"]
    assert len(ids) == 5 and all(i >= 4 for i in ids)
    assert lm.decode(tok, ids + [tok.eos_token_id, tok.pad_token_id]) == "12+3="
    assert tok("#", add_special_tokens=False)["input_ids"] == [tok.unk_token_id]
    assert len(tok) == 4 + len(set(ALPHABET))


def test_tiny_lm_is_seeded(tok):
    a, b = lm.tiny_lm(tok, seed=3), lm.tiny_lm(tok, seed=3)
    c = lm.tiny_lm(tok, seed=4)
    assert a.config.vocab_size == len(tok)
    assert torch.equal(a.transformer.wte.weight, b.transformer.wte.weight)
    assert not torch.equal(a.transformer.wte.weight, c.transformer.wte.weight)


def test_token_logprobs_hand_computed():
    logits = torch.tensor([[0.0, math.log(2.0)]])  # p = (1/3, 2/3) at T = 1
    logp, ent = lm.token_logprobs(logits, torch.tensor([1]), 1.0)
    assert logp.item() == pytest.approx(math.log(2 / 3), abs=1e-6)
    assert ent.item() == pytest.approx(
        -(1 / 3) * math.log(1 / 3) - (2 / 3) * math.log(2 / 3), abs=1e-6
    )
    logp2, _ = lm.token_logprobs(logits, torch.tensor([1]), 2.0)  # p ∝ (1, sqrt 2)
    assert logp2.item() == pytest.approx(math.log(math.sqrt(2) / (1 + math.sqrt(2))), abs=1e-6)
    with pytest.raises(ValueError, match="temperature"):
        lm.token_logprobs(logits, torch.tensor([1]), 0.0)


def test_left_padding_does_not_change_completion_logits(tok, model):
    ids, mask = lm.encode_prompts(tok, ["7+8=", "12*34="], chat_template=False)
    assert mask[0, 0] == 0 and mask[1].all()  # the shorter prompt is left-padded
    comp = torch.tensor([[5, 6, 7], [5, 6, 7]])
    cmask = torch.ones_like(comp, dtype=torch.bool)
    batched = lm.completion_logits(model, ids, mask, comp, cmask)
    alone_ids, alone_mask = lm.encode_prompts(tok, ["7+8="], chat_template=False)
    alone = lm.completion_logits(model, alone_ids, alone_mask, comp[:1], cmask[:1])
    torch.testing.assert_close(batched[0], alone[0], atol=1e-5, rtol=1e-5)


def test_sample_logp_matches_full_forward(tok, model):
    ids, mask = lm.encode_prompts(tok, ["7+8=", "12*34="], chat_template=False)
    gen = torch.Generator().manual_seed(0)
    s = lm.sample(
        model,
        ids,
        mask,
        max_new_tokens=6,
        temperature=0.7,
        eos_id=tok.eos_token_id,
        pad_id=tok.pad_token_id,
        generator=gen,
    )
    logits = lm.completion_logits(model, ids, mask, s.tokens, s.mask)
    logp, ent = lm.token_logprobs(logits, s.tokens, 0.7)
    torch.testing.assert_close(logp * s.mask, s.logp, atol=1e-5, rtol=0)
    torch.testing.assert_close(ent * s.mask, s.entropy, atol=1e-5, rtol=0)


class ScriptedLM(torch.nn.Module):
    """Row 0 emits EOS (id 2) at generation step 1; row 1 always emits token 5."""

    def __init__(self, prompt_len, vocab=8):
        super().__init__()
        self.p, self.v = prompt_len, vocab
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def forward(
        self, input_ids, attention_mask, position_ids=None, cache=None, use_cache=True, **_
    ):
        step = attention_mask.shape[1] - self.p  # tokens generated so far
        logits = torch.full((input_ids.shape[0], input_ids.shape[1], self.v), -30.0)
        logits[:, -1, 5] = 0.0
        if step == 1:
            logits[0, -1, 2], logits[0, -1, 5] = 0.0, -30.0
        return SimpleNamespace(logits=logits, cache=None)


def test_sample_masks_and_pads_after_eos():
    ids = torch.tensor([[4, 4], [4, 4]])
    s = lm.sample(
        ScriptedLM(2),
        ids,
        torch.ones_like(ids),
        max_new_tokens=4,
        temperature=1.0,
        eos_id=2,
        pad_id=0,
    )
    assert s.tokens.tolist() == [[5, 2, 0, 0], [5, 5, 5, 5]]
    assert s.mask.tolist() == [[True, True, False, False], [True] * 4]  # EOS itself counts
    assert (s.logp[0, 2:] == 0).all() and s.logp[0, 1].item() == pytest.approx(0.0, abs=1e-9)


def test_save_and_load_round_trip(tmp_path, tok, model):
    model.save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    loaded, tok2 = lm.load_lm(str(tmp_path / "m"))
    assert tok2.get_vocab() == tok.get_vocab()
    x = torch.tensor([[5, 6, 7]])
    torch.testing.assert_close(loaded(input_ids=x).logits, model(input_ids=x).logits)


def test_missing_model_errors_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such model directory"):
        lm.load_lm(str(tmp_path / "nope"))
    with pytest.raises(FileNotFoundError, match="no such GGUF file"):
        lm.load_lm(str(tmp_path / "model.gguf"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no config.json"):
        lm.load_lm(str(tmp_path / "empty"))
    with pytest.raises(FileNotFoundError, match="not installed"):
        lm.packaged_gguf("no_such_model_package_xyz")


@pytest.mark.slow
def test_smollm2_gguf_loads_offline():
    model, tok = lm.load_lm("smollm2")
    assert type(model).__name__ == "LlamaForCausalLM" and len(tok) == 49152
    ids, mask = lm.encode_prompts(tok, ["Compute 2+3."], chat_template=True)
    s = lm.sample(
        model,
        ids,
        mask,
        max_new_tokens=4,
        temperature=0.0,
        eos_id=tok.eos_token_id,
        pad_id=tok.pad_token_id,
    )
    assert s.tokens.shape == (1, 4) or bool(s.mask[0, -1] == 0) or s.tokens.shape[1] < 4
