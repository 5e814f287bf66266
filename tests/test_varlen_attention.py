"""The packed-prefill attention (``vdpm_varlen``) computes what transformers' SDPA attention computes.

Reference: transformers' own ``attn_implementation="sdpa"`` on the same weights and the same left-padded batch.
The CUDA kernel (``varlen_attn``) cannot run here, so the packing is exercised with a per-sequence SDPA kernel in
its place: what is checked on the CPU is everything around the kernel (which tokens are packed, the sequence
boundaries, grouped-query heads, causality, scattering back into the padded layout).
"""

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration  # noqa: E402

from vdpm_harness_plugins.models import varlen_attention  # noqa: E402


def reference_kernel(q, k, v, cu_seqlens, max_seqlen, *, causal, scale):
    """Per-sequence SDPA over packed (T, H, D) tensors: what ``varlen_attn`` computes."""
    calls.append(len(cu_seqlens) - 1)
    out = []
    groups = q.shape[1] // k.shape[1]
    for start, end in zip(cu_seqlens[:-1].tolist(), cu_seqlens[1:].tolist()):
        qs, ks, vs = (x[start:end].transpose(0, 1) for x in (q, k, v))
        ks, vs = ks.repeat_interleave(groups, 0), vs.repeat_interleave(groups, 0)
        out.append(torch.nn.functional.scaled_dot_product_attention(qs, ks, vs, is_causal=causal, scale=scale))
    return torch.cat([o.transpose(0, 1) for o in out])


calls: list[int] = []


@pytest.fixture
def packed(monkeypatch):
    monkeypatch.setattr(varlen_attention, "kernel", reference_kernel)
    monkeypatch.setattr(varlen_attention, "_packing", varlen_attention._Packing())
    calls.clear()
    return varlen_attention.register()


def tiny_model(attn: str):
    torch.manual_seed(0)
    config = Qwen2_5_VLConfig(
        text_config=dict(vocab_size=96, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2,
                         rope_parameters={"rope_type": "default", "rope_theta": 1e6, "mrope_section": [2, 3, 3]}),
        vision_config=dict(depth=1, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=64),
    )  # fmt: skip
    return Qwen2_5_VLForConditionalGeneration._from_config(config, attn_implementation=attn).float().eval()


def left_padded_batch():
    lengths = [11, 4, 8]
    ids = torch.zeros(len(lengths), max(lengths), dtype=torch.long)
    mask = torch.zeros_like(ids)
    generator = torch.Generator().manual_seed(3)
    for row, n in enumerate(lengths):
        ids[row, -n:] = torch.randint(1, 96, (n,), generator=generator)
        mask[row, -n:] = 1
    return ids, mask


def test_padded_prefill_is_packed_and_matches_sdpa(packed):
    ids, mask = left_padded_batch()
    with torch.no_grad():
        reference = tiny_model("sdpa")(input_ids=ids, attention_mask=mask).logits
        logits = tiny_model(packed)(input_ids=ids, attention_mask=mask).logits
    assert calls == [3, 3]  # one packed call of the three rows per layer
    real = mask.bool()
    torch.testing.assert_close(logits[real], reference[real], rtol=1e-5, atol=1e-5)


def test_greedy_generation_matches_sdpa(packed):
    ids, mask = left_padded_batch()
    settings = dict(max_new_tokens=6, do_sample=False, pad_token_id=0)
    with torch.no_grad():
        reference = tiny_model("sdpa").generate(input_ids=ids, attention_mask=mask, **settings)
        out = tiny_model(packed).generate(input_ids=ids, attention_mask=mask, **settings)
    assert calls == [3, 3]  # the prefill only: decoding steps take transformers' SDPA path with a padding mask
    assert torch.equal(out, reference)


def test_unpadded_batch_takes_sdpa_unchanged(packed):
    ids = torch.randint(1, 96, (2, 7), generator=torch.Generator().manual_seed(5))
    mask = torch.ones_like(ids)
    with torch.no_grad():
        reference = tiny_model("sdpa")(input_ids=ids, attention_mask=mask).logits
        logits = tiny_model(packed)(input_ids=ids, attention_mask=mask).logits
    assert calls == []  # nothing padded: the same SDPA call as attn_implementation="sdpa", bit for bit
    assert torch.equal(logits, reference)


def test_varlen_adapts_to_the_installed_signature(monkeypatch):
    """``varlen`` passes causality, scale and grouped heads in whichever form the installed PyTorch takes."""
    import sys
    import types

    seen = {}

    def fake(q, k, v, cu_q, cu_k, max_q, max_k, is_causal=False, return_aux=None):  # torch 2.10's signature
        seen.update(q=q, k=k, is_causal=is_causal, cu=cu_q)
        return q

    module = types.ModuleType("torch.nn.attention.varlen")
    module.varlen_attn = fake
    monkeypatch.setitem(sys.modules, "torch.nn.attention.varlen", module)
    varlen_attention._varlen_parameters.cache_clear()
    try:
        q, k = torch.ones(5, 4, 16), torch.ones(5, 2, 16)
        varlen_attention.varlen(q, k, k, torch.tensor([0, 2, 5]), 3, causal=True, scale=0.5)
    finally:
        varlen_attention._varlen_parameters.cache_clear()
    assert seen["is_causal"] is True
    assert seen["k"].shape == (5, 4, 16)  # key heads repeated for the query groups
    torch.testing.assert_close(seen["q"], torch.full((5, 4, 16), 0.5 * 16**0.5))  # scale folded into q
    assert seen["cu"].dtype == torch.int32
