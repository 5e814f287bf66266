"""The row-wise prefill attention (``vdpm_rowwise``) computes what transformers' SDPA attention computes.

Reference: transformers' own ``attn_implementation="sdpa"`` on the same weights and the same left-padded batch (its
dense causal-and-padding mask). On the CPU the row-wise path runs as on the GPU, one causal SDPA call per row over
that row's real tokens; only the backend preference (cuDNN first) is CUDA-only.
"""

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration  # noqa: E402

from vdpm_harness_plugins.models.qwen25vl import attention  # noqa: E402

calls: list[tuple] = []


@pytest.fixture
def rowwise(monkeypatch):
    """The registered implementation, with every SDPA call recorded (query shapes)."""
    sdpa = attention.F.scaled_dot_product_attention

    def recording(q, *args, **kwargs):
        calls.append(tuple(q.shape))
        return sdpa(q, *args, **kwargs)

    monkeypatch.setattr(attention.F, "scaled_dot_product_attention", recording)
    calls.clear()
    return attention.register()


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


def test_padded_prefill_runs_row_by_row_and_matches_sdpa(rowwise):
    ids, mask = left_padded_batch()
    with torch.no_grad():
        reference = tiny_model("sdpa")(input_ids=ids, attention_mask=mask).logits
        calls.clear()
        logits = tiny_model(rowwise)(input_ids=ids, attention_mask=mask).logits
    assert calls == [(1, 4, 11, 16), (1, 4, 4, 16), (1, 4, 8, 16)] * 2  # each row's real tokens, in both layers
    real = mask.bool()
    torch.testing.assert_close(logits[real], reference[real], rtol=1e-5, atol=1e-5)


def test_greedy_generation_matches_sdpa(rowwise):
    ids, mask = left_padded_batch()
    settings = dict(max_new_tokens=6, do_sample=False, pad_token_id=0)
    with torch.no_grad():
        reference = tiny_model("sdpa").generate(input_ids=ids, attention_mask=mask, **settings)
        calls.clear()
        out = tiny_model(rowwise).generate(input_ids=ids, attention_mask=mask, **settings)
    # the prefill row by row; each decoding step one SDPA call over the batch with a padding mask (transformers')
    assert calls[:6] == [(1, 4, 11, 16), (1, 4, 4, 16), (1, 4, 8, 16)] * 2
    assert len(calls) == 6 + 2 * 5 and all(shape[0] == 3 for shape in calls[6:])
    assert torch.equal(out, reference)


def test_unpadded_batch_on_the_cpu_takes_sdpa_unchanged(rowwise):
    ids = torch.randint(1, 96, (2, 7), generator=torch.Generator().manual_seed(5))
    mask = torch.ones_like(ids)
    with torch.no_grad():
        reference = tiny_model("sdpa")(input_ids=ids, attention_mask=mask).logits
        calls.clear()
        logits = tiny_model(rowwise)(input_ids=ids, attention_mask=mask).logits
    assert calls == [(2, 4, 7, 16)] * 2  # nothing padded: transformers' own SDPA call over the batch, bit for bit
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
    attention._varlen_parameters.cache_clear()
    try:
        q, k = torch.ones(5, 4, 16), torch.ones(5, 2, 16)
        attention.varlen(q, k, k, torch.tensor([0, 2, 5]), 3, causal=True, scale=0.5)
    finally:
        attention._varlen_parameters.cache_clear()
    assert seen["is_causal"] is True
    assert seen["k"].shape == (5, 4, 16)  # key heads repeated for the query groups
    torch.testing.assert_close(seen["q"], torch.full((5, 4, 16), 0.5 * 16**0.5))  # scale folded into q
    assert seen["cu"].dtype == torch.int32


def test_compile_model_compiles_prefills_only(monkeypatch):
    """``compile_model`` routes prefill-sized inputs (>= COMPILE_MIN_TOKENS tokens) through the compiled modules and
    runs decoding steps eagerly; the compiled function here is a recording stand-in (real compilation is measured
    on the GPU by perf/profile_qwen_gpu.py)."""
    from vdpm_harness_plugins.models.qwen25vl import speed

    sizes = []

    def fake_compile(fn, **options):
        assert options == {"dynamic": True}

        def compiled(hidden_states, *args, **kwargs):
            sizes.append(hidden_states.numel() // hidden_states.shape[-1])
            return fn(hidden_states, *args, **kwargs)

        return compiled

    monkeypatch.setattr(torch, "compile", fake_compile)
    monkeypatch.setattr(speed, "COMPILE_MIN_TOKENS", 16)
    model = tiny_model("sdpa")
    ids, mask = left_padded_batch()  # 3 rows of 11 positions: 33 tokens
    with torch.no_grad():
        reference = model.generate(
            input_ids=ids, attention_mask=mask, max_new_tokens=4, do_sample=False, pad_token_id=0
        )
        assert speed.compile_model(model) == ["vision blocks", "language-model MLPs and RMSNorms"]
        out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=4, do_sample=False, pad_token_id=0)
    assert torch.equal(out, reference)
    # the prefill's 33 tokens through the 3 compiled modules of both layers; the 3-token decoding steps eagerly
    assert sizes == [33] * 6


def test_failing_compilation_falls_back_to_eager(monkeypatch, caplog):
    """A compiled module whose compilation fails (no C compiler, no Triton) runs eagerly from then on, with one
    warning per module, and the results are those of the uncompiled model."""
    from vdpm_harness_plugins.models.qwen25vl import speed

    attempts = []

    def broken_compile(fn, **options):
        def compiled(*args, **kwargs):
            attempts.append(1)
            raise RuntimeError("InductorError: no working C compiler found\ndetails")

        return compiled

    monkeypatch.setattr(torch, "compile", broken_compile)
    monkeypatch.setattr(speed, "COMPILE_MIN_TOKENS", 16)
    model = tiny_model("sdpa")
    ids, mask = left_padded_batch()
    with torch.no_grad():
        reference = model(input_ids=ids, attention_mask=mask).logits
        speed.compile_model(model)
        with caplog.at_level("WARNING", logger=speed.__name__):
            first = model(input_ids=ids, attention_mask=mask).logits
            again = model(input_ids=ids, attention_mask=mask).logits
    assert torch.equal(first, reference) and torch.equal(again, reference)
    assert len(attempts) == 6  # each of the 6 language-model modules tried once, then eager for good
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 6 and "no working C compiler found" in warnings[0] and "details" not in warnings[0]
