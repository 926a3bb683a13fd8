"""Training: the loss falls on a fixed batch; checkpoints, resume, interruption, LoRA."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from pixelground.backends.seg_token import SegTokenModelBackend
from pixelground.models.checkpoints import STATE_NAME, find_checkpoint
from pixelground.models.config import SegModelConfig
from pixelground.models.objective import loss_weight, training_losses
from pixelground.models.seg_model import SegTokenModel
from pixelground.models.train import (
    Trainer,
    _batch_stream,
    image_groups,
    lr_factor,
    train,
)
from pixelground.models.train_config import TrainConfig, split_flat_config


def _config(tiny_data, out, **kw) -> TrainConfig:
    base = {
        "data": [str(tiny_data)],
        "out": str(out),
        "steps": 4,
        "batch_size": 4,
        "save_every": 2,
        "log_every": 1,
        "warmup_steps": 1,
        "lr": 3e-3,
    }
    return TrainConfig(**{**base, **kw})


def test_a_few_steps_reduce_the_loss_on_a_fixed_batch(tiny_model, tiny_batch, tiny_overrides):
    torch.manual_seed(1)
    model = SegTokenModel(SegModelConfig.from_dict(tiny_overrides), tiny_model.tokenizer)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(15):
        out = training_losses(model, tiny_batch)
        out["loss"].backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append({k: out[k].item() for k in ("loss", "lm_loss", "bce_loss", "dice_loss")})
    assert losses[-1]["loss"] < 0.65 * losses[0]["loss"]
    assert losses[-1]["lm_loss"] < losses[0]["lm_loss"]
    assert losses[-1]["bce_loss"] < losses[0]["bce_loss"]


def test_run_checkpoints_logs_and_resumes(tiny_data, tmp_path, tiny_overrides):
    out = tmp_path / "run"
    final = train(_config(tiny_data, out), tiny_overrides)
    assert final.name == "checkpoint-0000004" and find_checkpoint(out) == final
    assert sorted(p.name for p in out.glob("checkpoint-*")) == [
        "checkpoint-0000002",
        "checkpoint-0000004",
    ]
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3, 4]
    assert all(r["loss"] > 0 and "dice_loss" in r for r in log)
    saved = torch.load(final / STATE_NAME, weights_only=True)

    resumed = Trainer(_config(tiny_data, out, steps=6), tiny_overrides)
    assert resumed.step == 4 and resumed.scheduler.last_epoch == 4
    state = resumed.optimizer.state_dict()["state"]
    for key, value in saved["optimizer"]["state"].items():
        assert torch.equal(state[key]["exp_avg"], value["exp_avg"])
        assert float(state[key]["step"]) == float(value["step"])
    resumed.run()
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3, 4, 5, 6]
    assert find_checkpoint(out).name == "checkpoint-0000006"


def test_keyboard_interrupt_leaves_a_loadable_checkpoint(tiny_data, tmp_path, tiny_overrides):
    out = tmp_path / "interrupted"

    def stop(step, _metrics):
        if step == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(_config(tiny_data, out, steps=10, save_every=100), tiny_overrides, on_step=stop)
    found = find_checkpoint(out)
    assert found is not None and found.name == "checkpoint-0000003"
    assert torch.load(found / STATE_NAME, weights_only=True)["step"] == 3
    assert not list(out.glob(".tmp-*"))
    backend = SegTokenModelBackend(out, device="cpu")
    assert backend.checkpoint == found


def test_validation_and_finetune_from_a_checkpoint(tiny_data, tmp_path, tiny_overrides):
    base = train(_config(tiny_data, tmp_path / "base", steps=2), tiny_overrides)
    tuned_cfg = _config(
        tiny_data, tmp_path / "tuned", steps=2, init_from=str(base), val_data=str(tiny_data)
    )
    tuned = train(tuned_cfg, {"lora_r": 2, "bce_loss_weight": 1.0})
    log = [json.loads(line) for line in (tmp_path / "tuned" / "train_log.jsonl").open()]
    assert 0.0 <= log[-1]["val_mask_iou"] <= 1.0 and "val_token_acc" in log[-1]
    assert "val_image_gain" in log[-1]
    model = SegTokenModel.from_pretrained(tuned)
    assert model.config.lora_r == 2 and model.config.bce_loss_weight == 1.0
    trainable = [n for n, p in model.lm.named_parameters() if p.requires_grad]
    assert any("lora_" in n for n in trainable)
    assert not any("q_proj.base_layer" in n for n in trainable)


def test_flat_config_split_and_schedule():
    train_cfg, model = split_flat_config({"data": "a.jsonl", "steps": 5, "decoder_dim": 32})
    assert train_cfg.data == ["a.jsonl"] and train_cfg.steps == 5 and model == {"decoder_dim": 32}
    with pytest.raises(Exception, match="unknown config keys"):
        split_flat_config({"data": "a.jsonl", "step": 5})
    assert lr_factor(0, 10, 0.0, 0.1) == pytest.approx(0.1)
    assert lr_factor(10, 10, 0.0, 0.1) == pytest.approx(1.0)
    assert lr_factor(50, 10, 0.5, 0.1) == pytest.approx(0.55)
    assert lr_factor(100, 10, 1.0, 0.1) == pytest.approx(0.1)


def test_time_budget_stops_the_run_and_anneals(tiny_data, tmp_path, tiny_overrides):
    trainer = Trainer(
        _config(tiny_data, tmp_path / "budget", steps=1000, max_minutes=1e-9), tiny_overrides
    )
    final = trainer.run()
    assert trainer.step == 1 and final.name == "checkpoint-0000001"
    assert trainer.progress(trainer.step) == 1.0
    assert trainer.scheduler.get_last_lr()[0] == pytest.approx(trainer.cfg.lr * 0.05)
    state = torch.load(final / STATE_NAME, weights_only=True)
    assert state["elapsed"] > 0


def test_batches_keep_image_groups_whole_and_resume_exactly():
    groups = [[0, 1, 2, 3], [4], [5, 6], [7, 8, 9, 10, 11], [12]]
    stream = _batch_stream(groups, 4, seed=3, start=0)
    first = [next(stream) for _ in range(12)]
    assert all(0 < len(b) <= 4 for b in first)
    for batch in first:
        for group in groups:
            if len(group) <= 4 and set(group) & set(batch):
                assert set(group) <= set(batch)
    seen: list[int] = []
    for batch in first:  # an epoch ends with its own (possibly short) batch
        seen += batch
        if len(seen) >= 13:
            break
    assert sorted(seen) == list(range(13))
    resumed = _batch_stream(groups, 4, seed=3, start=5)
    assert [next(resumed) for _ in range(7)] == first[5:]


def test_image_groups_separate_copies_of_a_repeated_file(tiny_data):
    from pixelground.models.data import read_finetune_jsonl

    samples = read_finetune_jsonl(tiny_data).samples
    groups = image_groups(samples)
    assert sorted(len(g) for g in groups) == [1, 4, 4, 4]  # the clip, and 3 images x 4 lines
    doubled = image_groups(samples + samples, copies=[0] * 13 + [1] * 13)
    assert len(doubled) == 8 and all(max(g) < 13 or min(g) >= 13 for g in doubled)
    assert len(image_groups(samples, enabled=False)) == 13


def _region_lines(tiny_data: Path) -> Path:
    """The tiny data's region-caption lines, as a first-phase file."""
    lines = [ln for ln in tiny_data.read_text().splitlines() if "<region>" in ln]
    first = tiny_data.parent / "first_phase.jsonl"
    first.write_text("\n".join(lines) + "\n")
    return first


def test_first_phase_data_then_main_data(tiny_data, tmp_path, tiny_overrides):
    first = _region_lines(tiny_data)
    cfg = _config(
        tiny_data, tmp_path / "phases", steps=3, first_data=[str(first)], first_minutes=1e-9
    )
    trainer = Trainer(cfg, tiny_overrides)
    assert trainer.switch_step is None and len(trainer.first.samples) == 3
    final = trainer.run()
    assert trainer.switch_step == 1
    assert torch.load(final / STATE_NAME, weights_only=True)["switch_step"] == 1
    again = Trainer(
        _config(
            tiny_data, tmp_path / "phases", steps=4, first_data=[str(first)], first_minutes=1e-9
        ),
        tiny_overrides,
    )
    assert again.step == 3 and again.switch_step == 1


def test_first_phase_by_steps_lasts_that_many_steps_whatever_the_time(
    tiny_data, tmp_path, tiny_overrides
):
    first = _region_lines(tiny_data)
    with pytest.raises(Exception, match="first_steps must be"):
        _config(tiny_data, tmp_path / "bad", first_data=[str(first)], first_steps=-1)
    # first_minutes would end the phase after one step; first_steps holds it for two
    cfg = _config(
        tiny_data,
        tmp_path / "by_steps",
        steps=4,
        first_data=[str(first)],
        first_minutes=1e-9,
        first_steps=2,
    )
    trainer = Trainer(cfg, tiny_overrides)
    trainer.run()
    assert trainer.switch_step == 2


def test_first_loss_scale_weighs_terms_in_the_first_phase_only(
    tiny_data, tmp_path, tiny_overrides, monkeypatch
):
    first = _region_lines(tiny_data)
    with pytest.raises(Exception, match="unknown loss terms"):
        _config(tiny_data, tmp_path / "bad", first_loss_scale={"head_loss": 0.0})
    cfg = _config(
        tiny_data,
        tmp_path / "scaled",
        steps=3,
        first_data=[str(first)],
        first_minutes=1e-9,
        first_loss_scale={"head_word_loss": 0.0},
    )
    trainer = Trainer(cfg, {**tiny_overrides, "head_word_loss_weight": 0.5})
    weights: list[float] = []
    step = Trainer.train_step

    def recording_step(self, batches):
        out = step(self, batches)
        weights.append(loss_weight(self.model, "head_word_loss", self.loss_scale))
        return out

    monkeypatch.setattr(Trainer, "train_step", recording_step)
    trainer.run()
    assert trainer.switch_step == 1
    assert weights == [0.0, 0.5, 0.5]


def test_vision_lr_scale_gives_the_tower_its_own_rate_and_resumes(
    tiny_data, tmp_path, tiny_overrides
):
    with pytest.raises(Exception, match="vision_lr_scale"):
        _config(tiny_data, tmp_path / "bad", vision_lr_scale=0.0)
    plain = Trainer(_config(tiny_data, tmp_path / "plain"), tiny_overrides)
    assert [g["lr"] for g in plain.optimizer.param_groups] == [3e-3, 3e-3]

    cfg = _config(tiny_data, tmp_path / "scaled", steps=2, vision_lr_scale=4.0)
    trainer = Trainer(cfg, tiny_overrides)
    vision = {id(p) for p in trainer.model.vision.parameters()}
    rates = {}
    for group in trainer.optimizer.param_groups:
        in_vision = {id(p) in vision for p in group["params"]}
        assert len(in_vision) == 1, "a group mixes the tower with other parts"
        rates.setdefault(in_vision.pop(), set()).add(group["initial_lr"])
    assert rates == {False: {3e-3}, True: {1.2e-2}}
    grouped = sum(len(g["params"]) for g in trainer.optimizer.param_groups)
    assert grouped == sum(1 for p in trainer.model.parameters() if p.requires_grad)
    trainer.run()
    last = trainer.scheduler.get_last_lr()
    by_group = dict(
        zip([g["initial_lr"] for g in trainer.optimizer.param_groups], last, strict=True)
    )
    assert by_group[1.2e-2] == pytest.approx(4 * by_group[3e-3])

    resumed = Trainer(
        _config(tiny_data, tmp_path / "scaled", steps=3, vision_lr_scale=4.0), tiny_overrides
    )
    resumed.run()
    assert resumed.step == 3


def test_first_words_only_trains_the_image_features_alone_then_everything(
    tiny_data, tmp_path, tiny_overrides, monkeypatch
):
    lines = [ln for ln in tiny_data.read_text().splitlines() if "<p>" in ln]
    assert lines, "the tiny data has no grounded-caption line"
    first = tiny_data.parent / "first_words.jsonl"
    first.write_text("\n".join(lines) + "\n")
    with pytest.raises(Exception, match="first phase"):
        _config(tiny_data, tmp_path / "bad", first_words_only=True)
    words_cfg = {"first_data": [str(first)], "first_minutes": 1e-9, "first_words_only": True}
    with pytest.raises(Exception, match="first_hue_augment needs first_words_only"):
        _config(
            tiny_data,
            tmp_path / "bad",
            first_data=[str(first)],
            first_minutes=1,
            first_hue_augment=0.5,
        )
    with pytest.raises(Exception, match="first_hue_augment must be in"):
        _config(tiny_data, tmp_path / "bad", **words_cfg, first_hue_augment=1.5)
    for name in ("hue_augment", "hue_drop_colours"):
        with pytest.raises(Exception, match=f"{name} must be in"):
            _config(tiny_data, tmp_path / "bad", **{name: -0.1})
    with pytest.raises(Exception, match="word_loss_weight"):
        Trainer(_config(tiny_data, tmp_path / "no_heads", **words_cfg), tiny_overrides)

    cfg = _config(tiny_data, tmp_path / "words", steps=2, **words_cfg)
    trainer = Trainer(cfg, {**tiny_overrides, "word_loss_weight": 0.5})
    lm_before = [p.detach().clone() for p in trainer.model.lm.parameters()]
    vision_before = [p.detach().clone() for p in trainer.model.vision.parameters()]
    losses: list[dict[str, float]] = []
    step = Trainer.train_step

    def recording_step(self, batches):
        out = step(self, batches)
        losses.append(out)
        if len(losses) == 1:  # the first phase: only the image features moved
            lm_now = list(self.model.lm.parameters())
            assert all(torch.equal(a, b) for a, b in zip(lm_before, lm_now, strict=True))
            vision_now = list(self.model.vision.parameters())
            assert not all(
                torch.equal(a, b) for a, b in zip(vision_before, vision_now, strict=True)
            )
        return out

    monkeypatch.setattr(Trainer, "train_step", recording_step)
    trainer.run()
    assert trainer.switch_step == 1
    assert losses[0]["word_loss"] > 0 and losses[0]["lm_loss"] == 0.0
    assert losses[1]["lm_loss"] > 0
    lm_after = list(trainer.model.lm.parameters())
    assert not all(torch.equal(a, b) for a, b in zip(lm_before, lm_after, strict=True))


def test_training_records_the_words_the_phrase_word_heads_learn(
    tiny_data, tmp_path, tiny_overrides
):
    out = train(
        _config(tiny_data, tmp_path / "words", steps=1), {**tiny_overrides, "word_loss_weight": 0.5}
    )
    # the tiny data's one grounded caption: "<p>a red square</p> ... <p>a blue circle</p>"
    assert SegTokenModel.from_pretrained(out).config.phrase_words == (
        "a",
        "blue",
        "circle",
        "red",
        "square",
    )
    plain = train(_config(tiny_data, tmp_path / "plain", steps=1), tiny_overrides)
    assert SegTokenModel.from_pretrained(plain).config.phrase_words == ()
