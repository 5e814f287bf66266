"""``vdpm-harness train gsm`` on the CPU: a tiny GSM (``models make-tiny --gsm``) trained on ``dsr-templates`` questions
about synthetic scenes.

The references are ones no one here wrote or exact identities: transformers' learning-rate schedules and
``torch.optim.AdamW``, the ``qwen25vl-gsm`` plugin's own inputs and forward pass for the same request, the base
checkpoint's bytes for the frozen parameters, an uninterrupted run for a killed and resumed one, one process for two
under ``torchrun``, and the harness's leaderboard for the evaluation.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from rich.console import Console  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

from vdpm_harness.config import ConfigError  # noqa: E402
from vdpm_harness.plugins import get_host  # noqa: E402
from vdpm_harness_plugins.models.qwen25vl.gsm import checkpoints as gsm_checkpoints  # noqa: E402
from vdpm_harness_training.gsm import contamination, optim, parallel  # noqa: E402
from vdpm_harness_training.gsm.config import TRAIN_FRAMES, TrainConfig, build_config  # noqa: E402
from vdpm_harness_training.gsm.groups import GroupError, build_groups  # noqa: E402
from vdpm_harness_training.gsm.metrics import read_metrics  # noqa: E402
from vdpm_harness_training.gsm.model import PackedGSM, load_base, token_layout  # noqa: E402
from vdpm_harness_training.gsm.packing import pack  # noqa: E402
from vdpm_harness_training.gsm.records import load_examples  # noqa: E402
from vdpm_harness_training.gsm.run import RunRefused, train_gsm  # noqa: E402
from vdpm_harness_training.gsm.samples import IGNORE, Layout, build  # noqa: E402

from .conftest import ROOT, cli_env  # noqa: E402

OFFLINE = {"HF_HUB_OFFLINE": "1"}
#: The held-out evaluation set: dsr-synth at its own seed (20251224), small.
HELD_OUT = {"n_videos": 2, "qa_per_video": 10, "width": 160, "height": 120}
FRAMES = {"nframes": 8, "sampler": "floor", "min_pixels": 784, "max_pixels": 9408, "size_multiple": 28}
LRS = {"llm": 1e-3, "merger": 2e-3, "gsm": 5e-4}


@pytest.fixture(scope="module", autouse=True)
def _offline():
    old = os.environ.get("HF_HUB_OFFLINE")
    os.environ["HF_HUB_OFFLINE"] = "1"
    yield
    if old is None:
        os.environ.pop("HF_HUB_OFFLINE")
    else:
        os.environ["HF_HUB_OFFLINE"] = old


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp("train-gsm") / "tiny"
    gsm_checkpoints.make_tiny(folder)
    return folder


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Three synthetic scenes (seed 1) and their dsr-templates questions: ``(questions folder, scenes folder)``."""
    root = tmp_path_factory.mktemp("train-data")
    host = get_host()
    host.create("generators", "synth-scenes", {"n_videos": 3, "width": 160, "height": 120, "preset": "ultrafast"}
                ).run(root / "scenes", seed=1)  # fmt: skip
    host.create("generators", "dsr-templates", {"tracks": str(root / "scenes"), "qa_per_video": 10}
                ).run(root / "qa", seed=1)  # fmt: skip
    return root / "qa"


def tiny_config(out, base, train, **changes) -> TrainConfig:
    """The test recipe: fp32, 4 samples a step, small frames, learning rates a tiny model learns with."""
    groups = {"llm": {"params": ["model.language_model.", "lm_head."], "lr": LRS["llm"]},
              "merger": {"params": ["model.visual.merger."], "lr": LRS["merger"]},
              "gsm": {"params": ["model.gsm."], "lr": LRS["gsm"]}}  # fmt: skip
    options = {"out": str(out), "model.base": str(base), "data.train": [str(train)], "precision": "fp32",
               "batch_size": 4, "pack_tokens": 2048, "data.max_seq_length": 2048, "data.decode_workers": 0,
               "data.frames": FRAMES, "activation_checkpointing": 0.0, "save_every": 2, "save_dtype": "float32",
               "optimizer.groups": groups, "schedule.warmup_ratio": 0.1, **changes}  # fmt: skip
    return build_config(None, (), **options)


def toml_of(config: TrainConfig) -> str:
    """The configuration as a TOML file (every table inline: JSON's values are TOML's, but for null)."""
    data = json.loads(config.model_dump_json(exclude_none=True))
    lines = []
    for key, value in data.items():
        lines.append(f"{key} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


def _toml_value(value) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f'"{k}" = {_toml_value(v)}' for k, v in value.items() if v is not None) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(value)


def weights(folder) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


# --- configuration ------------------------------------------------------------------------------------------------


def test_the_defaults_are_the_papers_recipe_and_unknown_keys_are_rejected(tmp_path):
    config = TrainConfig()
    assert config.schedule.epochs == 1 and config.schedule.kind == "cosine" and config.schedule.warmup_ratio == 0.03
    assert config.data.frames == TRAIN_FRAMES and TRAIN_FRAMES.nframes == 32 and TRAIN_FRAMES.max_pixels == 230_400
    assert config.data.max_seq_length == 8192 and config.precision == "bf16"
    groups = config.optimizer.groups
    assert (groups["llm"].lr, groups["merger"].lr, groups["gsm"].lr) == (2e-7, 1e-6, 1e-6)
    assert "lm_head." in groups["llm"].params
    assert config.optimizer.frozen == ["model.visual.", "model.gsm.spatial_encoder."]
    assert (config.optimizer.weight_decay, config.optimizer.max_grad_norm) == (0.01, 1.0)
    path = tmp_path / "train.toml"
    path.write_text("[optimizer]\nlearning_rate = 1e-5\n")
    with pytest.raises(ConfigError, match=r"optimizer.learning_rate: unknown key"):
        build_config(path)
    path.write_text('batch_size = "8"\n')  # values from a file are strict
    with pytest.raises(ConfigError, match="batch_size"):
        build_config(path)
    config = build_config(None, ["optimizer.groups.llm.lr=3e-7", "data.prompt=vlmevalkit"])
    assert config.optimizer.groups["llm"].lr == 3e-7 and config.data.prompt == "vlmevalkit"


def test_the_schedule_is_transformers(tmp_path):
    from transformers import (
        get_constant_schedule_with_warmup,
        get_cosine_schedule_with_warmup,
        get_linear_schedule_with_warmup,
    )

    total = 37
    warmup = optim.warmup_steps(total, 0.03)
    assert warmup == 2  # ceil(37 x 0.03), transformers' get_warmup_steps
    for kind, make in (("cosine", get_cosine_schedule_with_warmup), ("linear", get_linear_schedule_with_warmup),
                       ("constant", get_constant_schedule_with_warmup)):  # fmt: skip
        parameter = torch.nn.Parameter(torch.zeros(1))
        opt = torch.optim.SGD([parameter], lr=1.0)
        schedule = make(opt, warmup, total) if kind != "constant" else make(opt, warmup)
        for step in range(total):
            assert optim.lr_factor(step, total, warmup, kind) == pytest.approx(schedule.get_last_lr()[0], abs=1e-12)
            opt.step()
            schedule.step()


def test_adamw_with_float32_moments_is_torchs_and_bfloat16_moments_stay_close():
    torch.manual_seed(0)
    start = [torch.randn(5, 7), torch.randn(11)]
    params = {name: [torch.nn.Parameter(t.clone()) for t in start] for name in ("torch", "f32", "bf16")}
    groups = lambda ps: [{"params": ps[:1], "lr": 1e-2, "weight_decay": 0.1}, {"params": ps[1:], "lr": 3e-3,
                         "weight_decay": 0.0}]  # fmt: skip
    reference = torch.optim.AdamW(groups(params["torch"]), betas=(0.9, 0.999), eps=1e-8, foreach=False)
    ours = optim.AdamW(groups(params["f32"]), state_dtype=torch.float32)
    half = optim.AdamW(groups(params["bf16"]), state_dtype=torch.bfloat16)
    for _ in range(5):
        grads = [torch.randn_like(t) for t in start]
        for opt, name in ((reference, "torch"), (ours, "f32"), (half, "bf16")):
            for p, g in zip(params[name], grads):
                p.grad = g.clone()
            opt.step()
    for a, b, c in zip(params["torch"], params["f32"], params["bf16"]):
        assert torch.equal(a, b)
        torch.testing.assert_close(c, a, rtol=0, atol=2e-4)
    assert half.state[params["bf16"][0]]["exp_avg"].dtype == torch.bfloat16


def test_the_compiled_adamw_update_computes_the_eager_one():
    """The one-kernel update the trainer compiles on CUDA (here compiled for the CPU, which Inductor also targets)
    against the eager path it replaces, bf16 moments and float32 masters, over steps whose rates change."""
    torch.manual_seed(1)
    start = [torch.randn(6, 9), torch.randn(13), torch.randn(4, 4)[:, :2]]  # the last not contiguous: eager
    params = {name: [torch.nn.Parameter(t.clone()) for t in start] for name in ("eager", "compiled")}
    made = {name: optim.AdamW([{"params": ps[:2], "lr": 1e-2, "weight_decay": 0.1}, {"params": ps[2:], "lr": 3e-3}],
                              state_dtype=torch.bfloat16, compiled=name == "compiled")
            for name, ps in params.items()}  # fmt: skip
    for step in range(4):
        grads = [torch.randn_like(t) for t in start]
        for name, opt in made.items():
            for g in opt.param_groups:
                g["lr"] = (1e-2 if g is opt.param_groups[0] else 3e-3) / (step + 1)
            for p, g in zip(params[name], grads):
                p.grad = g.clone()
            opt.step()
    for a, b in zip(params["eager"], params["compiled"]):
        torch.testing.assert_close(b, a, rtol=1e-6, atol=1e-7)
    for a, b in zip(params["eager"], params["compiled"]):
        for key in ("exp_avg", "exp_avg_sq"):
            torch.testing.assert_close(made["compiled"].state[b][key], made["eager"].state[a][key], rtol=1e-2,
                                       atol=1e-6)  # fmt: skip
    assert optim._compiled_update is not None  # the compiled path ran


# --- groups, samples, packs ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def base_model(tiny):
    model, details = load_base(tiny_config("unused", tiny, "unused").model, torch.device("cpu"))
    assert details["kind"] == "gsm"
    return model


def test_the_optimizer_groups_are_exactly_the_configured_ones(tiny, base_model):
    config = tiny_config("unused", tiny, "unused")
    groups = build_groups(base_model, config.optimizer)
    named = dict(base_model.named_parameters())
    by_group = {g["name"]: g for g in groups.param_groups}
    assert list(by_group) == ["llm", "llm/no_decay", "merger", "merger/no_decay", "gsm", "gsm/no_decay"]
    ids = {id(p): g["name"] for g in groups.param_groups for p in g["params"]}
    for name, parameter in named.items():
        if name.startswith(("model.visual.merger.",)):
            expected = "merger"
        elif name.startswith("model.gsm.spatial_encoder.") or name.startswith("model.visual."):
            expected = None
        elif name.startswith("model.gsm."):
            expected = "gsm"
        else:
            expected = "llm"
        got = ids.get(id(parameter))
        assert (got.split("/")[0] if got else None) == expected, name
        assert parameter.requires_grad == (expected is not None), name
        if got:
            module = type(base_model.get_submodule(name.rpartition(".")[0])).__name__
            no_decay = name.endswith("bias") or module.endswith("Norm")
            assert got.endswith("/no_decay") == no_decay, name
            assert by_group[got]["weight_decay"] == (0.0 if no_decay else 0.01)
            assert by_group[got]["lr"] == LRS[expected]
    assert ids[id(named["lm_head.weight"])] == "llm"
    # the RMSNorms transformers' name patterns miss (the original decayed them) get no decay
    for name in (
        "model.gsm.q_former_1.norm1.weight",
        "model.gsm.spatial_merger.ln_q.weight",
        "model.visual.merger.ln_q.weight",
        "model.language_model.layers.0.input_layernorm.weight",
    ):
        assert ids[id(named[name])].endswith("/no_decay"), name
    assert ids[id(named["model.language_model.layers.0.mlp.up_proj.weight"])] == "llm"
    # lm_head is trained only when a group names it; a parameter no prefix names is an error
    config = tiny_config("unused", tiny, "unused", **{"optimizer.groups.llm.params": ["model.language_model."]})
    with pytest.raises(GroupError, match="lm_head.weight"):
        build_groups(base_model, config.optimizer)
    frozen = ["model.visual.", "model.gsm.spatial_encoder.", "lm_head."]
    config = tiny_config("unused", tiny, "unused", **{"optimizer.groups.llm.params": ["model.language_model."],
                                                      "optimizer.frozen": frozen})  # fmt: skip
    groups = build_groups(base_model, config.optimizer)
    assert not named["lm_head.weight"].requires_grad and "lm_head.weight" in groups.frozen()
    config = tiny_config("unused", tiny, "unused", **{"optimizer.groups.extra": {"params": ["nothing."], "lr": 1.0}})
    with pytest.raises(GroupError, match="extra"):
        build_groups(base_model, config.optimizer)
    build_groups(base_model, tiny_config("unused", tiny, "unused").optimizer)  # as before, for the other tests


@pytest.mark.slow
def test_the_trainers_optimizer_holds_exactly_the_configured_groups(tiny, data, tmp_path):
    """The optimizer the trainer steps (after FSDP2 has replaced the parameters by its shards): its param groups,
    their rates and decay, and which parameters they hold, read back by name."""
    from vdpm_harness_training.gsm.trainer import Trainer

    config = tiny_config(tmp_path / "run", tiny, data)
    world = parallel.join("cpu")
    try:
        trainer = Trainer(config, load_examples([str(data)]), "test", {}, world, Console(stderr=True), progress=False)
        trainer.build()
        held = {id(p): g["name"] for g in trainer.optimizer.param_groups for p in g["params"]}
        assert [(g["name"], g["lr"], g["weight_decay"]) for g in trainer.optimizer.param_groups] == [
            ("llm", LRS["llm"], 0.01), ("llm/no_decay", LRS["llm"], 0.0), ("merger", LRS["merger"], 0.01),
            ("merger/no_decay", LRS["merger"], 0.0), ("gsm", LRS["gsm"], 0.01), ("gsm/no_decay", LRS["gsm"], 0.0),
        ]  # fmt: skip
        names = dict(trainer.wrapper.model.named_parameters())
        for name, parameter in names.items():
            frozen = name.startswith(("model.visual.", "model.gsm.spatial_encoder.")) and ".merger." not in name
            assert (id(parameter) in held) == (not frozen) == parameter.requires_grad, name
        assert held[id(names["lm_head.weight"])] == "llm"
        assert held[id(names["model.visual.merger.mlp.0.weight"])] == "merger"
        assert held[id(names["model.gsm.q_former_2.mlp.up_proj.weight"])] == "gsm"
    finally:
        parallel.leave(world)


def test_a_gsm_on_a_plain_qwen_takes_its_weights_and_pi3s_encoder(tiny, tmp_path):
    """``--base`` a plain Qwen2.5-VL and ``--pi3`` Pi3's weights (the encoder under ``encoder.``, Pi3's key layout):
    every Qwen weight and every encoder weight is the file's; the new modules are initialised; a Pi3 file that lacks
    a key is an error naming it."""
    from safetensors.torch import save_file

    from vdpm_harness_plugins.models.qwen25vl.checkpoints import make_tiny as make_tiny_qwen
    from vdpm_harness_plugins.models.qwen25vl.gsm import pi3
    from vdpm_harness_training.gsm.model import BaseError

    make_tiny_qwen(tmp_path / "qwen")
    source = load_file(str(tiny / "model.safetensors"))
    prefix = gsm_checkpoints.ENCODER_KEY
    encoder = {"encoder." + k[len(prefix) :]: v for k, v in source.items() if k.startswith(prefix)}
    encoder["decoder.head.weight"] = torch.zeros(2)  # the rest of Pi3's checkpoint is ignored
    save_file(encoder, str(tmp_path / "pi3.safetensors"))
    changes = {"model.pi3": str(tmp_path / "pi3.safetensors"), "model.encoder": gsm_checkpoints.TINY_ENCODER}
    section = tiny_config("unused", tmp_path / "qwen", "unused", **changes).model
    model, details = load_base(section, torch.device("cpu"))
    assert details["kind"] == "qwen2.5-vl + new GSM" and details["pi3"].endswith("pi3.safetensors")
    state = model.state_dict()
    mapped, _ = pi3.map_pi3_encoder({k[len("encoder.") :]: v for k, v in encoder.items() if k.startswith("encoder.")})
    assert all(torch.equal(state[gsm_checkpoints.ENCODER_PARAM + k], v) for k, v in mapped.items())
    qwen = load_file(str(tmp_path / "qwen" / "model.safetensors"))
    assert all(torch.equal(state[gsm_checkpoints.parameter_names(k)[0]], v) for k, v in qwen.items())
    assert model.gsm.settings.clip_mean == "exact" and torch.equal(
        model.gsm.q_former_norm.weight, torch.ones_like(model.gsm.q_former_norm.weight)
    )
    del encoder["encoder.norm.weight"]
    save_file(encoder, str(tmp_path / "pi3.safetensors"))
    with pytest.raises(BaseError, match="1 missing"):
        load_base(section, torch.device("cpu"))


def layout_for(base_model, tiny, frames=FRAMES, prompt="record") -> Layout:
    return Layout(processor=str(tiny), frames=frames, prompt=prompt, max_seq_length=4096, **token_layout(base_model))


@pytest.mark.slow
def test_a_sample_is_the_evaluation_prompt_plus_the_answer(tiny, data, base_model):
    """The dsr benchmark asks a question of the generated table; the qwen25vl-gsm plugin encodes it; the trainer's
    sample of the same record (prompt vlmevalkit, the benchmark's frames) is those tokens and pixels, then the
    answer's turn, and only the answer's turn is supervised."""
    from vdpm_harness.interfaces import PreparedRequest
    from vdpm_harness.video import decode

    host = get_host()
    bench = host.create("benchmarks", "dsr", {"data_dir": str(data), "layout": "vlmevalkit"})
    sample = next(iter(bench.samples()))
    request = bench.build_request(sample)
    policy = bench.frame_policy
    plugin = host.create("models", "qwen25vl-gsm", {"path": str(tiny)})
    plugin.load()
    try:
        prepared = PreparedRequest(request, "k", 0, videos=[decode(sample.media[0], policy)])
        evaluated = plugin.encode(plugin._processor, [plugin._prompt(0, prepared)])
        tokenizer = plugin._processor.tokenizer
    finally:
        plugin.close()
    asked = (sample.question, sample.options)
    [example] = [e for e in load_examples([str(data)]) if e.question_and_options() == asked]
    assert example.answer == sample.answer
    trained = build(example, layout_for(base_model, tiny, policy.model_dump(mode="json"), "vlmevalkit"))
    supervised = int((trained.targets != IGNORE).sum())
    prompt_ids = evaluated["input_ids"][0]
    assert torch.equal(trained.input_ids[: trained.length - supervised], prompt_ids)
    assert torch.equal(trained.pixel_values_videos, evaluated["pixel_values_videos"])
    assert torch.equal(trained.video_grid_thw, evaluated["video_grid_thw"])
    answer = tokenizer.decode(trained.input_ids[trained.length - supervised :])
    assert answer == f"{sample.answer}<|im_end|>\n"
    # position i is supervised with token i + 1: the targets are the answer's turn, shifted by one
    assert torch.equal(trained.targets[trained.targets != IGNORE], trained.input_ids[-supervised:])


@pytest.mark.slow
def test_a_pack_gives_each_samples_loss_alone(tiny, data, base_model):
    """Three samples in one pack give the loss each gives alone through the plugin's model (its own positions,
    sdpa attention, full logits): no attention and no prediction crosses a sample boundary."""
    from vdpm_harness_training.gsm.attention import register

    examples = load_examples([str(data)])[:3]
    samples = [build(e, layout_for(base_model, tiny)) for e in examples]
    [one_pack] = pack(samples, 4096)
    base_model.config.text_config._attn_implementation = register()
    wrapper = PackedGSM(base_model)
    with torch.no_grad():
        packed = wrapper(**one_pack.tensors(0, "cpu"))
        base_model.config.text_config._attn_implementation = "sdpa"
        alone = []
        for s in samples:
            logits = base_model(input_ids=s.input_ids[None], attention_mask=torch.ones_like(s.input_ids)[None],
                                pixel_values_videos=s.pixel_values_videos, video_grid_thw=s.video_grid_thw,
                                second_per_grid_ts=s.second_per_grid_ts).logits[0]  # fmt: skip
            chosen = s.targets != IGNORE
            alone.append(torch.nn.functional.cross_entropy(logits[chosen], s.targets[chosen], reduction="sum"))
    torch.testing.assert_close(packed, sum(alone), rtol=1e-5, atol=1e-5)


def fake_liger(monkeypatch) -> Counter:
    """A stand-in for ``liger_kernel.transformers`` (whose Triton kernels need CUDA) with the reference math in
    PyTorch, the constructors' signatures of Liger 0.8.5, and a count of the calls: the swaps' plumbing on the CPU."""
    import types

    from torch import nn
    from transformers.models.qwen2_5_vl import modeling_qwen2_5_vl as modeling

    calls: Counter = Counter()

    class LigerRMSNorm(nn.Module):
        def __init__(self, hidden_size, eps=1e-6, offset=0.0, casting_mode="llama", init_fn="ones", **kwargs):
            super().__init__()
            assert (offset, casting_mode) == (0.0, "llama")  # Qwen2's RMSNorm
            self.weight, self.variance_epsilon = nn.Parameter(torch.ones(hidden_size)), eps

        def forward(self, hidden_states):
            calls["rms_norm"] += 1
            return modeling.Qwen2_5_VLRMSNorm.forward(self, hidden_states)

    class LigerSwiGLUMLP(nn.Module):
        def __init__(self, config):
            super().__init__()
            assert config.hidden_act == "silu"
            self.gate_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
            self.up_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
            self.down_proj = nn.Linear(config.intermediate_size, config.hidden_size, bias=False)

        def forward(self, x):
            calls["swiglu"] += 1
            return self.down_proj(torch.nn.functional.silu(self.gate_proj(x)) * self.up_proj(x))

    plain = modeling.apply_rotary_pos_emb

    def liger_rotary_pos_emb(q, k, cos, sin, position_ids=None, unsqueeze_dim=1):
        calls["rope"] += 1
        return plain(q, k, cos, sin, unsqueeze_dim=unsqueeze_dim)

    module = types.ModuleType("liger_kernel.transformers")
    module.LigerRMSNorm, module.LigerSwiGLUMLP, module.liger_rotary_pos_emb = (LigerRMSNorm, LigerSwiGLUMLP,
                                                                               liger_rotary_pos_emb)  # fmt: skip
    package = types.ModuleType("liger_kernel")
    package.transformers = module
    monkeypatch.setitem(sys.modules, "liger_kernel", package)
    monkeypatch.setitem(sys.modules, "liger_kernel.transformers", module)
    monkeypatch.setattr(modeling, "apply_rotary_pos_emb", plain)  # put back after the test
    return calls


def test_liger_kernels_take_the_modules_places_with_the_same_parameters_and_loss(tiny, data, base_model,
                                                                                  monkeypatch):  # fmt: skip
    """``kernels = "liger"``: every decoder layer's norms and MLP, the final norm and the vision blocks' norms are
    Liger's modules holding the very same parameters (names and order unchanged, so groups, shards and checkpoints
    are too), the attention calls Liger's rotary embedding, and a pack's loss is unchanged (the stand-in computes the
    reference math: what is checked is the plumbing; the kernels' own numbers are Liger's tests' and the H200 run's).
    On the CPU the setting is refused before anything is loaded."""
    import copy

    from vdpm_harness_training.gsm import kernels
    from vdpm_harness_training.gsm.attention import register

    with pytest.raises(kernels.KernelsError, match="CUDA only"):
        kernels.check("liger", torch.device("cpu"))
    with pytest.raises(ConfigError, match="do not go together"):
        build_config(None, (), **{"kernels": "liger", "compile": True})
    calls = fake_liger(monkeypatch)
    model = copy.deepcopy(base_model)
    model.config.text_config._attn_implementation = register()
    [one_pack] = pack([build(e, layout_for(model, tiny)) for e in load_examples([str(data)])[:2]], 4096)
    before = dict(model.named_parameters())
    with torch.no_grad():
        reference = PackedGSM(model)(**one_pack.tensors(0, "cpu"))
        used = kernels.use_liger(model)
        after = dict(model.named_parameters())
        swapped = PackedGSM(model)(**one_pack.tensors(0, "cpu"))
    assert used["swapped"] == ["rms_norm", "swiglu", "rope"]
    assert list(after) == list(before) and all(after[name] is before[name] for name in before)
    layers, blocks = len(model.model.language_model.layers), len(model.model.visual.blocks)
    assert calls == {"swiglu": layers, "rope": layers, "rms_norm": 2 * layers + 1 + 2 * blocks}
    torch.testing.assert_close(swapped, reference, rtol=1e-6, atol=1e-6)


# --- training ---------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(tiny, data, tmp_path_factory):
    """24 steps (4 samples each) in this process, then the final checkpoint and the base evaluated on held-out
    dsr-synth scenes: ``(outcome, config)``."""
    root = tmp_path_factory.mktemp("trained")
    config = tiny_config(root / "run", tiny, data, **{
        "schedule.max_steps": 24, "save_every": 8, "eval.benches": ["dsr-synth"], "eval.limit": 6,
        "eval.out": str(root / "results"), "eval.decode_workers": 0, "eval.bench_options": {"dsr-synth": HELD_OUT},
        "eval.model_options": {"max_new_tokens": 4},
    })  # fmt: skip
    outcome = train_gsm(config, Console(stderr=True), progress=False)
    return outcome, config


@pytest.mark.slow
def test_the_loss_falls(trained):
    losses = [r["loss"] for r in read_metrics(trained[1].out)]
    assert len(losses) == 24
    blocks = [sum(losses[i : i + 6]) / 6 for i in range(0, 24, 6)]  # the mean of each quarter of the run
    assert all(later < earlier for earlier, later in zip(blocks, blocks[1:])), losses
    assert blocks[-1] < blocks[0] - 1.0, losses


@pytest.mark.slow
def test_frozen_parameters_are_bit_identical_and_the_rest_moved(trained, tiny):
    before, after = weights(tiny), weights(trained[0].final)
    assert set(before) == set(after)
    frozen = [k for k in before if k.startswith("visual.") and not k.startswith("visual.merger.")
              and not k.startswith(tuple(f"visual.{n}" for n in gsm_checkpoints.GSM_NAMES))]  # fmt: skip
    assert any(k.startswith("visual.spatial_encoder.") for k in frozen) and any(".blocks." in k for k in frozen)
    assert all(torch.equal(before[k], after[k]) for k in frozen)
    trainable = ["lm_head.weight", "model.embed_tokens.weight", "visual.merger.mlp.0.weight", "visual.q_former_queries",
                 "visual.q_former_1.attn.q_proj.weight", "visual.spatial_merger.mlp.0.weight"]  # fmt: skip
    assert all(not torch.equal(before[k], after[k]) for k in trainable)


@pytest.mark.slow
def test_each_groups_learning_rate_follows_the_schedule(trained):
    config = trained[1]
    records = read_metrics(config.out)
    total, warmup = 24, optim.warmup_steps(24, 0.1)
    for record in records:
        factor = optim.lr_factor(record["step"] - 1, total, warmup, "cosine")
        for name, lr in record["lr"].items():
            assert lr == pytest.approx(LRS[name.split("/")[0]] * factor, rel=1e-12, abs=1e-15), (record["step"], name)
    assert records[0]["lr"]["llm"] == 0.0 and max(r["lr"]["merger"] for r in records) == pytest.approx(2e-3)


@pytest.mark.slow
def test_the_checkpoint_lands_on_the_leaderboard_beside_its_base(trained):
    outcome, config = trained
    results = config.eval.out
    labels = {o.label for o in outcome.evaluated}
    assert f"gsm-{outcome.run_id}" in labels and len(labels) == 2
    assert all(o.result is not None and o.result.n_errors == 0 and o.result.n_samples == 6 for o in outcome.evaluated)
    board = open(os.path.join(results, "leaderboard.md")).read()
    assert all(label in board for label in labels)
    record = json.loads(open(os.path.join(results, f"gsm-{outcome.run_id}", "dsr-synth", "run.json")).read())
    assert record["model"]["id"] == "qwen25vl-gsm"
    assert record["model"]["details"]["training"]["run_id"] == outcome.run_id
    assert record["model"]["details"]["training"]["step"] == 24
    # the checkpoint is a GSM checkpoint in the released layout, with the resolved configuration beside it
    training = json.loads((outcome.final / "training.json").read_text())
    assert training["config"]["optimizer"]["groups"]["merger"]["lr"] == LRS["merger"] and training["step"] == 24
    assert (Path(config.out) / "final").resolve() == outcome.final.resolve()


@pytest.mark.slow
def test_a_run_with_other_settings_is_refused_in_the_same_folder(trained, tiny, data):
    config = tiny_config(trained[1].out, tiny, data, **{"schedule.max_steps": 24, "optimizer.groups.llm.lr": 1e-4})
    with pytest.raises(RunRefused, match="optimizer.groups.llm.lr"):
        train_gsm(config, Console(stderr=True), progress=False)


# --- resuming and several processes ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def reference(tiny, data, tmp_path_factory):
    """An uninterrupted run of 8 steps in this process (the reference of the next two tests), with one thread like the
    processes they launch (a CPU matrix product sums in another order with another thread count)."""
    root = tmp_path_factory.mktemp("reference")
    config = tiny_config(root / "run", tiny, data, **{"schedule.max_steps": 8, "activation_checkpointing": 0.5})
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        outcome = train_gsm(config, Console(stderr=True), progress=False)
    finally:
        torch.set_num_threads(threads)
    return outcome, config


def launch(args, config: TrainConfig, out, **popen):
    """``vdpm-harness train gsm`` with ``config`` written to a TOML file, in a subprocess."""
    path = out.parent / f"{out.name}.toml"
    path.write_text(toml_of(config.model_copy(update={"out": str(out)})))
    env = cli_env(**OFFLINE, OMP_NUM_THREADS="1")
    return subprocess.Popen([*args, "train", "gsm", "--config", str(path), "--no-progress"], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen)  # fmt: skip


@pytest.mark.slow
def test_kill_9_and_rerun_gives_the_uninterrupted_weights(reference, tmp_path):
    """Killed (SIGKILL, with a decoding worker process) once its first checkpoint exists, the same command run
    again resumes from it: same final weights, same loss curve, bit for bit."""
    ref_outcome, ref_config = reference
    out = tmp_path / "run"
    config = ref_config.model_copy(update={"data": ref_config.data.model_copy(update={"decode_workers": 1})})
    first = launch([sys.executable, "-m", "vdpm_harness"], config, out)
    deadline = time.monotonic() + 240
    while not (out / "checkpoints" / "step-000002" / "training.json").is_file():
        assert first.poll() is None, first.stdout.read()
        assert time.monotonic() < deadline, "no checkpoint within 240 s"
        time.sleep(0.1)
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    assert not (out / "final").exists(), "the run ended before it was killed"
    second = launch([sys.executable, "-m", "vdpm_harness"], config, out)
    output, _ = second.communicate(timeout=600)
    assert second.returncode == 0, output
    assert "resumed at step" in output
    final, expected = weights(out / "final"), weights(ref_outcome.final)
    assert all(torch.equal(final[k], expected[k]) for k in expected)
    assert [r["loss"] for r in read_metrics(out)] == [r["loss"] for r in read_metrics(ref_config.out)]


@pytest.mark.slow
def test_two_processes_under_torchrun_give_the_one_process_result(reference, tmp_path):
    ref_outcome, ref_config = reference
    out = tmp_path / "run"
    proc = launch([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "-m", "vdpm_harness"],
                  ref_config, out)  # fmt: skip
    output, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, output
    final, expected = weights(out / "final"), weights(ref_outcome.final)
    for key in expected:
        torch.testing.assert_close(final[key], expected[key], rtol=1e-4, atol=1e-5, msg=key)
    ours, theirs = read_metrics(out), read_metrics(ref_config.out)
    assert [r["samples"] for r in ours] == [r["samples"] for r in theirs]
    assert [r["loss"] for r in ours] == pytest.approx([r["loss"] for r in theirs], rel=1e-5)
    assert json.loads((out / "run.json").read_text())["launches"][-1]["processes"] == 2
    # the two processes' sharded checkpoint resumes in one process (resharded on load), with the configured groups
    shutil.rmtree(Path(os.path.realpath(out / "final")))
    (out / "final").unlink()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        again = train_gsm(ref_config.model_copy(update={"out": str(out)}), Console(stderr=True), progress=False)
    finally:
        torch.set_num_threads(threads)
    assert again.resumed_from == 6
    final = weights(again.final)
    for key in expected:
        torch.testing.assert_close(final[key], expected[key], rtol=1e-3, atol=1e-4, msg=key)
    lrs = read_metrics(out)[-1]["lr"]
    assert lrs == read_metrics(ref_config.out)[-1]["lr"] and set(lrs) == {
        "llm",
        "llm/no_decay",
        "merger",
        "merger/no_decay",
        "gsm",
        "gsm/no_decay",
    }


@pytest.mark.slow
def test_bfloat16_moments_over_fsdp2_shards_resume_exactly(tiny, data, tmp_path):
    """AdamW's moments in bf16 (the 7B recipe on one GPU) on FSDP2's float32 shards: the rerun of a run whose last
    checkpoint is gone resumes from the one before and writes the same weights; the moments are stored in bf16."""
    config = tiny_config(tmp_path / "run", tiny, data, **{"schedule.max_steps": 4, "optimizer.state_dtype": "bfloat16"})
    first = train_gsm(config, Console(stderr=True), progress=False)
    expected = weights(first.final)
    shutil.rmtree(first.final)
    (tmp_path / "run" / "final").unlink()
    again = train_gsm(config, Console(stderr=True), progress=False)
    assert again.resumed_from == 2
    final = weights(again.final)
    assert all(torch.equal(final[k], expected[k]) for k in expected)
    from torch.distributed.checkpoint import FileSystemReader

    metadata = FileSystemReader(str(again.final / "state")).read_metadata()
    moments = [m for k, m in metadata.state_dict_metadata.items() if k.endswith("exp_avg_sq")]
    assert moments and all(m.properties.dtype == torch.bfloat16 for m in moments)


# --- the contamination guard ------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_the_guard_refuses_videos_questions_and_scenes_of_an_evaluation_benchmark(data, tmp_path):
    host = get_host()
    held_out = contamination.reference(host, "dsr-synth", HELD_OUT)
    bench = host.create("benchmarks", "dsr-synth", HELD_OUT)
    # the training data of the other tests: other seed, nothing in common
    assert contamination.check(load_examples([str(data)]), [held_out]) == []
    # the benchmark's own questions (its folder holds dsr-templates' train_qas.json): every kind
    own = load_examples([str(bench.folder)])
    kinds = {f.kind for f in contamination.check(own, [held_out])}
    assert kinds == {"video", "question", "scene"}
    with pytest.raises(contamination.ContaminationError, match=r"by video with dsr-synth.*--allow-contamination"):
        contamination.guard(host, own, {"dsr-synth": HELD_OUT}, allow=False)
    assert contamination.guard(host, own, {"dsr-synth": HELD_OUT}, allow=True)
    # the benchmark's first scene rendered again at another size: other bytes and boxes, the same scene
    host.create("generators", "synth-scenes", {"n_videos": 1, "width": 96, "height": 72, "preset": "ultrafast"}
                ).run(tmp_path / "scenes", seed=20251224)  # fmt: skip
    host.create("generators", "dsr-templates", {"tracks": str(tmp_path / "scenes"), "qa_per_video": 10}
                ).run(tmp_path / "qa", seed=3)  # fmt: skip
    findings = contamination.check(load_examples([str(tmp_path / "qa")]), [held_out])
    assert findings and {f.kind for f in findings} == {"scene"}


def test_train_gsm_is_a_command_and_checks_its_options(tmp_path):
    from click.testing import CliRunner

    from vdpm_harness.cli import add_entry_point_commands, cli

    add_entry_point_commands(cli)
    runner = CliRunner()
    result = runner.invoke(cli, ["train", "gsm", "--help"])
    assert result.exit_code == 0 and "--max-steps" in result.output and "--eval" in result.output
    result = runner.invoke(cli, ["train", "gsm", "--base", "b", "--train", "t", "--out", str(tmp_path),
                                 "--set", "schedule.warmup=3"])  # fmt: skip
    assert result.exit_code == 2 and "schedule.warmup: unknown key" in result.output
    assert parallel.checkpointed_layers(28, 0.5) == list(range(0, 28, 2))
    assert parallel.checkpointed_layers(4, 1.0) == [0, 1, 2, 3] and parallel.checkpointed_layers(4, 0.0) == []
