"""The paper's CNN: shape, one use per module, named layers; training and checkpoints."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd
import pytest
import torch

from wrenlib.frontend import PAPER_FRONT_END, assign_backgrounds
from wrenlib.images import SpectrogramDataset
from wrenlib.model import DialectCNN, ModelConfig, count_parameters, layer_table
from wrenlib.runtime import set_seed
from wrenlib.training import CheckpointMismatch, TrainingConfig, fit, load_checkpoint, predict, save_checkpoint


def test_paper_size_network_has_59_9_million_parameters():
    model = DialectCNN(ModelConfig(480, 960))
    assert count_parameters(model) == 59_902_594
    table = layer_table(DialectCNN(ModelConfig(64, 128)))
    assert table.iloc[-1]["output shape"] == (2,)
    assert list(table["type"]).count("Conv2d") == 5 and list(table["type"]).count("Linear") == 3


def test_no_module_runs_twice_in_a_forward_pass():
    model = DialectCNN(ModelConfig(64, 128))
    calls = Counter()
    handles = [module.register_forward_hook(lambda m, i, o, name=name: calls.update([name]))
               for name, module in model.named_modules() if not list(module.children())]
    model(torch.zeros(2, 1, 64, 128))
    for handle in handles:
        handle.remove()
    assert calls and max(calls.values()) == 1
    relus = [m for m in model.modules() if isinstance(m, torch.nn.ReLU)]
    assert len(relus) == 7 and len({id(m) for m in relus}) == 7 and not any(m.inplace for m in relus)


def test_pool_first_twin_gives_the_same_outputs_and_gradients_bit_for_bit():
    torch.manual_seed(0)
    model = DialectCNN(ModelConfig(64, 128))
    twin = model.pool_first()
    assert {id(p) for p in twin.parameters()} == {id(p) for p in model.parameters()}  # shared, not copied
    assert [type(m).__name__ for m in twin.features[0]] == ["Conv2d", "MaxPool2d", "ReLU"]
    assert [type(m).__name__ for m in model.features[0]] == ["Conv2d", "ReLU", "MaxPool2d"]  # the paper's order
    x = torch.randn(4, 1, 64, 128)  # negative values too: windows where every value is below zero
    model.eval()
    assert torch.equal(twin(x), model(x))
    gradients = []
    for network in (model, twin):
        model.zero_grad()
        model.train()  # dropout on: the same random stream for both
        torch.manual_seed(1)
        torch.nn.functional.cross_entropy(network(x), torch.tensor([0, 1, 1, 0])).backward()
        gradients.append([p.grad.clone() for p in model.parameters()])
    assert all(torch.equal(a, b) for a, b in zip(*gradients))
    assert any(float(g.abs().sum()) > 0 for g in gradients[0])
    from wrenlib.model import fast_forward

    assert isinstance(fast_forward(model), type(twin)) and fast_forward(twin.features) is twin.features


def test_named_layers_for_gradcam_and_latent_space():
    model = DialectCNN(ModelConfig(64, 128))
    assert isinstance(model.last_conv_layer, torch.nn.Conv2d) and model.last_conv_layer.out_channels == 256
    assert model.latent_features(torch.zeros(3, 1, 64, 128)).shape == (3, 1024)
    with pytest.raises(ValueError):
        ModelConfig(16, 16)


def _toy_dataset(n_per_class: int = 24, size=(32, 64)) -> SpectrogramDataset:
    """Class 1 has a bright horizontal stroke high up, class 0 low down: trivially learnable."""
    rng = np.random.default_rng(0)
    n = 2 * n_per_class
    levels = (rng.random((n, *size)) * 40).astype(np.uint8)
    labels = np.arange(n) % 2
    for index, label in enumerate(labels):
        row = 6 if label else 24
        start = rng.integers(0, size[1] - 20)
        levels[index, row:row + 2, start:start + 20] = 255
    splits = np.array(["train", "train", "validation", "test"] * (n // 4))
    clips = pd.DataFrame({"clip": np.arange(n), "label": labels, "dialect": np.where(labels, "Mexican", "Eastern"),
                          "song_type": "x", "individual": np.arange(n), "split": splits})
    front = PAPER_FRONT_END.with_image_size(*size)
    return SpectrogramDataset(levels, clips, assign_backgrounds(n, "black", 0), front, None, with_masks=False)


def test_training_learns_a_trivial_task_and_is_deterministic():
    dataset = _toy_dataset()
    config = TrainingConfig(learning_rate=1e-3, max_epochs=12, patience=12, batch_size=8)
    results = []
    for _ in range(2):
        set_seed(0)
        model = DialectCNN(ModelConfig(32, 64))
        history = fit(model, dataset, config, progress=False)
        test = dataset.split_indices("test")
        accuracy = float(np.mean(predict(model, dataset, test).argmax(1) == dataset.labels[test]))
        results.append((accuracy, history["validation_loss"].tolist(), model.classifier[-1].weight.detach().clone()))
    assert results[0][0] >= 0.9
    assert results[0][1] == results[1][1]
    assert torch.equal(results[0][2], results[1][2])
    from wrenlib.training import TRAINED

    # each training is reported for the Performance page's arithmetic
    assert TRAINED[-1] == {"model": ModelConfig(32, 64).to_dict(), "epochs": len(history),
                           "train_images": len(dataset.split_indices("train")),
                           "validation_images": len(dataset.split_indices("validation")), "precision": "float32"}


def test_a_training_epoch_reads_its_sums_from_the_device_once_not_every_step(monkeypatch):
    """On a GPU, reading a number from the device makes the CPU wait for the step: fit keeps the
    steps' losses and counts of correct clips on the device and reads them once per epoch (two
    reads), whatever the number of steps."""
    import torch

    reads = []  # (optimizer.step reads its own step counters with .item(): CPU tensors even on a GPU)
    for name in ("__float__", "__int__", "tolist"):
        original = getattr(torch.Tensor, name)
        monkeypatch.setattr(torch.Tensor, name, lambda self, _original=original, _name=name:
                            reads.append(_name) or _original(self))
    monkeypatch.setattr("wrenlib.training.image_statistics", lambda *args, **kwargs: (0.0, 1.0))  # its own reads
    dataset = _toy_dataset()
    set_seed(0)
    fit(DialectCNN(ModelConfig(32, 64)), dataset, TrainingConfig(max_epochs=2, patience=2, batch_size=2),
        progress=False)
    steps = -(-len(dataset.split_indices("train")) // 2)
    assert steps >= 4 and len(reads) == 2 * 2, (steps, reads)


def test_flops_per_image_counts_the_convolutions_and_products_by_hand():
    from wrenlib.model import flops_per_image

    config = ModelConfig(32, 32, conv_channels=(2,), hidden_units=(3,))  # conv 1 -> 2, pool to 16 x 16, 512 -> 3 -> 2
    conv, hidden, out = 2 * (32 * 32) * 2 * 9, 2 * 512 * 3, 2 * 3 * 2  # a multiply-add is 2 operations
    assert flops_per_image(config, training=False) == conv + hidden + out
    # backward: the convolution's weight gradient only (the image needs none), both gradients of a product
    assert flops_per_image(config) == conv + hidden + out + conv + 2 * (hidden + out)
    paper = flops_per_image(ModelConfig(480, 960), training=False)
    assert flops_per_image(ModelConfig(120, 240), training=False) == pytest.approx(paper / 16, rel=0.02)


def test_mixed_precision_is_chosen_per_device_and_validated(monkeypatch):
    from wrenlib import runtime
    from wrenlib.training import autocast_dtype

    assert autocast_dtype("cpu", "off") is None and autocast_dtype("cpu", "gpu") is None  # a CPU trains in float32
    assert autocast_dtype("cpu", "always") == torch.bfloat16
    # "native": bfloat16 only where the CPU computes it in hardware, else float32
    monkeypatch.setattr(runtime, "cpu_has_native_bfloat16", lambda: True)
    assert autocast_dtype("cpu", "native") == torch.bfloat16 and autocast_dtype("cpu", "off") is None
    monkeypatch.setattr(runtime, "cpu_has_native_bfloat16", lambda: False)
    assert autocast_dtype("cpu", "native") is None and autocast_dtype("cpu", "always") == torch.bfloat16
    with pytest.raises(ValueError, match="mixed_precision must be one of off, gpu, native, always"):
        TrainingConfig(mixed_precision="fp8")
    from wrenlib.training import training_config_for_profile

    assert training_config_for_profile("quick").mixed_precision == "off"
    assert training_config_for_profile("full").mixed_precision == "native"
    # a GPU that only emulates bfloat16 (compute capability 7: T4, V100) trains in float16 with a
    # loss scaler; one that computes it (8 and later) in bfloat16
    import contextlib

    from wrenlib.training import gradient_scaler

    monkeypatch.setattr(torch.cuda, "device", lambda device: contextlib.nullcontext())
    for native, expected in ((False, torch.float16), (True, torch.bfloat16)):
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True, native=native:
                            native or including_emulation)
        assert autocast_dtype("cuda", "native") == expected
    assert gradient_scaler(torch.float16, "cpu") is not None and gradient_scaler(torch.bfloat16, "cpu") is None
    for wrong in ({"max_epochs": 0}, {"patience": 0}, {"batch_size": 2.5}, {"learning_rate": 0.0}):
        with pytest.raises(ValueError, match=next(iter(wrong))):
            TrainingConfig(**wrong)


def test_predict_answers_in_the_order_it_was_asked():
    """batches() reads a batch's clips in sorted order; predict puts the rows back where they were asked."""
    dataset = _toy_dataset()
    set_seed(0)
    model = DialectCNN(ModelConfig(32, 64)).eval()
    asked = np.array([5, 0, 3, 9, 1])
    together = predict(model, dataset, asked, batch_size=3)
    alone = np.concatenate([predict(model, dataset, [i]) for i in asked])
    np.testing.assert_allclose(together, alone, rtol=1e-5, atol=1e-7)
    assert not np.allclose(together, together[np.argsort(asked)])  # the sorted order would be another answer


def test_a_checkpoint_trained_where_native_meant_bfloat16_is_not_taken_where_it_means_float32(
        isolated_artifacts, monkeypatch):
    from wrenlib import cache, runtime, training

    made = len(cache.MADE)
    dataset = _toy_dataset()
    config = TrainingConfig(max_epochs=1, patience=1, batch_size=8, mixed_precision="native")
    described = {"model": ModelConfig(32, 64).to_dict(), "data": "toy"}
    runs = []
    monkeypatch.setattr(training, "train_model", lambda *args, **kwargs: (runs.append(1), (DialectCNN(
        ModelConfig(32, 64)).eval(), pd.DataFrame({"epoch": [1], "validation_loss": [0.5]})))[1])
    for native in (True, True, False):
        monkeypatch.setattr(runtime, "cpu_has_native_bfloat16", lambda native=native: native)
        training.load_or_train_on(dataset, "quick", "toy", described, config, "cpu", progress=False)
    assert len(runs) == 2  # trained, taken from the checkpoint, trained again for float32
    assert cache.MADE[made:] == ["the CNN toy"] * 2  # each training noted (the status page), the load not


def test_the_cpu_says_whether_it_computes_bfloat16_natively(tmp_path):
    from wrenlib.runtime import cpu_has_native_bfloat16

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu avx512f avx512bw avx512_vnni\n")
    assert not cpu_has_native_bfloat16(cpuinfo)  # AVX-512 alone converts bfloat16 to float32
    for flags in ("flags\t\t: fpu avx512f avx512_bf16 avx512_vnni", "flags\t: amx_tile amx_bf16"):
        cpuinfo.write_text(f"processor\t: 0\n{flags}\n")  # Cooper Lake or Zen 4; Sapphire Rapids
        assert cpu_has_native_bfloat16(cpuinfo), flags
    cpuinfo.write_text("processor\t: 0\nFeatures\t: fp asimd bf16 i8mm\n")  # ARMv8.6: not measured yet
    assert not cpu_has_native_bfloat16(cpuinfo)
    assert not cpu_has_native_bfloat16(tmp_path / "missing")  # no /proc/cpuinfo: assume not
    cpuinfo.write_text("processor\t: 0\nflags\t\t:\nflags\t\t: fpu avx512_bf16\n")  # an empty flags line first
    assert cpu_has_native_bfloat16(cpuinfo)


@pytest.mark.parametrize("half", ["bfloat16", "float16"])
def test_training_in_16_bit_floats_learns_the_task_with_float32_weights(half, monkeypatch):
    """The GPU path, run on the CPU: autocast in bfloat16, or float16 with the gradient scaler."""
    from wrenlib import training

    monkeypatch.setattr(training, "autocast_dtype", lambda device, mode: getattr(torch, half))
    dataset = _toy_dataset()
    config = TrainingConfig(learning_rate=1e-3, max_epochs=12, patience=12, batch_size=8, mixed_precision="always")
    set_seed(0)
    model = DialectCNN(ModelConfig(32, 64))
    history = fit(model, dataset, config, progress=False)
    test = dataset.split_indices("test")
    accuracy = float(np.mean(predict(model, dataset, test).argmax(1) == dataset.labels[test]))
    assert accuracy >= 0.9 and history["train_loss"].iloc[-1] < history["train_loss"].iloc[0]
    assert all(p.dtype == torch.float32 for p in model.parameters())  # only the passes ran in 16 bits


def test_checkpoints_round_trip_and_refuse_another_configuration(tmp_path):
    model = DialectCNN(ModelConfig(32, 64))
    model.set_standardisation(0.1, 0.2)
    config = {"model": ModelConfig(32, 64).to_dict(), "training": TrainingConfig().to_dict(), "data": {"seed": 0}}
    path = save_checkpoint(tmp_path / "m.pt", model, config, pd.DataFrame({"epoch": [1], "train_loss": [0.5]}))
    loaded, loaded_config, history = load_checkpoint(path, config)
    x = torch.rand(2, 1, 32, 64)
    model.eval()
    assert torch.equal(loaded(x), model(x))
    assert history["train_loss"].tolist() == [0.5]
    other = {**config, "training": {**config["training"], "learning_rate": 0.5}}
    with pytest.raises(CheckpointMismatch, match="training.learning_rate: checkpoint has 0.0003, expected 0.5"):
        load_checkpoint(path, other)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=r"not a wrenlib checkpoint \(empty, damaged") as refused:
        load_checkpoint(tmp_path / "junk.pt")
    assert "weights_only" not in str(refused.value)  # not torch's advice to run the file's code
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(ValueError, match=r"not a wrenlib checkpoint \(empty, damaged"):
        load_checkpoint(tmp_path / "empty.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")  # a torch file, not ours
    with pytest.raises(ValueError, match="a torch file without the configuration"):
        load_checkpoint(tmp_path / "other.pt")
    if not torch.cuda.is_available():  # a good checkpoint that fails for another reason is not called damaged
        with pytest.raises(ValueError, match=r"could not be loaded \(RuntimeError: .*CUDA"):
            load_checkpoint(path, device="cuda")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.pt", "junk.pt", "m.pt", "other.pt"]  # no temporary files left


def test_accuracy_interval_is_wilsons():
    from wrenlib.training import accuracy_with_interval

    accuracy, low, high = accuracy_with_interval(np.array([True] * 8 + [False] * 2))
    assert accuracy == 0.8
    assert low == pytest.approx(0.4902, abs=1e-3) and high == pytest.approx(0.9433, abs=1e-3)


def test_an_accuracy_over_birds_resamples_birds_not_clips():
    """Clips of one bird succeed or fail together: the interval that resamples birds is wider than
    Wilson's over clips, and with one clip per bird the two agree closely."""
    from wrenlib.training import accuracy_with_interval

    rng = np.random.default_rng(0)
    birds = np.repeat(np.arange(24), 6)
    together = np.repeat(rng.random(24) < 0.85, 6)  # a bird's six clips share one outcome
    accuracy, low, high = accuracy_with_interval(together, birds)
    _, wilson_low, wilson_high = accuracy_with_interval(together)
    assert low <= accuracy <= high and (high - low) > 1.4 * (wilson_high - wilson_low)
    assert accuracy_with_interval(together, birds) == (accuracy, low, high)  # repeatable with its seed
    independent = rng.random(200) < 0.85
    _, low, high = accuracy_with_interval(independent, np.arange(200))
    _, wilson_low, wilson_high = accuracy_with_interval(independent)
    assert abs(low - wilson_low) < 0.02 and abs(high - wilson_high) < 0.02
    # all right: nothing to resample, Wilson's interval over the 24 birds, each one trial
    accuracy, low, high = accuracy_with_interval(np.ones(144, bool), birds)
    assert accuracy == high == 1.0 and low == pytest.approx(accuracy_with_interval(np.ones(24, bool))[1])
    assert np.isnan(accuracy_with_interval(together[:6], birds[:6])[1])  # one bird: no interval
    with pytest.raises(ValueError, match="group of each of the 144 clips"):
        accuracy_with_interval(together, birds[:10])


def test_a_difference_of_two_models_accuracies_keeps_their_clips_paired():
    from wrenlib.training import accuracy_difference_with_interval

    rng = np.random.default_rng(1)
    birds = np.repeat(np.arange(30), 5)
    hard = np.repeat(rng.random(30) < 0.3, 5)  # both models fail the hard birds
    better = ~hard
    worse = better & (rng.random(150) > 0.15)  # and the second also misses some easy clips
    difference, low, high = accuracy_difference_with_interval(better, worse, birds)
    assert difference == pytest.approx(better.mean() - worse.mean()) and 0 < low <= difference <= high
    # the reverse comparison is the mirror image
    reverse = accuracy_difference_with_interval(worse, better, birds)
    assert reverse[0] == pytest.approx(-difference) and reverse[2] < 0
    assert accuracy_difference_with_interval(better, better, birds) == (0.0, 0.0, 0.0)  # the same answers
    with pytest.raises(ValueError, match="the same clips"):
        accuracy_difference_with_interval(better, worse[:10], birds)


def test_front_end_survives_a_checkpoint_round_trip():
    from wrenlib.frontend import FrontEnd, front_end_from_dict

    front = FrontEnd(image_height_px=60, image_width_px=120, db_range=(-50.0, 0.0))
    assert front_end_from_dict(front.to_dict()) == front


def test_training_benchmark_reports_rates_and_loader_share():
    from wrenlib.training import benchmark_training

    speed = benchmark_training((32, 64), batch_size=4, n_batches=2, repeats=1)
    assert speed["training_images_per_second"] > 0 and speed["loader_images_per_second"] > 0
    assert speed["paper_order_images_per_second"] > 0
    assert 0 < speed["loader_share_of_step_time"] < 10


def test_the_training_benchmark_times_16_bit_steps_only_where_the_full_profile_would_take_them(monkeypatch):
    from wrenlib import runtime
    from wrenlib.training import benchmark_training

    monkeypatch.setattr(runtime, "cpu_has_native_bfloat16", lambda: False)
    assert "mixed_precision" not in benchmark_training((32, 64), batch_size=4, n_batches=1, repeats=1)
    monkeypatch.setattr(runtime, "cpu_has_native_bfloat16", lambda: True)
    speed = benchmark_training((32, 64), batch_size=4, n_batches=1, repeats=1)
    assert speed["mixed_precision"] == "bfloat16" and speed["mixed_precision_images_per_second"] > 0
    assert "mixed_precision" not in benchmark_training((32, 64), batch_size=4, n_batches=1, repeats=1,
                                                       sixteen_bit=False)  # asked not to (chapter 03's one batch)


def test_convolutions_stay_channels_last_through_copies_and_checkpoints(tmp_path):
    """The faster weight layout (chapter 03, make bench) must survive what the book does to a model."""
    import copy

    def channels_last(model):
        weights = [m.weight for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
        # with one input channel both layouts are the same memory, so only the deeper ones tell
        return bool(weights) and all(w.is_contiguous(memory_format=torch.channels_last) for w in weights) \
            and not any(w.is_contiguous() for w in weights if w.shape[1] > 1)

    config = ModelConfig(32, 64, conv_channels=(4, 8), hidden_units=(16,))
    model = DialectCNN(config)
    assert channels_last(model) and channels_last(copy.deepcopy(model)) and channels_last(model.to("cpu"))
    path = save_checkpoint(tmp_path / "m.pt", model, {"model": config.to_dict()})
    loaded, _, _ = load_checkpoint(path)
    assert channels_last(loaded)
    x = torch.rand(3, 1, 32, 64)
    reference = copy.deepcopy(model)
    for m in reference.modules():
        if isinstance(m, torch.nn.Conv2d):
            m.weight.data = m.weight.data.contiguous()
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(x), reference.eval()(x), rtol=1e-5, atol=1e-6)


def test_train_model_draws_weights_from_the_config_seed():
    from wrenlib.training import train_model

    dataset = _toy_dataset()
    config = TrainingConfig(learning_rate=1e-3, max_epochs=3, patience=3, batch_size=8, seed=5)
    first, history = train_model(dataset, config, device="cpu", progress=False)
    again, _ = train_model(dataset, config, device="cpu", progress=False)
    other, _ = train_model(dataset, TrainingConfig(**{**config.to_dict(), "seed": 6}), device="cpu", progress=False)
    assert not first.training and len(history) == 3
    assert (first.config.image_height_px, first.config.image_width_px) == (32, 64)
    assert torch.equal(first.classifier[-1].weight, again.classifier[-1].weight)
    assert not torch.equal(first.classifier[-1].weight, other.classifier[-1].weight)


def test_the_snr_sweep_in_this_process_leaves_its_torch_threads_alone(monkeypatch, isolated_artifacts):
    """accuracy_against_snr with n_jobs=1 synthesises in the calling process: it must not pin that
    process to one torch thread, as it does its worker processes."""
    from wrenlib import profiles
    from wrenlib.training import accuracy_against_snr

    tiny = profiles.PROFILES["quick"].with_overrides(name="tiny", individuals_per_dialect=6, clips_per_individual=2,
                                                     image_height_px=32, image_width_px=64)
    monkeypatch.setitem(profiles.PROFILES, "tiny", tiny)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        sweep = accuracy_against_snr(DialectCNN(ModelConfig(32, 64)).eval(), "tiny", [0, 20], n_jobs=1)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    assert list(sweep["snr_db"]) == [0.0, 20.0]
    assert (sweep["clips"] > 0).all() and sweep["accuracy"].between(0, 1).all()
    # the interval is over the test birds (2 clips each here), not over clips
    assert (sweep["birds"] == sweep["clips"] // 2).all()


def test_the_snr_sweep_takes_as_many_processes_as_the_run_gives_a_job_threads(monkeypatch):
    """Other jobs may run beside chapter 03: its sweep takes the job's share of the cores
    (WRENBOOK_TORCH_THREADS), not a fixed count; a count given wins."""
    from wrenlib import profiles, training

    tiny = profiles.PROFILES["quick"].with_overrides(name="tiny", individuals_per_dialect=6, clips_per_individual=2,
                                                     image_height_px=32, image_width_px=64)
    monkeypatch.setitem(profiles.PROFILES, "tiny", tiny)
    asked, original = [], training.map_batches
    monkeypatch.setattr(training, "map_batches", lambda function, batches, n_jobs, *arguments: (
        asked.append(n_jobs), original(function, batches, 1, *arguments))[1])
    monkeypatch.setenv("WRENBOOK_TORCH_THREADS", "3")
    model = DialectCNN(ModelConfig(32, 64)).eval()
    training.accuracy_against_snr(model, "tiny", [10])
    training.accuracy_against_snr(model, "tiny", [10], n_jobs=1)
    assert asked == [3, 1]


def test_kept_epoch_follows_fits_rule_not_the_lowest_loss():
    """The epoch fit keeps: a later loss lower by less than MIN_IMPROVEMENT does not replace it,
    although it is the curve's minimum; and an early-stopped fit ran patience epochs past it."""
    from wrenlib.training import MIN_IMPROVEMENT, kept_epoch

    history = pd.DataFrame({"epoch": [1, 2, 3, 4], "validation_loss": [0.6, 0.3, 0.3 - MIN_IMPROVEMENT / 2, 0.4]})
    assert kept_epoch(history) == 2 and int(history.loc[history["validation_loss"].idxmin(), "epoch"]) == 3
    set_seed(0)
    config = TrainingConfig(learning_rate=1e-3, max_epochs=30, patience=2, batch_size=8)
    fitted = fit(DialectCNN(ModelConfig(32, 64)), _toy_dataset(), config, progress=False)
    assert len(fitted) == config.max_epochs or len(fitted) == kept_epoch(fitted) + config.patience


def test_the_validation_loss_is_the_uncapped_cross_entropy():
    """Early stopping ranks epochs by the validation loss: a confidently wrong clip must count in
    full (a loss of 200 here), not capped at -log(1e-7) = 16.1 as a clipped probability would."""
    dataset = _toy_dataset()
    validation = dataset.split_indices("validation")
    favoured = 1 - int(dataset.labels[validation][0])  # the class of none, or some, of the validation clips
    set_seed(0)
    model = DialectCNN(ModelConfig(32, 64))
    with torch.no_grad():  # every clip: the favoured class, sure of it
        model.classifier[-1].bias.copy_(torch.tensor([100.0, -100.0] if favoured == 0 else [-100.0, 100.0]))
    history = fit(model, dataset, TrainingConfig(learning_rate=1e-12, max_epochs=1, patience=1, batch_size=8),
                  progress=False)
    wrong = float(np.mean(dataset.labels[validation] != favoured))
    assert wrong > 0 and history["validation_loss"].iloc[0] == pytest.approx(200 * wrong, rel=0.05)


def test_a_cached_cnn_is_trained_again_when_its_training_settings_change(isolated_artifacts, monkeypatch,
                                                                          other_masks):
    """The checkpoint's key holds the training settings: after a change of learning rate (or epochs,
    or patience) the profile's CNN is trained again, not loaded from the old checkpoint."""
    from dataclasses import replace

    from wrenlib import profiles, training

    monkeypatch.setitem(profiles.PROFILES, "tiny", profiles.PROFILES["quick"].with_overrides(
        name="tiny", individuals_per_dialect=5, clips_per_individual=4, image_height_px=32, image_width_px=64,
        max_epochs=1, patience=1))
    trainings, real_train = [], training.train_model
    monkeypatch.setattr(training, "train_model", lambda *args, **kwargs: trainings.append(1) or real_train(*args, **kwargs))
    training.load_or_train_model("tiny", device="cpu", progress=False)
    training.load_or_train_model("tiny", device="cpu", progress=False)
    assert len(trainings) == 1  # the second call loads the checkpoint
    real_config = training.training_config_for_profile
    monkeypatch.setattr(training, "training_config_for_profile",
                        lambda *args, **kwargs: replace(real_config(*args, **kwargs), learning_rate=5e-4))
    training.load_or_train_model("tiny", device="cpu", progress=False)
    assert len(trainings) == 2
    # masks drawn by another rule change no image: the clips' masks are made again, the images and CNN are not
    from wrenlib import images as rendering

    renderings, real_render = [], rendering.render_level_cache
    monkeypatch.setattr(rendering, "render_level_cache",
                        lambda *args, **kwargs: renderings.append(1) or real_render(*args, **kwargs))
    other_masks(monkeypatch)
    _, _, images = training.load_or_train_model("tiny", device="cpu", progress=False)
    assert images.surrogate.config.mask_floor_db == 20.0 and len(trainings) == 2 and not renderings


def test_standardise_centres_each_image_on_its_median_or_all_on_the_fixed_mean():
    """``per_image`` puts each image's own background level (its median) at 0, so a brighter or
    darker background changes nothing; ``fixed`` subtracts one mean; both divide by the std."""
    from wrenlib.model import Standardise

    torch.manual_seed(0)
    x = torch.rand(3, 1, 8, 8) + torch.tensor([0.0, 10.0, -3.0]).view(3, 1, 1, 1)
    per_image = Standardise(mean=5.0, std=2.0, per_image=True)
    out = per_image(x)
    assert all(float(out[i].median()) == 0.0 for i in range(3))
    torch.testing.assert_close(per_image(x + 7.0), out)  # the background level cancels
    torch.testing.assert_close(out * 2.0, x - x.flatten(1).median(dim=1).values.view(3, 1, 1, 1))
    fixed = Standardise(mean=5.0, std=2.0)
    torch.testing.assert_close(fixed(x) * 2.0 + 5.0, x)  # undone by the same mean and std


def test_set_standardisation_fixes_the_first_module_and_the_config_chooses_its_kind():
    """The mean and std measured on the training images are the ones the network applies (a std of
    0 is kept just above 0), and the config's ``standardisation`` says which kind: per image by
    default, since with one fixed mean a mixed-background training stayed at chance (chapter 03)."""
    assert ModelConfig().standardisation == "per_image"
    assert DialectCNN(ModelConfig(32, 64, conv_channels=(4, 8), hidden_units=(16,))).standardise.per_image
    model = DialectCNN(ModelConfig(32, 64, conv_channels=(4, 8), hidden_units=(16,), standardisation="fixed"))
    assert not model.standardise.per_image
    model.set_standardisation(3.0, 0.5)
    x = torch.rand(2, 1, 32, 64)
    torch.testing.assert_close(model.standardise(x) * 0.5 + 3.0, x)
    model.set_standardisation(0.0, 0.0)
    assert 0 < float(model.standardise.std) <= 1e-6 and torch.isfinite(model.standardise(x)).all()
    with pytest.raises(ValueError, match="standardisation"):
        ModelConfig(standardisation="none")


def test_the_smallest_images_its_pooling_allows_are_accepted_and_one_side_too_small_is_not():
    """Five poolings need 32 x 32 pixels (a 1 x 1 feature map): that size works, and an image
    too small in either side alone is refused, not run into a shape error later."""
    model = DialectCNN(ModelConfig(32, 32)).eval()
    assert model.config.feature_map_size == (1, 1) and model(torch.zeros(1, 1, 32, 32)).shape == (1, 2)
    for height, width in ((16, 64), (64, 16)):
        with pytest.raises(ValueError, match="at least 32 x 32"):
            ModelConfig(height, width)


def test_the_dense_layers_take_the_configs_dropout_and_number_of_classes():
    """A config's ``dropout`` is the one applied in training (0: a training pass is an evaluation
    pass) and its ``n_classes`` the number of outputs."""
    torch.manual_seed(0)
    model = DialectCNN(ModelConfig(32, 64, conv_channels=(4, 8), hidden_units=(16, 8), n_classes=3, dropout=0.0))
    x = torch.rand(4, 1, 32, 64)
    with torch.no_grad():
        evaluated = model.eval()(x)
        trained = model.train()(x)
    assert evaluated.shape == (4, 3)
    torch.testing.assert_close(trained, evaluated)
    assert [m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)] == [0.0, 0.0]


def test_latent_features_are_the_rectified_inputs_of_the_last_layer():
    """Chapter 09 embeds the penultimate layer's activations: after its ReLU (never negative), and
    exactly what the output layer reads."""
    torch.manual_seed(0)
    model = DialectCNN(ModelConfig(32, 64, conv_channels=(4, 8), hidden_units=(16, 8))).eval()
    x = torch.randn(5, 1, 32, 64)
    with torch.no_grad():
        latent = model.latent_features(x)
        assert latent.shape == (5, 8) and (latent >= 0).all()
        torch.testing.assert_close(model.classifier[-1](latent), model(x))


def test_the_last_conv_block_is_the_block_of_the_last_convolution():
    """Grad-CAM explains the last block's output: the one that holds the last convolution, with
    the last channel count at the final feature-map size."""
    config = ModelConfig(32, 64, conv_channels=(4, 8, 6), hidden_units=(16,))
    model = DialectCNN(config).eval()
    assert any(m is model.last_conv_layer for m in model.last_conv_block.modules())
    outputs = []
    handle = model.last_conv_block.register_forward_hook(lambda _m, _i, out: outputs.append(out))
    with torch.no_grad():
        model(torch.rand(2, 1, 32, 64))
    handle.remove()
    assert outputs[0].shape == (2, 6, *config.feature_map_size)


def test_body_then_head_is_the_whole_network_and_another_network_is_all_body(small_cnn):
    """Explainers that split a network at its dense layers must get the same outputs from the
    two halves, standardisation included; a network without those parts is not split."""
    from wrenlib.model import body_and_head

    small_cnn.set_standardisation(0.5, 0.2)
    x = torch.rand(3, 1, 32, 64) + 2.0
    with torch.no_grad():
        for network in (small_cnn, small_cnn.pool_first()):
            body, head = body_and_head(network)
            torch.testing.assert_close(head(body(x)), network(x))
    class Other(torch.nn.Module):  # a part of the same name is not enough
        def __init__(self):
            super().__init__()
            self.classifier = torch.nn.Linear(32 * 64, 2)

        def forward(self, x):
            return self.classifier(x.flatten(1))

    other = Other()
    body, head = body_and_head(other)
    assert body is other and isinstance(head, torch.nn.Identity)


def test_the_layer_table_lists_each_computing_layer_once_with_its_parameters():
    """One row per layer that computes (no containers), whose parameters add up to the network's."""
    model = DialectCNN(ModelConfig(32, 64, conv_channels=(4, 8), hidden_units=(16,)))
    table = layer_table(model)
    assert not {"Sequential", "DialectCNN"} & set(table["type"])
    assert table["parameters"].sum() == count_parameters(model)
    assert table.loc[table["type"] == "Conv2d", "parameters"].tolist() == [4 * 9 + 4, 8 * 4 * 9 + 8]


# ------------------------------------------------------------------------------------------
# Properties of training.py a mutation review found unguarded
# ------------------------------------------------------------------------------------------


def _small(**settings) -> ModelConfig:
    """A small network for the toy images: trains in a fraction of the paper layout's time."""
    return ModelConfig(32, 64, conv_channels=(4, 8), hidden_units=(16,), **settings)


@pytest.mark.parametrize("standardisation", ["per_image", "fixed"])
def test_fit_measures_the_standardisation_on_the_train_splits_pixels(standardisation):
    """The mean and std fit gives the model are those of the train split's pixels (less each
    image's median, the model's background level, for ``per_image``), over all their pixels: the
    validation and test clips play no part."""
    dataset = _toy_dataset()
    set_seed(0)
    model = DialectCNN(_small(standardisation=standardisation))
    fit(model, dataset, TrainingConfig(learning_rate=1e-12, max_epochs=1, patience=1, batch_size=8), progress=False)
    pixels = torch.from_numpy(dataset.images(dataset.split_indices("train"))).double()
    if standardisation == "per_image":
        pixels = pixels - pixels.flatten(1).median(dim=1).values.view(-1, 1, 1)  # as Standardise centres
    assert float(model.standardise.mean) == pytest.approx(float(pixels.mean()), rel=1e-5, abs=1e-7)
    assert float(model.standardise.std) == pytest.approx(float(pixels.std(unbiased=False)), rel=1e-5)
    other = torch.from_numpy(dataset.images(dataset.split_indices("validation"))).double()
    assert float(model.standardise.std) != pytest.approx(float(other.std(unbiased=False)), rel=1e-5)


def _validation_loss(model, dataset, indices) -> float:
    from scipy.special import logsumexp

    from wrenlib.training import predict_logits

    logits = predict_logits(model, dataset, indices).astype(np.float64)
    return float(np.mean(logsumexp(logits, axis=1) - logits[np.arange(len(indices)), dataset.labels[indices]]))


def test_the_learning_curves_are_each_splits_mean_loss_and_accuracy_over_its_clips():
    """An epoch's row holds the mean cross-entropy and the accuracy over the clips of each split,
    every clip counting once (a last, smaller batch weighs by its clips, not as a whole batch).
    With a learning rate of 1e-12 and no dropout, the epoch's training passes are the final model's."""
    from wrenlib.training import predict_logits

    dataset = _toy_dataset()
    set_seed(0)
    model = DialectCNN(_small(dropout=0.0))
    fit(model, dataset, TrainingConfig(learning_rate=1e-2, max_epochs=2, patience=2, batch_size=8), progress=False)
    history = fit(model, dataset, TrainingConfig(learning_rate=1e-12, max_epochs=1, patience=1, batch_size=7),
                  progress=False)  # 24 training clips: batches of 7, 7, 7 and 3
    for split in ("train", "validation"):
        indices = dataset.split_indices(split)
        right = predict_logits(model, dataset, indices).argmax(1) == dataset.labels[indices]
        assert right.mean() > 0.6 and history[f"{split}_accuracy"].iloc[0] == pytest.approx(right.mean())
        assert history[f"{split}_loss"].iloc[0] == pytest.approx(_validation_loss(model, dataset, indices), rel=1e-4)


def test_fit_keeps_the_best_epochs_weights_and_stops_patience_epochs_after_it():
    """With validation labels that contradict the training rule, the validation loss rises as the
    network learns: fit stops ``patience`` epochs after the best epoch and hands back that epoch's
    weights, not the last epoch's."""
    from dataclasses import replace

    from wrenlib.training import kept_epoch

    dataset = _toy_dataset()
    validation = dataset.split_indices("validation")
    labels = dataset.labels.copy()
    labels[validation] = 1 - labels[validation]
    contrary = replace(dataset, clips=dataset.clips.assign(label=labels))
    set_seed(0)
    model = DialectCNN(_small())
    config = TrainingConfig(learning_rate=1e-3, max_epochs=10, patience=2, batch_size=8)
    history = fit(model, contrary, config, progress=False)
    kept = kept_epoch(history)
    assert len(history) == kept + config.patience < config.max_epochs
    losses = history.set_index("epoch")["validation_loss"]
    assert _validation_loss(model, contrary, validation) == pytest.approx(losses[kept], rel=1e-5)
    assert losses[len(history)] > 1.02 * losses[kept]  # the last epoch's weights would tell


def test_fit_refuses_a_dataset_without_validation_clips():
    dataset = _toy_dataset()
    no_validation = SpectrogramDataset(dataset.levels, dataset.clips.assign(split=np.where(
        dataset.clips["split"] == "validation", "test", dataset.clips["split"])), dataset.backgrounds,
        dataset.front_end, None, with_masks=False)
    with pytest.raises(ValueError, match="both the train and the validation split"):
        fit(DialectCNN(_small()), no_validation, TrainingConfig(max_epochs=1), progress=False)


def test_fit_follows_its_configs_seed_learning_rate_and_weight_decay():
    """From the same initial weights, the batch order follows ``seed`` (shuffled anew by it), and
    the optimiser takes ``learning_rate`` and ``weight_decay``: each changes the trained weights."""
    dataset = _toy_dataset()

    def trained(**settings):
        set_seed(0)
        model = DialectCNN(_small(dropout=0.0))
        config = TrainingConfig(**{"learning_rate": 1e-3, "max_epochs": 1, "patience": 1, "batch_size": 8, **settings})
        fit(model, dataset, config, progress=False)
        return model.classifier[-1].weight.detach().clone()

    first = trained()
    assert torch.equal(trained(), first)
    for other in ({"seed": 1}, {"learning_rate": 1e-4}, {"weight_decay": 0.5}):
        assert not torch.equal(trained(**other), first), other


def test_every_training_epoch_runs_with_dropout_on():
    """fit's validation pass puts the model in eval mode; the next epoch's steps must train with
    dropout again."""
    modes = []
    set_seed(0)
    model = DialectCNN(_small())
    dropouts = [m for m in model.modules() if isinstance(m, torch.nn.Dropout)]
    assert dropouts
    for module in dropouts:
        module.register_forward_pre_hook(lambda m, _: modes.append(m.training) if torch.is_grad_enabled() else None)
    fit(model, _toy_dataset(), TrainingConfig(max_epochs=3, patience=3, batch_size=8), progress=False)
    assert len(modes) == 3 * 3 * len(dropouts) and all(modes)  # 3 epochs of 3 steps


def test_a_training_step_takes_its_own_batchs_gradient_and_its_loss_in_float32():
    """Gradients left from an earlier pass do not add to a step's own; under a 16-bit autocast the
    logits are 16-bit and the loss float32; a float32 step warns of nothing."""
    import warnings

    from wrenlib.training import training_step

    torch.manual_seed(0)
    model = DialectCNN(_small(dropout=0.0))
    images, labels = torch.rand(4, 1, 32, 64), torch.tensor([0, 1, 1, 0])
    torch.nn.functional.cross_entropy(model(images), labels).backward()
    expected = [p.grad.clone() for p in model.parameters()]
    for p in model.parameters():
        p.grad = torch.full_like(p, 5.0)  # left over
    optimiser = torch.optim.SGD(model.parameters(), lr=0.0)  # keeps the weights: the gradients stay to be read
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss, logits = training_step(model, optimiser, torch.nn.CrossEntropyLoss(), images, labels)
    assert loss.dtype == logits.dtype == torch.float32
    for got, want in zip((p.grad for p in model.parameters()), expected):
        torch.testing.assert_close(got, want)
    loss, logits = training_step(model, optimiser, torch.nn.CrossEntropyLoss(), images, labels, half=torch.bfloat16)
    assert logits.dtype == torch.bfloat16 and loss.dtype == torch.float32


def test_predict_answers_in_eval_mode_in_float32_with_a_column_per_class():
    """Whatever mode the model was left in (fit leaves it training), predictions are the eval
    pass's: repeatable, without dropout; float32 logits, one column per class, also for no clips."""
    from wrenlib.training import predict_logits

    dataset = _toy_dataset()
    set_seed(0)
    model = DialectCNN(_small(n_classes=3)).train()
    asked = dataset.split_indices("test")
    logits = predict_logits(model, dataset, asked)
    assert logits.dtype == np.float32 and logits.shape == (len(asked), 3)
    np.testing.assert_array_equal(predict_logits(model.train(), dataset, asked), logits)
    with torch.no_grad():
        expected = model.eval()(torch.from_numpy(dataset.images(asked))[:, None]).numpy()
    np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-6)
    assert predict_logits(model, dataset, []).shape == (0, 3) and predict(model, dataset, []).shape == (0, 3)
    assert predict_logits(model, dataset, []).dtype == np.float32


def test_training_settings_refuse_a_true_count_and_a_nan_learning_rate_and_key_precision_only_when_on(monkeypatch):
    """``True`` is no batch size, and a NaN learning rate is not above 0; a CUDA device under "off"
    trains in float32 and a device that is neither CPU nor CUDA under "native" too; a float32
    configuration keeps its cache key as it was, a 16-bit one names its type."""
    import contextlib

    from wrenlib import runtime
    from wrenlib.training import autocast_dtype, keyed_by_precision

    with pytest.raises(ValueError, match="batch_size"):
        TrainingConfig(batch_size=True)
    with pytest.raises(ValueError, match="learning_rate"):
        TrainingConfig(learning_rate=float("nan"))
    monkeypatch.setattr(runtime, "cpu_has_native_bfloat16", lambda: True)
    monkeypatch.setattr(torch.cuda, "device", lambda device: contextlib.nullcontext())
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    assert autocast_dtype("cuda", "off") is None and autocast_dtype("cuda", "gpu") == torch.bfloat16
    assert autocast_dtype("mps", "native") is None and autocast_dtype("cpu", "native") == torch.bfloat16
    key = {"model": {"n_classes": 2}}
    assert keyed_by_precision(key, "cpu", "off") == key
    assert keyed_by_precision(key, "cpu", "always") == {**key, "precision": "bfloat16"}


def test_early_stopping_counts_the_epochs_since_the_last_better_validation_loss(monkeypatch):
    """With the validation losses scripted epoch by epoch: a loss counts as better only when it
    is lower than the best by more than MIN_IMPROVEMENT (the same loss again, or one a little
    lower, is no better); a better one restarts the count; fit stops once ``patience`` epochs in a
    row were no better, and keeps the weights the best epoch ended with."""
    from wrenlib import training
    from wrenlib.training import MIN_IMPROVEMENT, kept_epoch

    dataset = _toy_dataset()
    truth = dataset.labels[dataset.split_indices("validation")]

    def run(losses, patience):
        weights = []

        def scripted(model, data, indices, device="cpu", batch_size=64):
            """Logits whose mean cross-entropy is this epoch's scripted loss."""
            weights.append(model.classifier[-1].weight.detach().clone())
            logits = np.zeros((len(indices), 2), np.float32)
            logits[np.arange(len(indices)), 1 - truth] = np.log(np.expm1(losses[len(weights) - 1]))
            return logits

        monkeypatch.setattr(training, "predict_logits", scripted)
        set_seed(0)
        model = DialectCNN(_small())
        config = TrainingConfig(max_epochs=len(losses), patience=patience, batch_size=8)
        history = fit(model, dataset, config, progress=False)
        np.testing.assert_allclose(history["validation_loss"], losses[:len(history)], rtol=1e-5)
        return history, model, weights

    history, model, weights = run([1.0, 0.9, 0.95, 0.8, 0.85, 0.9, 0.7, 0.6], patience=2)
    assert len(history) == 6 and kept_epoch(history) == 4
    assert torch.equal(model.classifier[-1].weight, weights[3]) and not torch.equal(weights[3], weights[5])
    history, _, _ = run([1.0, 1.0, 1.0, 0.5], patience=2)  # the same loss is no better
    assert len(history) == 3 and kept_epoch(history) == 1
    history, _, _ = run([1.0, 1.0 - MIN_IMPROVEMENT / 2, 1.0 - 0.9 * MIN_IMPROVEMENT, 0.5], patience=2)
    assert len(history) == 3 and kept_epoch(history) == 1


_RAN: list[str] = []


def _ran(note: str) -> str:
    _RAN.append(note)
    return note


class _RunsCodeWhenLoaded:
    """What a booby-trapped checkpoint may hold: unpickling it calls a function of its choice."""

    def __reduce__(self):
        return (_ran, ("code ran",))


def test_checkpoints_run_no_code_name_a_setting_only_they_have_and_a_failed_save_keeps_the_old_one(
        tmp_path, monkeypatch):
    """A checkpoint holding anything but tensors and plain data is refused without running it
    (weights_only); a setting the checkpoint has but the caller's configuration lacks is named;
    a save that fails midway leaves the checkpoint that was there and no temporary file."""
    from pathlib import Path

    config = {"model": _small().to_dict(), "data": {"seed": 0}}
    path = save_checkpoint(tmp_path / "m.pt", DialectCNN(_small()), config)
    payload = torch.load(path, weights_only=True)
    torch.save({**payload, "extra": _RunsCodeWhenLoaded()}, tmp_path / "trap.pt")
    with pytest.raises(ValueError, match="not a wrenlib checkpoint"):
        load_checkpoint(tmp_path / "trap.pt")
    assert _RAN == []
    (tmp_path / "trap.pt").unlink()

    with pytest.raises(CheckpointMismatch, match="data.extra: checkpoint has 1, expected '<missing>'"):
        load_checkpoint(save_checkpoint(tmp_path / "more.pt", DialectCNN(_small()),
                                        {**config, "data": {"seed": 0, "extra": 1}}), config)
    (tmp_path / "more.pt").unlink()

    before = path.read_bytes()

    def disk_full(obj, f, *args, **kwargs):
        Path(f).write_bytes(b"half a checkpoint")
        raise OSError("No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(OSError, match="No space"):
        save_checkpoint(path, DialectCNN(_small()), {**config, "data": {"seed": 1}})
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["m.pt"]


def test_a_damaged_cached_checkpoint_is_trained_again_with_the_configs_number_of_classes(isolated_artifacts):
    """load_or_train_on takes a checkpoint it cannot read for one to make again (as one trained
    under other settings), and trains the number of classes its configuration names."""
    from wrenlib.cache import profile_dir
    from wrenlib.training import load_or_train_on

    dataset = _toy_dataset()
    path = profile_dir("quick") / "models" / "toy.pt"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"")  # a write cut short
    described = {"model": ModelConfig(32, 64, n_classes=3).to_dict(), "data": "toy"}
    config = TrainingConfig(max_epochs=1, patience=1, batch_size=8)
    model, history = load_or_train_on(dataset, "quick", "toy", described, config, "cpu", progress=False)
    assert model.config.n_classes == 3 and model(torch.zeros(1, 1, 32, 64)).shape == (1, 3) and len(history) == 1
    loaded, _, _ = load_checkpoint(path, described)
    assert torch.equal(loaded.classifier[-1].weight, model.classifier[-1].weight)


def test_train_model_draws_the_initial_weights_from_the_config_seed_and_the_profile_sets_the_epochs(monkeypatch):
    """The weights fit starts from follow ``config.seed`` (not only the batch order); a profile's
    training runs its own epochs and patience, with the seed it is given."""
    from wrenlib import training
    from wrenlib.profiles import get_profile

    monkeypatch.setattr(training, "fit", lambda *args, **kwargs: pd.DataFrame())  # the weights as drawn
    dataset = _toy_dataset()

    def initial(seed):
        model, _ = training.train_model(dataset, TrainingConfig(seed=seed), device="cpu", progress=False)
        return model.classifier[-1].weight.detach().clone()

    assert torch.equal(initial(5), initial(5)) and not torch.equal(initial(5), initial(6))
    for profile in ("quick", "full"):
        sizes, config = get_profile(profile), training.training_config_for_profile(profile, seed=7)
        assert (config.max_epochs, config.patience, config.seed) == (sizes.max_epochs, sizes.patience, 7)


def test_accuracy_intervals_follow_their_confidence_and_seed_and_refuse_what_is_not_comparable():
    """A 50 % interval lies inside the 95 % one, with or without groups; the bootstrap follows its
    seed; every clip wrong is an accuracy of 0 with Wilson's interval over the groups; no clips,
    or a second model's answers on other clips, are refused; one group gives no interval."""
    from wrenlib.training import accuracy_difference_with_interval, accuracy_with_interval

    rng = np.random.default_rng(0)
    birds = np.repeat(np.arange(24), 6)
    right = rng.random(144) < np.repeat(rng.random(24), 6)
    for groups in (None, birds):
        accuracy, low, high = accuracy_with_interval(right, groups)
        _, narrow_low, narrow_high = accuracy_with_interval(right, groups, confidence=0.5)
        assert low < narrow_low <= accuracy <= narrow_high < high, groups
    assert accuracy_with_interval(right, birds, seed=1) != accuracy_with_interval(right, birds, seed=0)
    assert accuracy_with_interval(np.zeros(144, bool), birds) == (0.0, 0.0, accuracy_with_interval(np.zeros(24, bool))[2])
    with pytest.raises(ValueError, match="no clips"):
        accuracy_with_interval(np.array([], bool))

    other = right & (rng.random(144) < 0.8)
    difference, low, high = accuracy_difference_with_interval(right, other, birds)
    _, narrow_low, narrow_high = accuracy_difference_with_interval(right, other, birds, confidence=0.5)
    assert low < narrow_low <= difference <= narrow_high < high
    for second in (other, right):  # one bird: no interval, also where the two models agree on it
        assert np.isnan(accuracy_difference_with_interval(right[:6], second[:6], birds[:6])[1])
    for first, second, groups in ((right[:0], other[:0], birds[:0]), (right, other, birds[:10])):
        with pytest.raises(ValueError, match="the same clips"):
            accuracy_difference_with_interval(first, second, groups)


def test_the_snr_sweep_scores_the_test_birds_on_the_background_asked_for(monkeypatch, isolated_artifacts):
    """The sweep scores the test split's clips (not the training birds'), drawn on ``background``,
    with an interval over birds (not Wilson's over the clips)."""
    from wrenlib import profiles, training
    from wrenlib.dataset import surrogate_config_for_profile
    from wrenlib.surrogate import build_population

    tiny = profiles.PROFILES["quick"].with_overrides(name="tiny", individuals_per_dialect=6, clips_per_individual=2,
                                                     image_height_px=32, image_width_px=64)
    monkeypatch.setitem(profiles.PROFILES, "tiny", tiny)
    backgrounds, real_predict = [], training.predict
    monkeypatch.setattr(training, "predict", lambda model, data, *args: (
        backgrounds.append(set(data.backgrounds)), real_predict(model, data, *args))[1])
    set_seed(0)
    sweep = training.accuracy_against_snr(DialectCNN(ModelConfig(32, 64)).eval(), "tiny", [0.0], n_jobs=1,
                                          background="white")
    row = sweep.iloc[0]
    test_birds = sum(bird.split == "test" for bird in build_population(surrogate_config_for_profile("tiny", 0)).individuals)
    assert row["birds"] == test_birds and row["clips"] == 2 * test_birds and backgrounds == [{"white"}]
    clips_alone = training.accuracy_with_interval(np.arange(row["clips"]) < round(row["accuracy"] * row["clips"]))
    assert (row["ci_low"], row["ci_high"]) != pytest.approx(clips_alone[1:])


def test_a_model_from_other_initial_weights_is_kept_beside_the_seeds_own(isolated_artifacts, monkeypatch):
    """``init_seed`` trains on the same data from other weights into a checkpoint of its own: asking
    for the two models in turn trains each once, neither replacing the other."""
    from wrenlib import profiles, training

    monkeypatch.setitem(profiles.PROFILES, "tiny", profiles.PROFILES["quick"].with_overrides(
        name="tiny", individuals_per_dialect=5, clips_per_individual=4, image_height_px=32, image_width_px=64))
    seeds = []
    monkeypatch.setattr(training, "train_model", lambda dataset, config, *args, **kwargs: (
        seeds.append(config.seed), (DialectCNN(ModelConfig(32, 64)).eval(), pd.DataFrame({"epoch": [1]})))[1])
    for init_seed in (None, 1, None, 1):
        training.load_or_train_model("tiny", device="cpu", progress=False, init_seed=init_seed)
    assert seeds == [0, 1]


def test_model_and_data_takes_both_or_neither(isolated_artifacts, monkeypatch):
    """A model without its dataset, or a dataset without its model, is an error naming the caller,
    not a silent swap for the profile's CNN."""
    from wrenlib import training

    monkeypatch.setattr(training, "load_or_train_model", lambda *args, **kwargs: pytest.fail("the profile's CNN"))
    for given in ({"model": DialectCNN(_small())}, {"dataset": _toy_dataset()}):
        with pytest.raises(ValueError, match="chapter 99: give both the model and its dataset"):
            training.model_and_data("quick", caller="chapter 99", **given)


def test_a_checkpoint_missing_a_part_or_with_weights_that_do_not_fit_is_refused_by_name(tmp_path):
    """A torch file with the configuration but without its hash raised a bare KeyError, which the
    book's loader does not catch (it retrains on ValueError); weights that do not fit the
    configuration raised torch's RuntimeError. Both are ValueErrors naming the file and what is
    wrong, and a good checkpoint still loads."""
    import json

    config = {"model": _small().to_dict(), "data": {"seed": 0}}
    path = save_checkpoint(tmp_path / "m.pt", DialectCNN(_small()), config)
    payload = torch.load(path, weights_only=True)
    torch.save({key: value for key, value in payload.items() if key != "config_hash"}, tmp_path / "nohash.pt")
    with pytest.raises(ValueError, match=r"nohash\.pt: not a wrenlib checkpoint .*: no config_hash"):
        load_checkpoint(tmp_path / "nohash.pt", config)
    torch.save([payload], tmp_path / "list.pt")  # tensors and plain data, but not the dict we write
    with pytest.raises(ValueError, match=r"list\.pt: not a wrenlib checkpoint"):
        load_checkpoint(tmp_path / "list.pt")
    other = DialectCNN(ModelConfig(32, 64, conv_channels=(2, 4), hidden_units=(16,))).state_dict()
    torch.save({**payload, "state_dict": other}, tmp_path / "weights.pt")
    with pytest.raises(ValueError, match=r"weights\.pt: a damaged wrenlib checkpoint: its model settings and "
                                         r"weights disagree \(RuntimeError: "):
        load_checkpoint(tmp_path / "weights.pt", config)
    torch.save({**payload, "history_json": "{not json"}, tmp_path / "curves.pt")
    with pytest.raises(ValueError, match=r"curves\.pt: a damaged wrenlib checkpoint: its learning curves"):
        load_checkpoint(tmp_path / "curves.pt", config)
    model, loaded, _ = load_checkpoint(path, config)
    assert loaded == json.loads(payload["config_json"]) and isinstance(model, DialectCNN)
