"""Training and evaluating the dialect CNN (chapter 03).

Adam on cross-entropy with early stopping on the validation split; the best validation epoch's
weights are kept. Batches are built straight from the cached uint8 images (background applied
per batch), so the loader costs little next to a training step. Checkpoints are written
atomically with their configuration and its hash, and loaded with ``weights_only=True``.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd
import torch
from scipy.special import logsumexp
from torch import nn
from tqdm.auto import tqdm

from .runtime import map_batches, settings_errors, show_progress, torch_threads_for_run

from .cache import config_hash
from .images import SpectrogramDataset
from .model import DialectCNN, ModelConfig, fast_forward
from .profiles import MIXED_PRECISION, get_profile


@dataclass(frozen=True)
class TrainingConfig:
    """How the network is trained (stated in chapter 03)."""

    learning_rate: float = 3e-4
    batch_size: int = 32
    max_epochs: int = 20
    patience: int = 4  # stop after this many epochs without a better validation loss
    weight_decay: float = 0.0
    seed: int = 0
    # "off": float32 throughout; "gpu": the forward and backward passes in 16-bit floats under
    # torch.autocast on a CUDA device (bfloat16 where the GPU has it, else float16 with a gradient
    # scaler), float32 on a CPU; "native": also on a CPU that computes bfloat16 in hardware
    # (wrenlib.runtime.cpu_has_native_bfloat16), float32 on others; "always": bfloat16 on any CPU
    # (for tests)
    mixed_precision: str = "off"

    def __post_init__(self) -> None:
        if self.mixed_precision not in MIXED_PRECISION:
            raise ValueError(f"mixed_precision must be one of {', '.join(MIXED_PRECISION)}, "
                             f"got {self.mixed_precision!r}")
        wrong = settings_errors(whole={"batch_size": self.batch_size, "max_epochs": self.max_epochs,
                                       "patience": self.patience}, positive={"learning_rate": self.learning_rate})
        if wrong:
            raise ValueError("; ".join(wrong))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# What fit() has trained in this process, one entry per training: a preparation of ``wrenlib
# execute`` reports its own (wrenlib.book), and the Performance page counts their arithmetic
TRAINED: list[dict[str, Any]] = []


def autocast_dtype(device: torch.device | str, mixed_precision: str) -> torch.dtype | None:
    """The 16-bit type a training step runs in under ``mixed_precision`` on ``device`` (None:
    float32): bfloat16 on a CUDA GPU that has it, float16 on an older one; bfloat16 on a CPU
    under "always", and under "native" where the CPU computes it in hardware."""
    from .runtime import cpu_has_native_bfloat16

    device = torch.device(device)
    if device.type == "cuda":
        if mixed_precision == "off":
            return None
        # bfloat16 where this GPU computes it (compute capability 8 and later), not where torch
        # would only emulate it (a T4 or V100: float16 with a loss scaler is what runs fast there)
        with torch.cuda.device(device):
            native = torch.cuda.is_bf16_supported(including_emulation=False)
        return torch.bfloat16 if native else torch.float16
    if mixed_precision == "always" or (mixed_precision == "native" and device.type == "cpu"
                                       and cpu_has_native_bfloat16()):
        return torch.bfloat16
    return None


def precision_name(half: torch.dtype | None) -> str:
    """How records name the type a training step ran in: "bfloat16", "float16" or "float32"."""
    return str(half or torch.float32).replace("torch.", "")


def keyed_by_precision(key: dict[str, Any], device: torch.device | str, mixed_precision: str) -> dict[str, Any]:
    """``key`` (a cache's configuration) with the type that ``mixed_precision`` resolves to on
    ``device`` under "precision", which differs between machines for "native"; ``key`` as it is
    for "off", so that float32 caches keep their keys."""
    if mixed_precision == "off":
        return key
    return {**key, "precision": precision_name(autocast_dtype(device, mixed_precision))}


def gradient_scaler(half: torch.dtype | None, device: torch.device | str) -> "torch.amp.GradScaler | None":
    """The loss scaler a float16 step needs (float16's small range; bfloat16's needs none)."""
    return torch.amp.GradScaler(torch.device(device).type) if half == torch.float16 else None


def training_step(network: nn.Module, optimiser: torch.optim.Optimizer, loss_function: nn.Module,
                  images: torch.Tensor, labels: torch.Tensor, half: torch.dtype | None = None,
                  scaler: "torch.amp.GradScaler | None" = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One step of :func:`fit` (and of :func:`benchmark_training`): the forward pass under
    ``torch.autocast`` in ``half`` (None: float32), the loss in float32, the backward pass (scaled
    by ``scaler`` for float16) and Adam's update. Returns the loss and the logits."""
    optimiser.zero_grad()
    with torch.autocast(images.device.type, dtype=half or torch.float32, enabled=half is not None):
        logits = network(images)
    loss = loss_function(logits.float(), labels)
    if scaler is None:
        loss.backward()
        optimiser.step()
    else:
        scaler.scale(loss).backward()
        scaler.step(optimiser)
        scaler.update()
    return loss, logits


def batches(dataset: SpectrogramDataset, indices: np.ndarray, batch_size: int,
            shuffle: bool = False, generator: np.random.Generator | None = None,
            device: torch.device | str = "cpu") -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(images, labels) batches from the cached uint8 levels, backgrounds applied per batch."""
    order = np.array(indices)
    if shuffle:
        order = (generator or np.random.default_rng()).permutation(order)
    labels = torch.as_tensor(np.array(dataset.labels), dtype=torch.long)
    white = torch.as_tensor(np.asarray(dataset.backgrounds) == "white")
    for first in range(0, len(order), batch_size):
        chosen = np.sort(order[first:first + batch_size]) if not shuffle else order[first:first + batch_size]
        # the 8-bit levels cross to the device and become floats there: torch converts a CPU-to-GPU
        # copy's type on the CPU, which at 480 x 960 took about half of a GPU training step's time
        # (chapter 03's loader share), with four times the bytes to copy
        # non_blocking: a copy to a GPU returns once the driver has taken the bytes, without waiting
        # for the GPU to finish its queued work, so the next batch is built while this one trains
        # (safe from pageable memory in this direction; on a CPU nothing changes)
        levels = torch.from_numpy(np.asarray(dataset.levels[chosen])).to(device, non_blocking=True).to(torch.float32) / 255
        flip = white[chosen].to(device, non_blocking=True)[:, None, None]
        images = torch.where(flip, 1 - levels, levels)[:, None]
        yield images, labels[chosen].to(device, non_blocking=True)


def image_statistics(dataset: SpectrogramDataset, indices: np.ndarray,
                     per_image: bool = False, device: torch.device | str = "cpu") -> tuple[float, float]:
    """Mean and standard deviation of the pixels of the given images (for the standardisation),
    computed on ``device``; with ``per_image``, of the pixels minus each image's median (its
    background level)."""
    total, total_sq, count = 0.0, 0.0, 0
    for images, _ in batches(dataset, indices, 64, device=device):
        if per_image:
            images = images - images.flatten(1).median(dim=1).values.view(-1, 1, 1, 1)
        total += float(images.sum())
        total_sq += float(images.square().sum())
        count += images.numel()
    mean = total / count
    return mean, float(np.sqrt(max(total_sq / count - mean**2, 1e-12)))


def predict(model: nn.Module, dataset: SpectrogramDataset, indices: np.ndarray,
            device: torch.device | str = "cpu", batch_size: int = 64) -> np.ndarray:
    """Class probabilities (N, 2) of the given clips, in the order of ``indices``."""
    logits = predict_logits(model, dataset, indices, device, batch_size)
    return torch.softmax(torch.from_numpy(logits), dim=1).numpy()


def predict_logits(model: nn.Module, dataset: SpectrogramDataset, indices: np.ndarray,
                   device: torch.device | str = "cpu", batch_size: int = 64) -> np.ndarray:
    """The network's outputs before the softmax (N, classes), float32, in the order of ``indices``."""
    model.eval()
    network = fast_forward(model)  # the same outputs, computed faster
    indices = np.asarray(indices, dtype=np.int64).ravel()
    out = []
    with torch.no_grad():
        for images, _ in batches(dataset, indices, batch_size, device=device):
            out.append(network(images).float().cpu().numpy())
    if not out:
        return np.zeros((0, getattr(getattr(model, "config", None), "n_classes", 2)), dtype=np.float32)
    # batches() reads each batch's clips in sorted order (memory-mapped levels): put rows back
    order = np.concatenate([np.argsort(indices[first:first + batch_size], kind="stable") + first
                            for first in range(0, len(indices), batch_size)])
    logits = np.empty((len(indices), out[0].shape[1]), dtype=out[0].dtype)
    logits[order] = np.concatenate(out)
    return logits


MIN_IMPROVEMENT = 1e-4  # how much lower a validation loss must be to count as better (fit)


def kept_epoch(history: pd.DataFrame) -> int:
    """The epoch whose weights :func:`fit` kept, from its learning curves: the last one whose
    validation loss beat the best before it by :data:`MIN_IMPROVEMENT`."""
    best_loss, kept = float("inf"), 0
    for epoch, loss in zip(history["epoch"], history["validation_loss"]):
        if loss < best_loss - MIN_IMPROVEMENT:
            best_loss, kept = loss, int(epoch)
    return kept


def fit(model: DialectCNN, dataset: SpectrogramDataset, config: TrainingConfig = TrainingConfig(),
        device: torch.device | str = "cpu", progress: bool = True) -> pd.DataFrame:
    """Train on the train split, stop early on the validation loss, keep the best weights.

    Returns the learning curves: one row per epoch with loss and accuracy on both splits. The
    steps run the model's pool-first twin (:meth:`~wrenlib.model.DialectCNN.pool_first`): the
    same gradients, so the same weights, faster on a CPU.
    """
    train, validation = dataset.split_indices("train"), dataset.split_indices("validation")
    if len(train) == 0 or len(validation) == 0:
        raise ValueError("the dataset needs clips in both the train and the validation split")
    mean, std = image_statistics(dataset, train, per_image=model.config.standardisation == "per_image",
                                 device=device)
    model.set_standardisation(mean, std)
    model.to(device)
    network = fast_forward(model)
    optimiser = torch.optim.Adam(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    loss_function = nn.CrossEntropyLoss()
    half = autocast_dtype(device, config.mixed_precision)
    scaler = gradient_scaler(half, device)
    generator = np.random.default_rng([config.seed, 11])
    history, best_loss, best_state, waited = [], float("inf"), None, 0
    bar = tqdm(range(1, config.max_epochs + 1), desc="training", unit="epoch", disable=not show_progress(progress))
    for epoch in bar:
        model.train()
        # the steps' losses and counts of correct clips stay on the device until the epoch ends:
        # reading them every step would make the CPU wait for each step on a GPU before building
        # the next batch (then summed in Python's floats, in order: the sums as before)
        losses, correct_counts, sizes = [], [], []
        for images, labels in batches(dataset, train, config.batch_size, shuffle=True,
                                      generator=generator, device=device):
            loss, logits = training_step(network, optimiser, loss_function, images, labels, half, scaler)
            losses.append(loss.detach())
            correct_counts.append((logits.argmax(1) == labels).sum())
            sizes.append(len(labels))
        seen = sum(sizes)
        loss_sum = sum(value * size for value, size in zip(torch.stack(losses).tolist(), sizes))
        correct = int(torch.stack(correct_counts).sum())
        bar.set_postfix(loss=f"{loss_sum / seen:.3f}")
        logits = predict_logits(model, dataset, validation, device)
        validation_labels = dataset.labels[validation]
        # the cross-entropy of the training loss, uncapped (a confidently wrong clip counts in full),
        # from the logits in float64: log(sum(exp)) less the true class's logit
        wide = logits.astype(np.float64)
        validation_loss = float(np.mean(logsumexp(wide, axis=1) - wide[np.arange(len(wide)), validation_labels]))
        history.append({"epoch": epoch, "train_loss": loss_sum / seen, "train_accuracy": correct / seen,
                        "validation_loss": validation_loss,
                        "validation_accuracy": float(np.mean(logits.argmax(1) == validation_labels))})
        if validation_loss < best_loss - MIN_IMPROVEMENT:
            best_loss, waited = validation_loss, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            waited += 1
            if waited >= config.patience:
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    TRAINED.append({"model": model.config.to_dict(), "epochs": len(history), "train_images": len(train),
                    "validation_images": len(validation), "precision": precision_name(half)})
    return pd.DataFrame(history)


# ------------------------------------------------------------------------------------------
# Checkpoints
# ------------------------------------------------------------------------------------------


class CheckpointMismatch(ValueError):
    """A checkpoint trained under another configuration than the one asked for."""


def save_checkpoint(path: Path | str, model: DialectCNN, config: dict[str, Any],
                    history: pd.DataFrame | None = None) -> Path:
    """Write weights, configuration, its hash and the learning curves atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "state_dict": model.state_dict(),
        "config_json": json.dumps(config, sort_keys=True, default=str),
        "config_hash": config_hash(config),
        "history_json": history.to_json(orient="records") if history is not None else "[]",
    }
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    os.close(handle)
    try:
        torch.save(payload, temporary)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    return path


def _differences(expected: dict[str, Any], found: dict[str, Any], prefix: str = "") -> list[str]:
    lines = []
    for key in sorted(set(expected) | set(found)):
        a, b = expected.get(key, "<missing>"), found.get(key, "<missing>")
        if isinstance(a, dict) and isinstance(b, dict):
            lines += _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            lines.append(f"{prefix}{key}: checkpoint has {b!r}, expected {a!r}")
    return lines


#: What :func:`save_checkpoint` writes and :func:`load_checkpoint` needs.
CHECKPOINT_KEYS = ("state_dict", "config_json", "config_hash", "history_json")


def load_checkpoint(path: Path | str, expected: dict[str, Any] | None = None,
                    device: torch.device | str = "cpu") -> tuple[DialectCNN, dict[str, Any], pd.DataFrame]:
    """Load a checkpoint (``weights_only=True``); refuse one whose configuration differs from
    ``expected``, saying what differs."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint")
    # torch's own message would advise loading without weights_only, which runs the file's code
    try:
        payload = torch.load(path, map_location=device, weights_only=True)
    except (pickle.UnpicklingError, EOFError):
        raise ValueError(f"{path}: not a wrenlib checkpoint (empty, damaged, or not a file of torch tensors "
                         "that `wrenlib train` or the book wrote)") from None
    except Exception as error:  # a readable file that fails for another reason (a device, the disk): say which
        first_line = (str(error).strip().splitlines() or [""])[0]
        raise ValueError(f"{path}: the checkpoint could not be loaded ({type(error).__name__}: {first_line})") from None
    missing = [key for key in CHECKPOINT_KEYS if not isinstance(payload, dict) or key not in payload]
    try:
        config = json.loads(payload["config_json"])
        if missing or not isinstance(config, dict) or "model" not in config:
            raise KeyError(missing)
    except Exception:
        raise ValueError(f"{path}: not a wrenlib checkpoint (a torch file without the configuration that "
                         f"`wrenlib train` and the book write{': no ' + ', '.join(missing) if missing else ''})"
                         ) from None
    if expected is not None and payload["config_hash"] != config_hash(expected):
        expected_plain = json.loads(json.dumps(expected, default=str))
        details = "; ".join(_differences(expected_plain, config)) or "hash differs"
        raise CheckpointMismatch(f"{path}: trained with another configuration: {details}")
    def damaged(what: str, error: Exception) -> ValueError:
        first_line = (str(error).strip().splitlines() or [""])[0]
        return ValueError(f"{path}: a damaged wrenlib checkpoint: {what} ({type(error).__name__}: {first_line})")

    try:
        model = DialectCNN(ModelConfig.from_dict(config["model"]))
        model.load_state_dict(payload["state_dict"])
    except Exception as error:  # settings of another version, or weights of another shape
        raise damaged("its model settings and weights disagree", error) from None
    try:
        history = (pd.read_json(io.StringIO(payload["history_json"])) if payload["history_json"] != "[]"
                   else pd.DataFrame())
    except Exception as error:
        raise damaged("its learning curves cannot be read", error) from None
    return model.to(device).eval(), config, history


# ------------------------------------------------------------------------------------------
# The profile's models, trained once and cached
# ------------------------------------------------------------------------------------------


def training_config_for_profile(profile: str, seed: int = 0) -> TrainingConfig:
    """Training settings of a profile (the same optimiser everywhere; epochs differ)."""
    sizes = get_profile(profile)
    return TrainingConfig(learning_rate=1e-3, batch_size=32, max_epochs=sizes.max_epochs,
                          patience=sizes.patience, seed=seed, mixed_precision=sizes.mixed_precision)


def train_model(dataset: SpectrogramDataset, config: TrainingConfig, n_classes: int = 2,
                device: torch.device | str | None = None, progress: bool = True
                ) -> tuple[DialectCNN, pd.DataFrame]:
    """A new paper CNN for the dataset's image size, its weights drawn by ``config.seed``, trained
    by :func:`fit`: what chapter 03, chapter 12 and ``wrenlib train`` run.
    Returns the model (in eval mode) and its learning curves."""
    from .runtime import choose_device, set_seed

    set_seed(config.seed)
    model = DialectCNN(ModelConfig(*dataset.front_end.image_size, n_classes=n_classes))
    history = fit(model, dataset, config, device or choose_device(), progress)
    return model.eval(), history


def load_or_train_model(
    profile: str,
    background: str = "mixed",
    seed: int = 0,
    device: torch.device | str | None = None,
    progress: bool = True,
    init_seed: int | None = None,
) -> tuple[DialectCNN, pd.DataFrame, SpectrogramDataset]:
    """The profile's CNN trained on the given background set: from the cache, or trained now.

    ``seed`` fixes the data (the surrogate clips and their split) and, unless ``init_seed`` is
    given, the training too (initial weights, batch order, dropout). ``init_seed`` trains another
    model on the *same* data from other initial weights (the seed-stability check of chapter 10).
    Returns the model (in eval mode), its learning curves and the image dataset it was trained on.
    """
    from .images import load_spectrogram_dataset
    from .runtime import choose_device

    device = device or choose_device()
    dataset = load_spectrogram_dataset(profile, background=background, seed=seed)
    model_config = ModelConfig(*dataset.front_end.image_size)
    init_seed = seed if init_seed is None else int(init_seed)
    training_config = training_config_for_profile(profile, init_seed)
    config = {"model": model_config.to_dict(), "training": training_config.to_dict(),
              "data": {"surrogate": dataset.surrogate.config.image_key() if dataset.surrogate else None,
                       "front_end": dataset.front_end.to_dict(), "background": background, "seed": seed}}
    name = f"cnn_{background}_seed{seed}" + ("" if init_seed == seed else f"_init{init_seed}")
    model, history = load_or_train_on(dataset, profile, name, config, training_config, device, progress)
    return model, history, dataset


def model_and_data(profile: str, seed: int = 0, device: torch.device | str | None = None,
                   model: nn.Module | None = None, dataset: SpectrogramDataset | None = None,
                   caller: str = "model_and_data") -> tuple[nn.Module, SpectrogramDataset]:
    """``model`` and ``dataset`` when both are given (a chapter's own), else the profile's
    mixed-set CNN and its images (chapter 03, from the cache or trained now): what the map
    preparations explain (chapters 08 and 10). Giving one without the other is an error that
    names ``caller``."""
    if (model is None) != (dataset is None):
        raise ValueError(f"{caller}: give both the model and its dataset, or neither (the profile's mixed-set CNN)")
    if model is None:
        model, _, dataset = load_or_train_model(profile, background="mixed", seed=seed, device=device, progress=False)
    return model, dataset


def load_or_train_on(dataset: SpectrogramDataset, profile: str, name: str, config: dict[str, Any],
                     training_config: TrainingConfig, device: torch.device | str | None = None,
                     progress: bool = True) -> tuple[DialectCNN, pd.DataFrame]:
    """The model ``artifacts/<profile>/models/<name>.pt`` if it was trained under ``config``,
    else a new one trained on ``dataset`` by :func:`train_model` and saved there (chapters 03,
    10 and 11). ``config`` describes the data, model and training; a checkpoint under another
    configuration is trained again, never silently reused. A precision that depends on the
    machine ("native": bfloat16 on a GPU or a CPU that computes it, float32 elsewhere) is part of
    the configuration as the type it resolves to here."""
    from .cache import note_made, profile_dir
    from .runtime import choose_device

    device = device or choose_device()
    config = keyed_by_precision(config, device, training_config.mixed_precision)
    path = profile_dir(profile) / "models" / f"{name}.pt"
    if path.is_file():
        try:
            model, _, history = load_checkpoint(path, config, device)
            return model, history
        except (CheckpointMismatch, ValueError):
            pass  # trained under other settings: train again below
    model, history = train_model(dataset, training_config, config["model"]["n_classes"], device, progress)
    save_checkpoint(path, model, config, history)
    note_made(f"the CNN {name}")
    return model, history


def _per_group(groups: np.ndarray, n_clips: int, *counted: np.ndarray) -> tuple[np.ndarray, ...]:
    """Each group's number of clips and the per-group sums of each of ``counted`` (one value per clip)."""
    groups = np.asarray(groups).ravel()
    if len(groups) != n_clips:
        raise ValueError(f"groups must name the group of each of the {n_clips} clips, got {len(groups)}")
    _, group = np.unique(groups, return_inverse=True)
    return (np.bincount(group).astype(np.float64),
            *(np.bincount(group, weights=np.asarray(values, dtype=np.float64)) for values in counted))


def accuracy_with_interval(correct: np.ndarray, groups: np.ndarray | None = None, confidence: float = 0.95,
                           n_boot: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """Accuracy and its ``confidence`` interval.

    Without ``groups``, Wilson's interval (scipy's binomial test), which treats every clip as
    independent. With ``groups`` (one label per clip: the bird, or the recording) the clips of a
    group share its voice, site and microphone, so the groups are the independent units: the
    pooled accuracy is the groups' right answers over their clips, and its interval a bootstrap
    that resamples whole groups (:func:`wrenlib.metrics.ratio_of_means_with_interval`), wider
    where a group's clips succeed or fail together. Where every clip is right (or every one wrong)
    there is nothing to resample, and Wilson's interval over the groups, each one trial, is given.
    Fewer than two groups: no interval (NaN)."""
    from scipy import stats

    from .metrics import ratio_of_means_with_interval

    correct = np.asarray(correct, dtype=bool).ravel()
    if not len(correct):
        raise ValueError("no clips to score")
    accuracy = float(correct.mean())
    if groups is None:
        interval = stats.binomtest(int(correct.sum()), len(correct)).proportion_ci(confidence_level=confidence,
                                                                                   method="wilson")
        return accuracy, float(interval.low), float(interval.high)
    size, right = _per_group(groups, len(correct), correct)
    if len(size) < 2:
        return accuracy, float("nan"), float("nan")
    if right.sum() in (0, size.sum()):  # every resample scores the same: Wilson's over the groups, each one trial
        interval = stats.binomtest(int(round(accuracy)) * len(size), len(size)).proportion_ci(
            confidence_level=confidence, method="wilson")
        return accuracy, float(interval.low), float(interval.high)
    _, low, high = ratio_of_means_with_interval(right, size, confidence, n_boot, seed)
    return accuracy, low, high


def accuracy_difference_with_interval(first: np.ndarray, second: np.ndarray, groups: np.ndarray,
                                      confidence: float = 0.95, n_boot: int = 2000,
                                      seed: int = 0) -> tuple[float, float, float]:
    """The accuracy of ``first`` minus that of ``second`` (two models' right answers on the same
    clips) and its ``confidence`` interval, from a bootstrap that resamples whole ``groups`` (each
    clip's bird or recording; :func:`wrenlib.metrics.ratio_of_means_with_interval` of each
    group's gain over its clips): the pairs stay together, so what the two models share (the hard
    birds) cancels. Where the two models agree on every group's count, the interval is the
    difference itself."""
    from .metrics import ratio_of_means_with_interval

    first, second = np.asarray(first, dtype=bool).ravel(), np.asarray(second, dtype=bool).ravel()
    n_groups = len(np.asarray(groups).ravel())
    if not len(first) or not len(first) == len(second) == n_groups:
        raise ValueError(f"first, second and groups must describe the same clips, got {len(first)}, {len(second)} "
                         f"and {n_groups}")
    size, gain = _per_group(groups, len(first), first.astype(np.float64) - second)
    difference = float(first.mean() - second.mean())
    if len(size) < 2:
        return difference, float("nan"), float("nan")
    if not np.any(gain):
        return difference, difference, difference
    _, low, high = ratio_of_means_with_interval(gain, size, confidence, n_boot, seed)
    return difference, low, high


def accuracy_against_snr(model: DialectCNN, profile: str, snrs_db: list[float], seed: int = 0,
                         background: str = "mixed", device: torch.device | str = "cpu",
                         n_jobs: int | None = None) -> pd.DataFrame:
    """Test accuracy when the test birds' songs are re-recorded at fixed in-band SNRs (chapter 03).

    The same songs are synthesised again (same seed, so the same birds, songs and noise sources)
    with only the noise level changed, and run through the front end the model was trained with.
    Each SNR's accuracy has a 95 % interval over the test birds (their clips share a voice:
    :func:`accuracy_with_interval` with groups). Each test clip is synthesised once and mixed at
    every SNR, in ``n_jobs`` processes (``None``:
    as many as the run gives each job threads, :func:`~wrenlib.runtime.torch_threads_for_run`,
    since other jobs may run beside this one).
    """
    from .dataset import surrogate_config_for_profile
    from .frontend import assign_backgrounds, front_end_for_profile
    from .images import render_level_cache
    from .surrogate import build_population

    front_end = front_end_for_profile(profile)
    config = surrogate_config_for_profile(profile, seed)
    population = build_population(config)
    test_ids = [i for i in range(config.total_clips)
                if population.individuals[population.clip_assignment(i)[0]].split == "test"]
    batches = [test_ids[first:first + 16] for first in range(0, len(test_ids), 16)]
    parts = list(map_batches(_clips_at_snrs, batches, n_jobs or torch_threads_for_run(), population, list(snrs_db)))
    waveforms = np.concatenate([w for w, _ in parts], axis=1)  # (snrs, clips, samples)
    labels = np.concatenate([l for _, l in parts])
    table = pd.DataFrame({"clip": test_ids, "label": labels, "split": "test"})
    birds = np.array([population.clip_assignment(i)[0] for i in test_ids])
    rows = []
    for snr, at_snr in zip(snrs_db, waveforms):
        levels = render_level_cache(at_snr, front_end, device, progress=False)
        data = SpectrogramDataset(levels, table, assign_backgrounds(len(levels), background, seed), front_end,
                                  None, with_masks=False)
        correct = predict(model, data, np.arange(len(data)), device).argmax(1) == data.labels
        accuracy, low, high = accuracy_with_interval(correct, groups=birds, seed=seed)
        rows.append({"snr_db": float(snr), "accuracy": accuracy, "ci_low": low, "ci_high": high,
                     "clips": len(data), "birds": len(np.unique(birds))})
    return pd.DataFrame(rows)


def _clips_at_snrs(population, snrs_db: list[float], clip_ids: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Waveforms (snrs, clips, samples) and dialects of some clips, each synthesised once
    (:func:`~wrenlib.surrogate.waveforms_at_snrs`; a share of :func:`~wrenlib.runtime.map_batches`)."""
    from .surrogate import plan_song, waveforms_at_snrs

    plans = [plan_song(population, i) for i in clip_ids]
    waves = np.stack([waveforms_at_snrs(plan, population.config, snrs_db) for plan in plans], axis=1)
    return waves, np.array([plan.dialect for plan in plans])


def benchmark_training(image_size: tuple[int, int], batch_size: int = 32, n_batches: int = 2,
                       device: torch.device | str = "cpu", repeats: int = 2,
                       sixteen_bit: bool = True) -> dict[str, float]:
    """Training speed at one image size, and what the loader costs (chapter 03, ``make bench``).

    Measured side by side in one run on random images: the time to build batches from the cached
    uint8 levels (background applied), and the time of training steps (forward, backward, Adam)
    on batches already in memory, both as :func:`fit` runs them (the pool-first twin) and in the
    paper's layer order, and, where the full profile would train in 16 bits here
    (``mixed_precision="native"``) and ``sixteen_bit`` asks for it, in those too. Each is the
    best of ``repeats``; the machines are shared. It starts by handing the memory earlier work freed back to the system
    (:func:`~wrenlib.runtime.release_freed_memory`), so its own peak adds to no leftover, and
    with the allocator keeping freed blocks, as every training does after
    :func:`~wrenlib.runtime.set_seed` (without it a float32 step at 480 x 960 faults its
    activations in afresh every step: measured 1.7 times as slow at batch 32).
    """
    import time

    from .frontend import PAPER_FRONT_END, assign_backgrounds
    from .runtime import keep_freed_memory, release_freed_memory

    release_freed_memory()
    keep_freed_memory()

    rng = np.random.default_rng(0)
    n = batch_size * n_batches
    levels = rng.integers(0, 256, size=(n, *image_size), dtype=np.uint8)
    clips = pd.DataFrame({"clip": np.arange(n), "label": np.arange(n) % 2, "split": "train"})
    data = SpectrogramDataset(levels, clips, assign_backgrounds(n, "mixed", 0),
                              PAPER_FRONT_END.with_image_size(*image_size), None, with_masks=False)
    model = DialectCNN(ModelConfig(*image_size)).to(device).train()
    network = fast_forward(model)  # as fit() trains
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_function = nn.CrossEntropyLoss()
    indices = np.arange(n)

    def load() -> list:
        return list(batches(data, indices, batch_size, device=device))

    def steps(prepared: list, network: nn.Module = network, half: torch.dtype | None = None) -> None:
        scaler = gradient_scaler(half, device)
        for images, labels in prepared:
            training_step(network, optimiser, loss_function, images, labels, half, scaler)
        if torch.device(device).type == "cuda":
            torch.cuda.synchronize()

    def best_seconds(*runs) -> list[float]:
        """The best time of each run over ``repeats`` rounds, the runs taking turns in each round
        (so that a slow spell of the shared machine hits both alike)."""
        times: list[list[float]] = [[] for _ in runs]
        for _ in range(repeats):
            for run, measured in zip(runs, times):
                started = time.perf_counter()
                run()
                measured.append(time.perf_counter() - started)
        return [min(measured) for measured in times]

    half = autocast_dtype(device, get_profile("full").mixed_precision) if sixteen_bit else None  # the full profile's
    prepared = load()
    steps(prepared[:1])  # warm-up, every variant
    steps(prepared[:1], model)
    runs = [lambda: steps(prepared), lambda: steps(prepared, model)]
    if half is not None:
        steps(prepared[:1], half=half)
        runs.append(lambda: steps(prepared, half=half))
    loader_seconds, = best_seconds(load)
    step_seconds, paper_order_seconds, *half_seconds = best_seconds(*runs)
    result = {"image_height_px": image_size[0], "image_width_px": image_size[1], "batch_size": batch_size,
              "training_images_per_second": n / step_seconds,
              "paper_order_images_per_second": n / paper_order_seconds,
              "loader_images_per_second": n / loader_seconds,
              "loader_share_of_step_time": loader_seconds / step_seconds}
    if half_seconds:  # the same steps under torch.autocast, taking turns with the float32 ones
        result.update(mixed_precision=precision_name(half),
                      mixed_precision_images_per_second=n / half_seconds[0])
    return result
