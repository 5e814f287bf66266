"""The batched vision attention equals transformers' window-by-window attention (the reference) on a tiny
Qwen2.5-VL vision tower with several frames, windows of unequal size and full-attention blocks."""

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration  # noqa: E402

from vdpm_harness_plugins.models.qwen25vl.vision_attention import _padded_attention, patch_vision_attention  # noqa: E402


def tiny_model():
    torch.manual_seed(0)
    config = Qwen2_5_VLConfig(
        text_config=dict(vocab_size=64, hidden_size=64, intermediate_size=128, num_hidden_layers=1,
                         num_attention_heads=4, num_key_value_heads=2,
                         rope_parameters={"rope_type": "default", "rope_theta": 1e6, "mrope_section": [2, 3, 3]}),
        vision_config=dict(depth=4, hidden_size=64, intermediate_size=128, num_heads=4, out_hidden_size=64,
                           patch_size=14, spatial_merge_size=2, temporal_patch_size=2, window_size=112,
                           fullatt_block_indexes=[1, 3]),
    )  # fmt: skip
    return Qwen2_5_VLForConditionalGeneration(config).float().eval()


def test_padded_attention_is_block_diagonal_attention():
    torch.manual_seed(1)
    lengths = [5, 1, 9, 3]
    q, k, v = (torch.randn(sum(lengths), 2, 8) for _ in range(3))
    cu = torch.tensor([0, 5, 6, 15, 18])
    out = _padded_attention(q, k, v, cu, max(lengths), scale=8**-0.5)
    for start, end in zip(cu[:-1].tolist(), cu[1:].tolist()):
        ref = torch.nn.functional.scaled_dot_product_attention(
            q[start:end].transpose(0, 1), k[start:end].transpose(0, 1), v[start:end].transpose(0, 1)
        ).transpose(0, 1)
        torch.testing.assert_close(out[start:end], ref, rtol=1e-5, atol=1e-6)


def test_patched_tower_matches_transformers(monkeypatch):
    from vdpm_harness_plugins.models.qwen25vl import vision_attention as qwen_vision_attention

    calls = []
    original = qwen_vision_attention._padded_attention
    monkeypatch.setattr(
        qwen_vision_attention, "_padded_attention", lambda *a, **k: calls.append(1) or original(*a, **k)
    )
    model = tiny_model()
    # 4 frames (2 temporal patches) of 20 x 36 patches: the windows at the right and bottom edges are partial
    grid = torch.tensor([[2, 20, 36]])
    pixels = torch.randn(int(grid.prod()), 3 * 2 * 14 * 14)
    with torch.no_grad():
        reference = model.model.visual(pixels, grid_thw=grid).pooler_output
        assert patch_vision_attention(model, "auto") == "padded"  # CPU
        patched = model.model.visual(pixels, grid_thw=grid).pooler_output
    assert len(calls) == 4  # one batched call per vision block
    torch.testing.assert_close(patched, reference, rtol=1e-4, atol=1e-5)


def test_unknown_mode_is_rejected():
    with pytest.raises(ValueError, match="vision attention must be one of"):
        patch_vision_attention(tiny_model(), "fast")


def test_longest_segments_come_from_the_grid_without_gpu_reads(monkeypatch):
    """The pre-hook's maxima equal the longest segments of transformers' own boundaries (the reference), so no block
    reads them back from the device."""
    from transformers.vision_utils import get_vision_attention_seqlens, get_vision_window_index

    from vdpm_harness_plugins.models.qwen25vl import vision_attention as qwen_vision_attention

    model = tiny_model()
    visual = model.model.visual
    seen = []
    monkeypatch.setattr(qwen_vision_attention, "_longest", lambda cu: seen.append(cu) or 0)
    patch_vision_attention(model, "padded")
    for grid in ([[2, 20, 36]], [[1, 6, 4], [3, 10, 12]], [[1, 4, 20]]):
        grid = torch.tensor(grid)
        kwargs = qwen_vision_attention._longest_segments(visual, (None,), {"grid_thw": grid})[1]
        cu, _ = get_vision_attention_seqlens(grid, visual.config)
        _, cu_window = get_vision_window_index(grid, spatial_merge_size=2, window_size=112, patch_size=14)
        assert kwargs["max_seqlen"] == int((cu[1:] - cu[:-1]).max())
        assert kwargs["max_window_seqlen"] == int((cu_window[1:] - cu_window[:-1]).max())
        with torch.no_grad():
            visual(torch.randn(int(grid.prod(-1).sum()), 3 * 2 * 14 * 14), grid_thw=grid)
    assert seen == []  # every block got its maximum from the hook
    patch_vision_attention(model, "transformers")
    assert "_vdpm_hook" not in visual.__dict__ and not visual._forward_pre_hooks
