"""Attribution maps of the dialect CNN: one API for Grad-CAM, DeepLIFT, LIME and SHAP (chapters 04-07).

:func:`explain` takes a batch of images and a method name and returns an :class:`Explanation`:
raw maps of the images' size (N, H, W), float32, with the settings used and per-image
diagnostics. :func:`normalise_maps` is the book's one rule that turns raw maps into the maps that
plots, ensembles and metrics use. :func:`explain_dataset` caches maps per clip in the artifact
cache, keyed by model, data, method and settings, so widgets and later chapters read them.

Every explainer comes from a library: captum's ``LayerGradCam``, ``DeepLift`` and ``Lime``, and
shap's ``DeepExplainer`` (``GradientExplainer`` and the partition explainer as options). What
this module adds is what the libraries leave to the user: the target layer, the baselines, the
time-frequency grid of LIME's features, the input standardisation, batching and caching.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
import warnings
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from torch import nn

from .model import fast_forward
from .runtime import seeded, settings_errors

#: The four attribution methods, by the names :func:`explain` takes (chapters 04-07).
METHODS = ("gradcam", "deeplift", "lime", "shap")
#: Each method's name as the book prints it.
METHOD_TITLES = {"gradcam": "Grad-CAM", "deeplift": "DeepLIFT", "lime": "LIME", "shap": "SHAP"}
#: DeepLIFT's references (:class:`DeepLiftSettings`, chapter 05).
BASELINES = ("white", "black", "background", "blurred")
#: LIME's interpretable features (:class:`LimeSettings`, chapter 06).
SEGMENTATIONS = ("grid", "quickshift", "slic")
#: SHAP's explainers (:class:`ShapSettings`, chapter 07).
SHAP_EXPLAINERS = ("deep", "gradient", "partition")
#: How Grad-CAM's cells become pixels (:class:`GradCamSettings`; torch's ``interpolate`` modes).
INTERPOLATIONS = ("bilinear", "nearest", "nearest-exact", "bicubic", "area")
# Part of every cached map's key: raise it whenever a change here changes the maps themselves.
# 3: Grad-CAM's cells placed on the pixels they cover (layer_stride); LIME's kernel the lime package's
# 4: DeepLIFT's ReLUs and max-pools kept apart for captum (deeplift_network); the untrained
#    reference explains the trained model's predicted class
# 5: LIME in 16 bits computes the network's dense head in float32 (_timed_probabilities); float32 maps unchanged
EXPLAINER_VERSION = 5
# The libraries whose code computes or segments the maps: their versions are part of every cached
# map's key too, so a cache made under another captum or shap is remade rather than trusted
EXPLAINER_LIBRARIES = ("torch", "captum", "shap", "scikit-image", "scikit-learn")


def explainer_version() -> dict[str, Any]:
    """What, beside a map's settings, model and data, fixes it: :data:`EXPLAINER_VERSION` and the
    installed versions of :data:`EXPLAINER_LIBRARIES` (part of every cache key of maps)."""
    from importlib.metadata import PackageNotFoundError, version

    def installed(name: str) -> str | None:
        try:
            return version(name)
        except PackageNotFoundError:
            return None

    return {"wrenlib": EXPLAINER_VERSION, **{name: installed(name) for name in EXPLAINER_LIBRARIES}}


# --------------------------------------------------------------------------------------------
# Settings: one frozen dataclass per method; their dicts are part of every cache key.


@dataclass(frozen=True)
class GradCamSettings:
    """Grad-CAM (chapter 04). ``layer`` names a module (e.g. ``"features.3"``); None is the
    model's ``last_conv_block``, the paper's choice. ReLU keeps only evidence for the target."""

    layer: str | None = None
    relu: bool = True
    interpolation: str = "bilinear"  # how the layer's cells become pixels: one of INTERPOLATIONS

    def __post_init__(self) -> None:
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(f"unknown Grad-CAM interpolation {self.interpolation!r}; choose one of "
                             f"{', '.join(INTERPOLATIONS)}")


@dataclass(frozen=True)
class DeepLiftSettings:
    """DeepLIFT (chapter 05). ``baseline``: ``white`` (the paper's), ``black``, ``background`` (the
    image's own empty background level) or ``blurred`` (a Gaussian-blurred copy, sigma as a share
    of the image height)."""

    baseline: str = "white"
    blur_sigma: float = 0.05

    def __post_init__(self) -> None:
        if self.baseline not in BASELINES:
            raise ValueError(f"unknown DeepLIFT baseline {self.baseline!r}; choose one of {', '.join(BASELINES)}")
        _refuse(settings_errors(positive={"blur_sigma": self.blur_sigma}), "DeepLIFT")


@dataclass(frozen=True)
class LimeSettings:
    """LIME (chapter 06): captum's LIME (``LimeBase``, each batch's images made in one step) on
    interpretable features that are either cells of a time-frequency ``grid`` (rows = frequency
    bands, columns = time slices) or the superpixels of an image segmenter (``quickshift``,
    ``slic``). A switched-off feature takes the image's background level. The surrogate model is
    a ridge regression weighted by an exponential kernel on the cosine distance (the ``lime``
    package's defaults)."""

    segmentation: str = "grid"
    grid: tuple[int, int] = (8, 16)
    n_segments: int = 128  # slic only
    n_samples: int = 1000
    batch_size: int = 64
    kernel_width: float = 0.25
    ridge_alpha: float = 1.0
    seed: int = 0
    # the model's forward passes in 16 bits under torch.autocast, by training's rule
    # (wrenlib.training.autocast_dtype: "off" float32; "native" bfloat16 on a GPU and on a CPU that
    # computes it in hardware): LIME reads only the model's probabilities, and chapter 06 measures
    # how little 16 bits move its map against how much another seed does
    mixed_precision: str = "off"

    def __post_init__(self) -> None:
        from .profiles import MIXED_PRECISION

        if self.segmentation not in SEGMENTATIONS:
            raise ValueError(f"unknown LIME segmentation {self.segmentation!r}; choose one of {', '.join(SEGMENTATIONS)}")
        if self.mixed_precision not in MIXED_PRECISION:
            raise ValueError(f"LIME's mixed_precision must be one of {', '.join(MIXED_PRECISION)}, "
                             f"got {self.mixed_precision!r}")
        grid = tuple(self.grid) if isinstance(self.grid, (tuple, list)) else ()
        _refuse(settings_errors(
            whole={"n_samples": self.n_samples, "batch_size": self.batch_size, "n_segments": self.n_segments,
                   **({"grid rows": grid[0], "grid columns": grid[1]} if len(grid) == 2 else {})},
            positive={"kernel_width": self.kernel_width}, non_negative={"ridge_alpha": self.ridge_alpha})
            + ([] if len(grid) == 2 else [f"grid must be (rows, columns), got {self.grid!r}"]), "LIME")


@dataclass(frozen=True)
class ShapSettings:
    """SHAP (chapter 07). ``deep`` is shap's DeepExplainer (DeepLIFT averaged over
    ``n_background`` training images as references), ``gradient`` its GradientExplainer (expected
    gradients, ``n_samples`` per image), ``partition`` the model-agnostic partition explainer
    (``max_evals`` model evaluations, switched-off pixels at the background level)."""

    explainer: str = "deep"
    n_background: int = 16
    n_samples: int = 200
    max_evals: int = 500
    batch_size: int = 64
    seed: int = 0

    def __post_init__(self) -> None:
        if self.explainer not in SHAP_EXPLAINERS:
            raise ValueError(f"unknown SHAP explainer {self.explainer!r}; choose one of {', '.join(SHAP_EXPLAINERS)}")
        _refuse(settings_errors(whole={"n_background": self.n_background, "n_samples": self.n_samples,
                                       "max_evals": self.max_evals, "batch_size": self.batch_size}), "SHAP")


def _refuse(wrong: list[str], method: str) -> None:
    """Raise one error naming every setting of ``method`` that is out of range."""
    if wrong:
        raise ValueError(f"{method} settings: " + "; ".join(wrong))


SETTINGS_CLASSES = {"gradcam": GradCamSettings, "deeplift": DeepLiftSettings, "lime": LimeSettings,
                    "shap": ShapSettings}


def settings_for_profile(method: str, profile: str, seed: int = 0) -> Any:
    """The method's settings at a profile's budget (LIME samples and precision, SHAP references),
    with the chapter's ``seed`` for the methods that draw random numbers (chapters 06 and 07
    explain with ``seed=SEED``; the later chapters must read the same maps)."""
    from .profiles import get_profile

    budget = get_profile(profile)
    cls = _settings_class(method)
    if method == "lime":
        return cls(n_samples=budget.lime_samples, seed=seed, mixed_precision=budget.mixed_precision)
    if method == "shap":
        return cls(n_background=budget.shap_background, seed=seed)
    return cls()


def _settings_class(method: str):
    if method not in SETTINGS_CLASSES:
        raise ValueError(f"unknown explanation method {method!r}; choose one of {', '.join(METHODS)}")
    return SETTINGS_CLASSES[method]


def make_settings(method: str, settings: Any = None, **changes: Any) -> Any:
    """Settings for ``method`` from None (defaults), a dict, or a settings object, plus changes."""
    cls = _settings_class(method)
    if settings is None:
        settings = cls()
    elif isinstance(settings, dict):
        values = dict(settings)
        if "grid" in values:
            values["grid"] = tuple(values["grid"])
        settings = cls(**values)
    elif not isinstance(settings, cls):
        raise TypeError(f"settings for {method!r} must be a {cls.__name__}, a dict or None")
    if changes:
        settings = cls(**{**asdict(settings), **changes})
    return settings


# --------------------------------------------------------------------------------------------
# The result and the normalisation rule.


@dataclass
class Explanation:
    """Raw attribution maps (N, H, W) of one method, with what produced them.

    ``extras`` holds per-image diagnostics (N,) such as DeepLIFT's ``convergence_delta``;
    ``seconds`` is the wall time of the computation (0 when every map came from the cache).
    """

    method: str
    maps: np.ndarray
    targets: np.ndarray
    settings: dict[str, Any]
    extras: dict[str, np.ndarray] = field(default_factory=dict)
    seconds: float = 0.0

    def normalised(self, **rule: Any) -> np.ndarray:
        """The maps under :func:`normalise_maps` (the book's rule unless told otherwise)."""
        return normalise_maps(self.maps, **rule)

    @property
    def all_zero(self) -> np.ndarray:
        """True for each map with no positive attribution (plotted as "all zero", never blank)."""
        return all_zero_maps(self.maps)


def normalise_maps(maps: np.ndarray, sign: str = "positive", scale: str = "max") -> np.ndarray:
    """The book's one normalisation rule (chapter 04): raw maps -> maps in [0, 1] (or [-1, 1]).

    - resolution: the image's own; every explainer here returns maps of the image size, so no
      resampling happens at this step (a map of another shape is an error);
    - ``sign``: ``positive`` keeps only evidence *for* the target (negative values -> 0), as
      Grad-CAM's ReLU does; ``absolute`` takes magnitudes; ``signed`` keeps the sign;
    - ``scale``: ``max`` divides each map by its largest value (magnitude for ``signed``);
      ``quantile`` divides by its 99th percentile of non-zero values and clips at 1, so a single
      hot pixel cannot flatten the rest; ``sum`` divides by the sum of its magnitudes, so every
      map carries the same total (chapter 08 weighs the ensembles' members that way too: a map
      high on a few pixels is not outweighed by one high on many).

    A map with nothing left after the sign step stays all zero (see :func:`all_zero_maps`).
    """
    maps = np.asarray(maps, dtype=np.float32)
    if maps.ndim != 3:
        raise ValueError(f"maps must be (N, H, W), got shape {maps.shape}")
    if sign == "positive":
        out = np.clip(maps, 0, None)
    elif sign == "absolute":
        out = np.abs(maps)
    elif sign == "signed":
        out = maps.copy()
    else:
        raise ValueError(f"sign must be 'positive', 'absolute' or 'signed', got {sign!r}")
    magnitude = np.abs(out).reshape(len(out), -1)
    if scale == "max":
        peak = magnitude.max(axis=1, initial=0.0)
    elif scale == "quantile":
        peak = np.array([np.quantile(row[row > 0], 0.99) if (row > 0).any() else 0.0 for row in magnitude])
    elif scale == "sum":
        peak = magnitude.sum(axis=1, dtype=np.float64)
    else:
        raise ValueError(f"scale must be 'max', 'quantile' or 'sum', got {scale!r}")
    safe = np.where(peak > 0, peak, 1.0).astype(np.float32)[:, None, None]
    out = out / safe
    return np.clip(out, -1.0, 1.0) if scale == "quantile" else out


def all_zero_maps(maps: np.ndarray) -> np.ndarray:
    """True for each map (N, H, W) without a single positive value."""
    maps = np.asarray(maps)
    return ~(maps.reshape(len(maps), -1) > 0).any(axis=1)


# --------------------------------------------------------------------------------------------
# Helpers shared by the methods.


def _as_batch(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Images (N, H, W) or (N, 1, H, W), array or tensor -> float32 tensor (N, 1, H, W)."""
    x = torch.as_tensor(np.asarray(images) if not isinstance(images, torch.Tensor) else images)
    x = x.float()
    if x.dim() == 2:
        x = x[None, None]
    elif x.dim() == 3:
        x = x[:, None]
    if x.dim() != 4 or x.shape[1] != 1:
        raise ValueError(f"images must be (N, H, W) or (N, 1, H, W) grey images, got shape {tuple(x.shape)}")
    return x


def split_standardisation(model: nn.Module) -> tuple[nn.Module, nn.Module]:
    """(standardisation, network after it) of a :class:`~wrenlib.model.DialectCNN`; other
    models have no standardisation (identity, model).

    The CNN subtracts each image's own background level first (chapter 03). DeepLIFT and
    DeepSHAP run on the network *after* that step, with the baseline standardised the same way,
    so that their attributions sum exactly to f(x) - f(baseline) (the median is not a
    differentiable operation those rules know).
    """
    if hasattr(model, "standardise") and hasattr(model, "features") and hasattr(model, "classifier"):
        return model.standardise, nn.Sequential(model.features, model.classifier).eval()
    return nn.Identity(), model


# The modules captum's DeepLift gives a rule of their own (its SUPPORTED_NON_LINEAR, those the
# book's networks use or might): each rule runs in a hook on its module.
DEEPLIFT_NONLINEAR = (nn.ReLU, nn.ELU, nn.LeakyReLU, nn.Sigmoid, nn.Tanh, nn.Softmax,
                      nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)


class Handover(nn.Module):
    """``x * 1``: a new tensor between two of captum's non-linear modules (see
    :func:`deeplift_network`). It changes no value and no gradient."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 1.0


def _end_module(module: nn.Module, last: bool) -> nn.Module:
    while isinstance(module, nn.Sequential) and len(module):
        module = module[-1 if last else 0]
    return module


def separate_nonlinearities(module: nn.Module) -> nn.Module:
    """The same network (its modules shared, not copied) with a :class:`Handover` wherever one of
    captum's non-linear modules feeds straight into another inside ``nn.Sequential`` containers,
    e.g. each block's ReLU into its max-pool."""
    if not isinstance(module, nn.Sequential):
        return module
    children: list[nn.Module] = []
    for child in module:
        child = separate_nonlinearities(child)
        if (children and isinstance(_end_module(children[-1], last=True), DEEPLIFT_NONLINEAR)
                and isinstance(_end_module(child, last=False), DEEPLIFT_NONLINEAR)):
            children.append(Handover())
        children.append(child)
    separated = nn.Sequential(*children)
    separated.training = module.training  # its own flag only: the shared modules keep theirs
    return separated


def deeplift_network(model: nn.Module) -> tuple[nn.Module, nn.Module]:
    """(standardisation, network after it) as :func:`split_standardisation` gives them, the
    network ready for captum's ``DeepLift`` (chapters 05 and 07): captum 0.9.0 applies each rule
    in a hook on its module, and where a ReLU feeds straight into a max-pool, as in every block of
    the paper's CNN, the ReLU's rule read the gradient before the max-pool's rule had replaced it
    (captum issue 1104, mended after 0.9.0). The maps then no longer summed to f(x) - f(baseline).
    :func:`separate_nonlinearities` keeps the two apart; the network computes the same values."""
    standardise, network = split_standardisation(model)
    return standardise, separate_nonlinearities(network)


def background_levels(x: torch.Tensor) -> torch.Tensor:
    """Each image's empty-background level: its median pixel (0 on black, 1 on white), (N,)."""
    return x.flatten(1).median(dim=1).values


def deeplift_baselines(x: torch.Tensor, settings: DeepLiftSettings) -> torch.Tensor:
    """The baseline images DeepLIFT compares ``x`` with (same shape as ``x``)."""
    if settings.baseline == "white":
        return torch.ones_like(x)
    if settings.baseline == "black":
        return torch.zeros_like(x)
    if settings.baseline == "background":
        return background_levels(x).view(-1, 1, 1, 1).expand_as(x).clone()
    from scipy.ndimage import gaussian_filter

    sigma = max(settings.blur_sigma * x.shape[-2], 0.5)
    blurred = np.stack([gaussian_filter(image[0], sigma, mode="nearest") for image in x.detach().cpu().numpy()])
    return torch.from_numpy(blurred[:, None].astype(np.float32)).to(x.device)


def grid_segments(height: int, width: int, rows: int, cols: int) -> np.ndarray:
    """Feature ids (H, W) of a rows x cols time-frequency grid, row 0 at the top of the image."""
    if not (1 <= rows <= height and 1 <= cols <= width):
        raise ValueError(f"a {rows} x {cols} grid does not fit a {height} x {width} image")
    r = np.minimum(np.arange(height) * rows // height, rows - 1)
    c = np.minimum(np.arange(width) * cols // width, cols - 1)
    return (r[:, None] * cols + c[None, :]).astype(np.int64)


# Superpixels made lately, by image and settings: chapter 06 asks for the same clips' superpixels
# when it explains them and again when it scores the maps, and quickshift takes seconds per
# 480 x 960 image. Kept as int32, at most SEGMENT_CACHE_BYTES (oldest out first).
SEGMENT_CACHE_BYTES = 256 * 2**20
_segment_cache: dict[tuple, np.ndarray] = {}
_segment_cache_lock = threading.Lock()  # lime_segments_of's threads share it


def lime_segments(image: np.ndarray, settings: LimeSettings) -> np.ndarray:
    """LIME's interpretable features for one (H, W) image: grid cells or image superpixels
    (feature ids 0..F-1, int64)."""
    height, width = image.shape
    if settings.segmentation == "grid":
        return grid_segments(height, width, *settings.grid)
    # what the segmenter reads: quickshift its seed, SLIC its number of segments
    knob = settings.seed if settings.segmentation == "quickshift" else settings.n_segments
    key = (hashlib.sha256(np.ascontiguousarray(image).tobytes()).hexdigest(), image.shape, str(image.dtype),
           settings.segmentation, knob)
    with _segment_cache_lock:
        cached = _segment_cache.get(key)
    if cached is not None:
        return cached.astype(np.int64)
    from skimage import segmentation

    if settings.segmentation == "quickshift":  # the lime package's default segmenter and settings
        rgb = np.repeat(image[..., None].astype(np.float64), 3, axis=-1)
        labels = segmentation.quickshift(rgb, kernel_size=4, max_dist=200, ratio=0.2, convert2lab=False,
                                         rng=settings.seed)
    else:
        labels = segmentation.slic(image.astype(np.float64), n_segments=settings.n_segments, compactness=0.1,
                                   channel_axis=None, start_label=0)
    _, dense = np.unique(labels, return_inverse=True)
    dense = dense.reshape(height, width).astype(np.int32)
    with _segment_cache_lock:
        if key not in _segment_cache:
            held = sum(kept.nbytes for kept in _segment_cache.values())
            while _segment_cache and held + dense.nbytes > SEGMENT_CACHE_BYTES:
                held -= _segment_cache.pop(next(iter(_segment_cache))).nbytes
            if dense.nbytes <= SEGMENT_CACHE_BYTES:
                _segment_cache[key] = dense
    return dense.astype(np.int64)


def lime_segments_of(images: np.ndarray, settings: LimeSettings, threads: int | None = None):
    """:func:`lime_segments` of each (H, W) image of ``images``, in order, as an iterator that
    works ahead on ``threads`` threads (default: torch's, the job's share of the cores), at most
    one image per thread beyond the one asked for: skimage's segmenters release the GIL, so
    superpixels of the next images are made while LIME runs the model on this one."""
    if settings.segmentation == "grid" or len(images) < 2:
        yield from (lime_segments(image, settings) for image in images)
        return
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    threads = max(1, threads or torch.get_num_threads())
    with ThreadPoolExecutor(threads) as pool:
        ahead: deque = deque()
        for image in images:
            ahead.append(pool.submit(lime_segments, image, settings))
            if len(ahead) > threads:
                yield ahead.popleft().result()
        while ahead:
            yield ahead.popleft().result()


def feature_means(values: np.ndarray, features: np.ndarray) -> np.ndarray:
    """The mean of ``values`` over each feature of ``features`` (same shape; ids 0..F-1), (F,):
    a LIME map's weight per feature, or the share of a feature's pixels with some property."""
    ids = features.ravel()
    return np.bincount(ids, weights=np.asarray(values, dtype=np.float64).ravel()) / np.bincount(ids)


def _batches(n: int, size: int):
    """Slices of ``size`` consecutive images of ``n`` (the last may be shorter). A batch size below
    1 (or not whole) is refused: it would silently leave images out."""
    _refuse_batch_size(size)
    for first in range(0, n, size):
        yield slice(first, min(first + size, n))


def _refuse_batch_size(size: Any) -> None:
    if settings_errors(whole={"batch_size": size}):
        raise ValueError(f"batch_size must be a whole number of at least 1, got {size!r}")


def image_targets(model: nn.Module, x: torch.Tensor, targets: Any = None, batch_size: int = 64) -> np.ndarray:
    """The class explained for each image of ``x`` (N, 1, H, W), a writable int64 array (N,): the
    model's prediction where ``targets`` is None, else one class for every image or one per image.
    Other lengths, and classes that are not whole numbers >= 0, are refused by name."""
    if targets is None:
        return predicted_classes(model, x, batch_size)
    given = np.asarray(targets)
    if given.ndim > 1 or (given.ndim == 1 and len(given) not in (1, len(x))):
        raise ValueError(f"targets must be one class, or one per image ({len(x)}), got {given.size} in shape "
                         f"{given.shape}")
    if given.size and (given.dtype.kind not in "iuf" or not np.all(np.isfinite(given))
                       or np.any(given != np.round(given)) or np.any(given < 0)):
        raise ValueError(f"targets must be class indices (whole numbers >= 0), got {given.ravel()[:8].tolist()}")
    return np.broadcast_to(given.astype(np.int64), (len(x),)).copy()


def predicted_classes(model: nn.Module, x: torch.Tensor, batch_size: int = 64) -> np.ndarray:
    """The model's predicted class for each image of ``x`` (N, 1, H, W)."""
    network, out = fast_forward(model), []
    with torch.no_grad():
        for part in _batches(len(x), batch_size):
            out.append(network(x[part]).argmax(1).cpu())
    return torch.cat(out).numpy() if out else np.zeros(0, dtype=np.int64)


# --------------------------------------------------------------------------------------------
# The four methods. Each takes x (N, 1, H, W) on the model's device and targets (N,) and returns
# maps (N, H, W) float32 and per-image extras.


def layer_stride(model: nn.Module, layer: nn.Module) -> tuple[int, int]:
    """How many image pixels one cell of ``layer``'s output spans (rows, columns): the product of
    the strides of the convolutions and poolings up to and including ``layer``, taken in the order
    the model registers its modules (the order of its forward pass, as in a ``Sequential``). The
    paper's CNN: 32 x 32 after its last block, 16 x 16 after the fourth."""
    names = {module: name for name, module in model.named_modules()}
    if layer not in names:
        raise ValueError(f"{type(layer).__name__} is not a module of this {type(model).__name__}")
    target, reached, rows, cols = names[layer], False, 1, 1
    for name, module in model.named_modules():
        inside = name == target or name.startswith(f"{target}.")
        if reached and not inside:
            break
        reached = reached or inside
        if isinstance(module, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
            stride = module.stride if isinstance(module.stride, tuple) else (module.stride, module.stride)
            rows, cols = rows * int(stride[0]), cols * int(stride[1])
    return rows, cols


def cells_to_pixels(cells: torch.Tensor, image_size: tuple[int, int], stride: tuple[int, int],
                    mode: str = "bilinear") -> torch.Tensor:
    """Grad-CAM's cell maps (N, 1, h, w) at image size (N, 1, H, W): each cell upsampled onto the
    ``stride`` pixels it covers. Max-pooling rounds down, so where the image's size is not a
    multiple of the stride (120 x 240 pixels under the last block's 32: a 3 x 7 grid covering
    96 x 224) the last rows and columns lie in no cell and get no relevance; stretching the grid
    over the whole image instead would shift the cells, the last ones by all the rows and columns
    left over. A stride that
    does not fit the grid (a model whose modules run in another order than registered) falls back
    to stretching, as captum's ``LayerAttribution.interpolate`` does."""
    import torch.nn.functional as F

    (h, w), (height, width) = cells.shape[-2:], image_size
    covered = (h * stride[0], w * stride[1])
    if not (0 <= height - covered[0] < stride[0] and 0 <= width - covered[1] < stride[1]):
        covered = (height, width)
    up = F.interpolate(cells, size=covered, mode=mode)  # as captum's interpolate: align_corners off
    return F.pad(up, (0, width - covered[1], 0, height - covered[0]))


def _gradcam(model, x, targets, settings: GradCamSettings, batch_size, bar):
    from captum.attr import LayerGradCam

    layer = model.get_submodule(settings.layer) if settings.layer else model.last_conv_block
    explainer, stride = LayerGradCam(model, layer), layer_stride(model, layer)
    maps = []
    for part in _batches(len(x), batch_size):
        raw = explainer.attribute(x[part], target=torch.as_tensor(targets[part], device=x.device),
                                  relu_attributions=settings.relu)
        up = cells_to_pixels(raw, tuple(x.shape[-2:]), stride, settings.interpolation)
        maps.append(up[:, 0].detach().cpu().numpy())
        bar.update(len(raw))
    maps = np.concatenate(maps).astype(np.float32)
    return maps, {"all_zero": all_zero_maps(maps)}


def _deeplift(model, x, targets, settings: DeepLiftSettings, batch_size, bar):
    from captum.attr import DeepLift

    standardise, network = deeplift_network(model)
    explainer = DeepLift(network)
    maps, deltas = [], []
    batch_size = min(batch_size, images_per_call(x.shape[-2] * x.shape[-1], DEEPLIFT_BYTES_PER_IMAGE_PIXEL, x.device))
    for part in _batches(len(x), batch_size):
        with torch.no_grad():
            inputs = standardise(x[part])
            references = standardise(deeplift_baselines(x[part], settings))
        attributions, delta = explainer.attribute(inputs, baselines=references,
                                                  target=torch.as_tensor(targets[part], device=x.device),
                                                  return_convergence_delta=True)
        maps.append(attributions[:, 0].detach().cpu().numpy())
        deltas.append(delta.detach().cpu().numpy())
        bar.update(len(inputs))
    return np.concatenate(maps).astype(np.float32), {"convergence_delta": np.concatenate(deltas)}


def lime_similarity(kernel_width: float):
    """LIME's sample weight as the ``lime`` package's ``LimeImageExplainer`` computes it (chapter
    06): the square root of an exponential kernel on the cosine distance d between a sample's
    on/off pattern and "all on", sqrt(exp(-d² / width²)) = exp(-d² / (2 width²)). It is computed
    in feature space, not between images, so it does not depend on the image's background."""

    def similarity(_original, _perturbed, on_off, **_kwargs) -> float:
        on_off = on_off.float().flatten()
        distance = 1.0 - float(on_off.sum()) / max(float(on_off.norm() * on_off.numel() ** 0.5), 1e-12)
        return float(np.sqrt(np.exp(-distance**2 / kernel_width**2)))

    return similarity


class LimeSampler:
    """LIME's samples for one image, drawn before the model runs: ``n_samples`` on/off patterns
    of the features (each feature on with probability 1/2, from the same random stream and in the
    same order as captum's default sampler draws them one at a time) and their weights
    (:func:`lime_similarity`), on the CPU; the patterns reach the model's device in one copy.
    captum's per-sample loop then asks the GPU nothing: with its default sampler and a weight
    computed on the device, every sample waited for the GPU four times (two copies and two
    numbers read back), which on a GPU shared with other jobs cost LIME seconds per image.

    ``perturb`` is captum's ``perturb_func`` (a generator, started anew for each image) and
    ``weight`` its ``similarity_func``, which captum calls right after each sample is drawn (with
    that sample: checked). ``n_samples`` must be the ``n_samples`` given to captum's ``attribute``,
    or the samples are not captum's own."""

    def __init__(self, n_samples: int, kernel_width: float):
        self.n_samples = int(n_samples)
        self.similarity = lime_similarity(kernel_width)
        self._weights = torch.zeros(0)
        self._current = 0
        self._sample: torch.Tensor | None = None

    def perturb(self, original_inp: torch.Tensor, **kwargs):
        on_off = torch.bernoulli(torch.ones(self.n_samples, int(kwargs["num_interp_features"])) * 0.5)
        self._weights = torch.tensor([self.similarity(None, None, row) for row in on_off], dtype=torch.float32,
                                     device=original_inp.device)
        patterns = on_off.long().to(original_inp.device)
        for i in range(self.n_samples):
            self._current, self._sample = i, patterns[i:i + 1]
            yield self._sample

    def weight(self, _original, _perturbed, on_off, **_kwargs) -> torch.Tensor:
        if on_off is not self._sample:  # captum changed how it calls its two functions: say so, never guess
            raise RuntimeError("LimeSampler: captum asked for a weight of a sample other than the one it just drew")
        return self._weights[self._current:self._current + 1]


class ModelClock:
    """The network's own seconds within LIME's work (``model_time_share``, chapters 06 and 07).

    On a CPU a batch's seconds are read off the wall clock around it. On a GPU the work is only
    queued: waiting for it after every batch would keep the CPU from queueing the next batch
    while the GPU computes, so each batch is timed by a pair of CUDA events instead, read once
    the image's work has finished (:meth:`seconds`, after captum's ridge fit has waited for it)."""

    def __init__(self) -> None:
        self._seconds = 0.0
        self._events: list[tuple[Any, Any]] = []
        self._started: tuple[Any, Any] | float | None = None

    def start(self, device: torch.device) -> None:
        """Begin counting the network's work on ``device`` (a backward pass's hook, or :meth:`timing`)."""
        if device.type == "cuda":
            stream = torch.cuda.current_stream(device)  # the work's GPU, which need not be the current one
            event = torch.cuda.Event(enable_timing=True)
            event.record(stream)
            self._started = (event, stream)
        else:
            self._started = time.perf_counter()

    def stop(self) -> None:
        """End what :meth:`start` began (nothing, if nothing was begun)."""
        started, self._started = self._started, None
        if isinstance(started, tuple):
            event, stream = started
            end = torch.cuda.Event(enable_timing=True)
            end.record(stream)
            self._events.append((event, end))
        elif started is not None:
            self._seconds += time.perf_counter() - started

    @contextmanager
    def timing(self, device: torch.device) -> Iterator[None]:
        """Within: the network's work on ``device``, counted."""
        self.start(device)
        yield
        self.stop()

    def seconds(self) -> float:
        """The seconds counted so far (on a GPU waits for the timed work to finish)."""
        for start, end in self._events:
            end.synchronize()
            self._seconds += start.elapsed_time(end) / 1000.0
        self._events.clear()
        return self._seconds


def _timed_probabilities(network: nn.Module, batch: torch.Tensor, clock: ModelClock | None = None,
                         half: torch.dtype | None = None) -> torch.Tensor:
    """The network's class probabilities (float32) for ``batch``, its convolutions computed under
    torch.autocast in ``half`` (None: float32) and its dense head in float32
    (:func:`wrenlib.model.body_and_head`), counting the network's own time on ``clock``.

    The head stays in float32 because LIME fits the small differences between its samples'
    outputs: a network whose logits barely follow its input (an untrained or randomised one,
    chapter 10's cascade) gave logits that bfloat16 rounds to one value for every sample, and
    so a constant map."""
    from .model import body_and_head

    body, head = body_and_head(network)
    with (clock.timing(batch.device) if clock is not None else nullcontext()), torch.no_grad():
        with torch.autocast(batch.device.type, dtype=half or torch.float32, enabled=half is not None):
            features = body(batch)
        return torch.softmax(head(features.float()), dim=1)


def _lime(model, x, targets, settings: LimeSettings, batch_size, bar, seed_images=None):
    from captum._utils.models.linear_model import SkLearnRidge
    from captum.attr import LimeBase

    from .training import autocast_dtype

    network = fast_forward(model)  # LIME needs only the outputs
    half = autocast_dtype(x.device, settings.mixed_precision)
    explained: dict[str, Any] = {}  # the image being explained, its features and background level

    def probabilities(on_off: torch.Tensor) -> torch.Tensor:
        """Class probabilities for a batch of on/off patterns (B, features): the batch's images are
        made in one step, a switched-off feature's pixels taking the background level."""
        keep = on_off.bool()[:, explained["features"]][:, None]  # (B, 1, H, W)
        return _timed_probabilities(network, torch.where(keep, explained["image"], explained["level"]), clock, half)

    sampler = LimeSampler(settings.n_samples, settings.kernel_width)
    # captum's LIME with the on/off pattern itself as the model's input (LimeSampler's samples,
    # passed on as they are): captum's Lime would build each sample's image on the model's device
    # one at a time and spread the weights back over the pixels one feature at a time, each
    # reading a number back from the device; here both are one step per batch and per image
    explainer = LimeBase(probabilities, interpretable_model=SkLearnRidge(alpha=settings.ridge_alpha),
                         similarity_func=sampler.weight, perturb_func=sampler.perturb,
                         perturb_interpretable_space=True,
                         from_interp_rep_transform=lambda on_off, _inputs, **_kwargs: on_off,
                         to_interp_rep_transform=None)
    maps, model_share, n_features = [], [], []
    # on a CPU torch has the job's cores: one thread segments ahead; beside a GPU, the job's threads do
    ahead = 1 if x.device.type == "cpu" else None
    for i, segments in enumerate(lime_segments_of(x[:, 0].cpu().numpy(), settings, threads=ahead)):
        image = x[i:i + 1]
        features = torch.from_numpy(segments).to(device=x.device, dtype=torch.long)
        explained.update(image=image, features=features, level=float(background_levels(image)[0]))
        clock = ModelClock()
        started = time.perf_counter()
        seed_image = image if seed_images is None else seed_images[i:i + 1]
        with seeded(image_seed(seed_image, settings.seed), [x.device]):  # a map depends on its image and seed only
            weights = explainer.attribute(image, target=int(targets[i]), n_samples=settings.n_samples,
                                          perturbations_per_eval=settings.batch_size,
                                          num_interp_features=int(segments.max()) + 1)
        maps.append(weights.detach().flatten().to(torch.float32).cpu().numpy()[segments])  # each pixel its feature's weight
        total = time.perf_counter() - started
        model_share.append(clock.seconds() / total if total > 0 else 1.0)
        n_features.append(int(segments.max()) + 1)
        bar.update(1)
    return np.stack(maps).astype(np.float32), {"model_time_share": np.array(model_share),
                                               "n_features": np.array(n_features)}


def captum_lime(model: nn.Module, image: np.ndarray | torch.Tensor, target: int, settings: LimeSettings | None = None,
                device: torch.device | str | None = None) -> Explanation:
    """One image (H, W) explained by captum's own ``Lime`` on the very samples and weights that
    :func:`explain` draws (:class:`LimeSampler`, the image's seed), the reference that
    :func:`explain`'s LIME equals to the last bit (chapter 06, tests). captum's ``Lime`` builds
    each sample's image on the model's device one at a time and spreads the fitted weights
    back over the pixels one feature at a time; ``explain`` does both in one step per batch and
    per image. ``extras["model_time_share"]`` is the network's share of the time, as
    :func:`explain` reports it."""
    from captum._utils.models.linear_model import SkLearnRidge
    from captum.attr import Lime

    from .training import autocast_dtype

    settings = make_settings("lime", settings)
    device = torch.device(device) if device is not None else next(model.parameters()).device
    x = _as_batch(image)[:1].to(device)
    network = fast_forward(model.to(device).eval())
    clock = ModelClock()
    segments = lime_segments(x[0, 0].cpu().numpy(), settings)
    sampler = LimeSampler(settings.n_samples, settings.kernel_width)
    half = autocast_dtype(x.device, settings.mixed_precision)
    explainer = Lime(lambda batch: _timed_probabilities(network, batch, clock, half),
                     interpretable_model=SkLearnRidge(alpha=settings.ridge_alpha),
                     similarity_func=sampler.weight, perturb_func=sampler.perturb)
    started = time.perf_counter()
    with seeded(image_seed(x, settings.seed), [x.device]):
        attributions = explainer.attribute(x, target=int(target), baselines=float(background_levels(x)[0]),
                                           feature_mask=torch.from_numpy(segments).to(x.device)[None, None],
                                           n_samples=settings.n_samples, perturbations_per_eval=settings.batch_size)
    seconds = time.perf_counter() - started
    return Explanation("lime", attributions[:, 0].detach().cpu().numpy().astype(np.float32), np.array([int(target)]),
                       asdict(settings), {"model_time_share": np.array([clock.seconds() / seconds]),
                                          "n_features": np.array([int(segments.max()) + 1])}, seconds)


def image_seed(image: torch.Tensor, seed: int) -> int:
    """A random seed from an image's pixels and a base seed: sampled explanations (LIME) of one
    image come out the same whichever batch or order it is explained in."""
    digest = hashlib.sha256(image.detach().cpu().numpy().tobytes()).digest()
    return (int.from_bytes(digest[:4], "little") + int(seed)) % 2**31


def shap_references(dataset, n: int, seed: int = 0) -> np.ndarray:
    """``n`` training images (N, H, W), drawn by ``seed`` in equal numbers from each (dialect,
    background) group of the train split, as far as the groups allow: SHAP's references. Where
    ``n`` does not divide evenly, the dialects come first: two references are one of each dialect."""
    return dataset.images(np.sort(_reference_indices(dataset, n, seed)))


def disjoint_shap_references(dataset, n: int, sets: int = 2, seed: int = 0) -> list[np.ndarray]:
    """``sets`` sets of ``n`` SHAP references each that share no image, each drawn as
    :func:`shap_references` draws (its own turns over the (dialect, background) groups, from the
    images the sets before it left): two maps from disjoint sets differ by the choice of references
    alone (chapter 07 measures how many a map needs). The first set is :func:`shap_references`' own."""
    if int(sets) != sets or sets < 1:
        raise ValueError(f"sets must be a whole number of at least 1, got {sets!r}")
    taken: set[int] = set()
    out = []
    for _ in range(int(sets)):
        chosen = _reference_indices(dataset, n, seed, exclude=taken)
        if len(chosen) < n:
            raise ValueError(f"the train split has too few images for {sets} sets of {n} references")
        taken.update(int(i) for i in chosen)
        out.append(dataset.images(np.sort(chosen)))
    return out


def _reference_indices(dataset, n: int, seed: int, exclude: set[int] | frozenset[int] = frozenset()) -> np.ndarray:
    """The dataset indices of :func:`shap_references`' images, leaving out ``exclude``: every
    group's members in one order drawn by ``seed``, taken in turns (the dialects, and within a
    dialect its backgrounds)."""
    train = dataset.split_indices("train")
    rng = np.random.default_rng(seed)
    groups = {}
    for index in train:
        groups.setdefault((int(dataset.labels[index]), str(dataset.backgrounds[index])), []).append(index)
    drawn = {group: [i for i in rng.permutation(members) if int(i) not in exclude]
             for group, members in sorted(groups.items())}
    # taken in turns: the dialects take turns, and within a dialect its backgrounds take turns
    dialects = sorted({label for label, _ in drawn})
    turn = {label: 0 for label in dialects}
    chosen = []
    available = sum(len(members) for members in drawn.values())
    while len(chosen) < min(n, available):
        for label in dialects:
            pools = [drawn[group] for group in sorted(drawn) if group[0] == label and drawn[group]]
            if pools and len(chosen) < n:
                chosen.append(pools[turn[label] % len(pools)].pop())
                turn[label] += 1
    return np.array(chosen, dtype=np.int64)


# Memory per image and pixel of the two explainers that hold a whole network's activations for
# backward passes, rounded up from what `make bench` measured with the paper's CNN in float32 at
# 480 x 960 on a CPU (DeepLIFT 1,583-1,806 bytes per pixel over this project's runs, SHAP
# 1,280-1,365; the H200 record's peak GPU memory agrees: 35.6 GiB for 64 SHAP references,
# 12.9 GiB for 16 DeepLIFT images). DeepLIFT runs each explained image beside its baseline:
# 0.8 GiB per image at 480 x 960; DeepExplainer runs it beside every reference: 0.6 GiB per reference
DEEPLIFT_BYTES_PER_IMAGE_PIXEL = 1900
#: Bytes SHAP's deep explainer holds per reference image and pixel (the comment above says how measured).
SHAP_BYTES_PER_REFERENCE_PIXEL = 1400


def images_per_call(pixels: int, bytes_per_pixel: int, device: torch.device | str = "cpu") -> int:
    """How many images (DeepLIFT) or references (SHAP's DeepExplainer) one call may take for
    images of ``pixels`` pixels: half of this process's share of a GPU's memory
    (:func:`wrenlib.runtime.gpu_memory_share`: all of it, or 1/jobs when ``wrenlib execute`` runs
    jobs side by side on it), or a quarter of a CPU machine's (two chapters may run side by side),
    over the measured cost of one (the constants above). At the quick profile's 120 x 240 nothing
    is split; at the full profile's 480 x 960 the 64 SHAP references need tens of GiB in one call,
    which a large GPU of one's own takes at once and a CPU machine in groups. The rule reads the
    machine's total memory, not what is free, so a machine always splits the same way."""
    device = torch.device(device)
    if device.type == "cuda":
        from .runtime import gpu_memory_share

        total, share = torch.cuda.get_device_properties(device).total_memory, 0.5 * gpu_memory_share()
    else:
        import psutil

        total, share = psutil.virtual_memory().total, 0.25
    return max(1, int(share * total // (bytes_per_pixel * max(int(pixels), 1))))


class _ChunkedDeepExplainer:
    """shap's DeepExplainer over the references in groups of at most ``per_call``.

    A DeepExplainer's attribution is the mean over its references of each reference's
    attribution, so the mean of the groups' attributions, weighted by their sizes, is the
    attribution of all the references at once (up to the order of the floating-point sums), and
    so is the expected value; only the memory of a call shrinks. One group is plain DeepExplainer."""

    def __init__(self, network: nn.Module, references: torch.Tensor, per_call: int) -> None:
        import shap

        groups = [references[first:first + per_call] for first in range(0, len(references), per_call)]
        self.weights = [len(group) / len(references) for group in groups]
        self.explainers = [shap.DeepExplainer(network, group) for group in groups]
        self.expected_value = sum(w * np.asarray(e.expected_value) for w, e in zip(self.weights, self.explainers))

    def shap_values(self, inputs: torch.Tensor, **options: Any):
        ranked = options.get("ranked_outputs") is not None
        total, ranks = None, None
        for weight, explainer in zip(self.weights, self.explainers):
            result = explainer.shap_values(inputs, **options)
            values, order = (result[0], np.asarray(result[1].cpu() if torch.is_tensor(result[1]) else result[1])) \
                if ranked else (result, None)
            if ranks is None:
                ranks = order
            elif ranked and not np.array_equal(order, ranks):
                # each call ranks the outputs itself; a near-tie that a GPU's kernels order differently
                # would mix outputs, so this group explains every output and keeps the first group's
                options = {k: v for k, v in options.items() if k not in ("ranked_outputs", "output_rank_order")}
                every = np.asarray(explainer.shap_values(inputs, **options))  # (n, ..., outputs)
                values = np.stack([np.take(every[i], ranks[i], axis=-1) for i in range(len(ranks))])
            total = weight * np.asarray(values) if total is None else total + weight * np.asarray(values)
        return (total, ranks) if ranked else total


def _shap(model, x, targets, settings: ShapSettings, batch_size, bar, references=None):
    import shap

    standardise, network = split_standardisation(model)
    extras: dict[str, np.ndarray] = {}
    if settings.explainer == "partition":
        fast, maps = fast_forward(model), []
        for i in range(len(x)):
            image = x[i:i + 1]
            level = float(background_levels(image)[0])

            def probabilities(batch: np.ndarray) -> np.ndarray:
                tensor = torch.from_numpy(np.ascontiguousarray(batch[..., 0], dtype=np.float32))[:, None]
                with torch.no_grad():
                    return torch.softmax(fast(tensor.to(x.device)), dim=1).cpu().numpy()

            shape = (x.shape[-2], x.shape[-1], 1)
            masker = shap.maskers.Image(np.full(shape, level, dtype=np.float32), shape)
            explainer = shap.PartitionExplainer(probabilities, masker, output_names=None)
            values = explainer(image.permute(0, 2, 3, 1).cpu().numpy(), max_evals=settings.max_evals,
                               batch_size=settings.batch_size, outputs=[int(targets[i])], silent=True)
            maps.append(np.asarray(values.values)[0, :, :, 0, 0])
            bar.update(1)
        return np.stack(maps).astype(np.float32), extras
    if references is None:
        raise ValueError("SHAP's deep and gradient explainers need reference images (references=...)")
    with torch.no_grad():
        reference_batch = standardise(_as_batch(references).to(x.device))
    timed = _TimedNetwork(network)
    # seeded here, and NumPy's global generator put back afterwards (shap's GradientExplainer seeds
    # it with rseed): explaining leaves the caller's random draws where they were
    with seeded(settings.seed, [x.device]), _numpy_global_kept(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if settings.explainer == "deep":
            per_call = images_per_call(x.shape[-2] * x.shape[-1], SHAP_BYTES_PER_REFERENCE_PIXEL, x.device)
            explainer = _ChunkedDeepExplainer(timed, reference_batch, per_call)
        else:
            explainer = shap.GradientExplainer(timed, reference_batch, batch_size=settings.batch_size)
        maps, gaps, shares = [], [], []
        for part in _batches(len(x), batch_size):
            inputs = standardise(x[part]).detach()
            with torch.no_grad():
                logits = network(inputs).cpu().numpy()
            wanted = targets[part]
            timed.clock = ModelClock()
            started = time.perf_counter()
            if settings.explainer == "deep" and np.array_equal(wanted, logits.argmax(1)):
                # the usual case, the predicted class: shap computes only the top output (half the work)
                values, _ = explainer.shap_values(inputs, ranked_outputs=1, output_rank_order="max",
                                                  check_additivity=False)
                chosen = np.asarray(values)[:, 0, :, :, 0]
            elif settings.explainer == "deep":
                values = np.asarray(explainer.shap_values(inputs, check_additivity=False))  # (n, 1, H, W, classes)
                chosen = values[np.arange(len(values)), 0, :, :, wanted]
            else:
                # the gradient explainer draws each image's references and points along its paths from
                # NumPy's generator, which it seeds once per call and then runs through image after
                # image: one call per image, seeded by the image (as LIME is), gives a clip the same map
                # whichever batch it is explained in
                values = np.concatenate([np.asarray(explainer.shap_values(
                    inputs[j:j + 1], nsamples=settings.n_samples, rseed=image_seed(x[part][j], settings.seed)))
                    for j in range(len(inputs))])  # (n, 1, H, W, classes)
                chosen = values[np.arange(len(values)), 0, :, :, wanted]
            total = time.perf_counter() - started
            shares.append(np.full(len(chosen), min(timed.clock.seconds() / total, 1.0) if total > 0 else 1.0))
            maps.append(chosen)
            if settings.explainer == "deep":  # additivity: sum = f(x) - E[f(reference)]
                expected = np.asarray(explainer.expected_value).reshape(-1)
                gaps.append(chosen.reshape(len(chosen), -1).sum(1)
                            - (logits[np.arange(len(logits)), wanted] - expected[wanted]))
            bar.update(len(chosen))
    if gaps:
        extras["convergence_delta"] = np.concatenate(gaps)
    extras["model_time_share"] = np.concatenate(shares)
    return np.concatenate(maps).astype(np.float32), extras


@contextmanager
def _numpy_global_kept():
    """Within, anything may seed or draw from NumPy's global generator; afterwards it is back
    where it was."""
    state = np.random.get_state()
    try:
        yield
    finally:
        np.random.set_state(state)


class _TimedNetwork(nn.Module):
    """A network that counts the time of its forward and backward passes on a :class:`ModelClock`
    (``clock``), so an explainer can report how much of its time is the model's own work (the rest
    is its overhead)."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network
        self.clock = ModelClock()
        self.register_full_backward_pre_hook(self._backward_begins)
        self.register_full_backward_hook(self._backward_ends)

    def _backward_begins(self, _module, grad_output):
        tensors = [g for g in grad_output if isinstance(g, torch.Tensor)]
        if tensors:
            self.clock.start(tensors[0].device)

    def _backward_ends(self, _module, _grad_input, _grad_output):
        self.clock.stop()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with self.clock.timing(x.device):
            return self.network(x)


def explain(model: nn.Module, images: np.ndarray | torch.Tensor, method: str, targets=None,
            settings: Any = None, device: torch.device | str | None = None, batch_size: int = 16,
            references: np.ndarray | None = None, progress: bool = False,
            seed_images: np.ndarray | torch.Tensor | None = None) -> Explanation:
    """Explain a batch of images (N, H, W) with one method (chapters 04-07).

    ``targets`` are the classes explained (default: the model's predictions); ``settings`` a
    settings object or dict of the method (default: its defaults); ``references`` are the
    reference images SHAP's deep and gradient explainers need (see :func:`shap_references`).
    LIME draws each image's samples from a stream seeded by that image's pixels
    (:func:`image_seed`); ``seed_images`` (N, H, W) seed it instead: explaining noisy copies with
    the clean images as ``seed_images`` gives both maps the same samples, so that they differ by
    the noise alone (chapter 10).
    Returns raw maps (N, H, W) float32 of the images' size; normalise them with
    :func:`normalise_maps`. All hooks the libraries set are removed when the call returns.
    """
    from tqdm.auto import tqdm

    from .runtime import show_progress

    settings = make_settings(method, settings)
    if method == "shap" and settings.explainer != "partition" and references is not None:
        settings = make_settings(method, settings, n_background=len(references))  # record what was used
    device = torch.device(device) if device is not None else next(model.parameters()).device
    model = model.to(device).eval()  # note: moves the caller's model, as torch's .to() does
    x = _as_batch(images).to(device)
    _refuse_batch_size(batch_size)
    targets = image_targets(model, x, targets)
    started = time.perf_counter()
    with tqdm(total=len(x), desc=METHOD_TITLES[method], unit="image", disable=not show_progress(progress)) as bar, \
            warnings.catch_warnings():
        warnings.simplefilter("ignore")  # captum's notes on hooks and gradients, shap's on max-unpooling
        if method == "gradcam":
            maps, extras = _gradcam(model, x, targets, settings, batch_size, bar)
        elif method == "deeplift":
            maps, extras = _deeplift(model, x, targets, settings, batch_size, bar)
        elif method == "lime":
            seeds = None if seed_images is None else _as_batch(seed_images)
            if seeds is not None and seeds.shape != x.shape:
                raise ValueError(f"seed_images must be one per image, of the images' size: got {tuple(seeds.shape)} "
                                 f"for images {tuple(x.shape)}")
            maps, extras = _lime(model, x, targets, settings, batch_size, bar, seeds)
        else:
            maps, extras = _shap(model, x, targets, settings, batch_size, bar, references)
    return Explanation(method, maps, targets, asdict(settings), extras, time.perf_counter() - started)


# --------------------------------------------------------------------------------------------
# The cache: one file per clip, keyed by model, data, method and settings.


def model_fingerprint(model: nn.Module) -> str:
    """A short hash of a model's weights and buffers (part of every explanation's cache key)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def dataset_fingerprint(dataset) -> str:
    """A short hash of what fixes a dataset's images, clip by clip: its front end; which clips it
    holds, in which order (the caches name a clip by its position, so a split's clip 0 is not the
    whole set's); a confound added to them (chapter 11); and their backgrounds (which also decide
    SHAP's references). Surrogate clips are named by their generator's configuration (less the
    fields that only decide their masks: ``SurrogateConfig.image_key``) and their numbers; other
    clips (recordings) by their pixels."""
    from .cache import config_hash

    if dataset.surrogate is not None:
        table = dataset.clips
        numbers = (table["source_clip"] if "source_clip" in table else table["clip"]).to_numpy(dtype=np.int64)
        confound = dataset.surrogate.confound
        source: Any = {"surrogate": dataset.surrogate.config.image_key(),
                       "clips": hashlib.sha256(np.ascontiguousarray(numbers).tobytes()).hexdigest(),
                       "confound": confound.to_dict() if confound is not None else None}
    else:
        source = hashlib.sha256(np.ascontiguousarray(dataset.levels).tobytes()).hexdigest()
    backgrounds = hashlib.sha256("\n".join(map(str, dataset.backgrounds)).encode()).hexdigest()
    return config_hash({"front_end": dataset.front_end.to_dict(), "source": source, "backgrounds": backgrounds})


def explanation_folder(profile: str, model: nn.Module, dataset, method: str, settings: Any,
                       device: torch.device | str | None = None) -> Path:
    """Where the maps of one (model, data, method, settings) live in the artifact cache. A method
    whose settings ask for 16-bit arithmetic "where native" (LIME's ``mixed_precision``) is keyed
    by the type it runs in on ``device`` (default: where the model is), which differs between
    machines: a cache made in bfloat16 is not taken for float32 maps."""
    from .cache import config_hash, profile_dir
    from .training import keyed_by_precision

    key: dict[str, Any] = {"model": model_fingerprint(model), "data": dataset_fingerprint(dataset),
                           "method": method, "settings": asdict(settings), "version": explainer_version()}
    device = torch.device(device) if device is not None else next(model.parameters()).device
    key = keyed_by_precision(key, device, getattr(settings, "mixed_precision", "off"))
    return profile_dir(profile) / "explanations" / f"{method}-{config_hash(key)}"


# explain_dataset explains missing clips this many batches at a time and caches each part at once
EXPLAIN_PART_BATCHES = 4


def explain_dataset(model: nn.Module, dataset, indices, method: str, profile: str, settings: Any = None,
                    device: torch.device | str | None = None, batch_size: int = 16,
                    progress: bool = True) -> Explanation:
    """Maps of the dataset's clips ``indices`` for the predicted class, from the cache or computed
    now (only the missing clips, :data:`EXPLAIN_PART_BATCHES` batches at a time), then cached one
    file per clip (chapters 04-10)."""
    import json

    from .cache import note_made

    settings = make_settings(method, settings)
    indices = np.asarray(indices, dtype=np.int64)
    folder = explanation_folder(profile, model, dataset, method, settings, device)
    folder.mkdir(parents=True, exist_ok=True)
    described = folder / "settings.json"  # for a reader of the cache; the folder's name is their hash
    if not described.is_file():  # written once, whole (chapters side by side may both get here)
        staging = described.with_suffix(f".{os.getpid()}.tmp")
        staging.write_text(json.dumps({"method": method, "settings": asdict(settings)}, indent=1))
        staging.replace(described)
    files = [folder / f"clip{int(i)}-{dataset.backgrounds[i]}.npz" for i in indices]
    missing = [k for k, path in enumerate(files) if not path.is_file()]
    seconds = 0.0
    references = method_references(dataset, method, settings) if missing else None
    # in parts of whole batches, each cached as soon as it is made: a run cut short keeps the maps
    # it finished, and the batches are those of one call
    part_size = EXPLAIN_PART_BATCHES * batch_size
    for first in range(0, len(missing), part_size):
        part = missing[first:first + part_size]
        fresh = explain(model, dataset.images(indices[part]), method, settings=settings, device=device,
                        batch_size=batch_size, references=references, progress=progress)
        seconds += fresh.seconds
        for j, k in enumerate(part):
            extras = {name: values[j] for name, values in fresh.extras.items()}
            staging = files[k].with_suffix(f".{os.getpid()}.tmp.npz")  # chapters may run side by side
            np.savez(staging, map=fresh.maps[j], target=fresh.targets[j], **extras)
            staging.replace(files[k])
    if missing:
        note_made(f"{len(missing)} {method} map{'s' if len(missing) > 1 else ''}")
    maps, targets, extras = [], [], {}
    for path in files:
        with np.load(path) as stored:
            maps.append(stored["map"])
            targets.append(int(stored["target"]))
            for name in stored.files:
                if name not in ("map", "target"):
                    extras.setdefault(name, []).append(stored[name])
    return Explanation(method, np.stack(maps) if maps else np.zeros((0, *dataset.front_end.image_size), np.float32),
                       np.array(targets, dtype=np.int64), asdict(settings),
                       {name: np.asarray(values) for name, values in extras.items()}, seconds)


def method_references(dataset, method: str, settings: Any) -> np.ndarray | None:
    """The reference images a method needs, drawn from ``dataset`` as the cache draws them
    (:func:`shap_references` for SHAP's deep and gradient explainers; ``None`` otherwise)."""
    settings = make_settings(method, settings)
    if method == "shap" and settings.explainer != "partition":
        return shap_references(dataset, settings.n_background, settings.seed)
    return None


def explain_methods(model: nn.Module, images: np.ndarray | torch.Tensor, profile: str, dataset,
                    methods: tuple[str, ...] = METHODS, targets=None, device: torch.device | str | None = None,
                    batch_size: int = 16, seed: int = 0,
                    seed_images: np.ndarray | torch.Tensor | None = None) -> dict[str, np.ndarray]:
    """Raw maps (N, H, W) of the same images by several methods, each with the profile's settings
    and the references the cache would draw from ``dataset``: what the checks of chapter 10 run on
    noisy images, randomised models and other seeds. ``targets`` default to ``model``'s
    predictions; ``seed_images`` seed LIME's samples (:func:`explain`)."""
    x = _as_batch(images)
    if targets is None:
        device = torch.device(device) if device is not None else next(model.parameters()).device
        targets = predicted_classes(model.to(device).eval(), x.to(device))
    maps = {}
    for method in methods:
        settings = settings_for_profile(method, profile, seed)
        maps[method] = explain(model, x, method, targets=targets, settings=settings, device=device,
                               batch_size=batch_size, references=method_references(dataset, method, settings),
                               seed_images=seed_images).maps
    return maps


#: The maps that need no trained explanation, scored beside the methods (chapters 08 and 10).
REFERENCE_MAPS = ("reference: the image", "reference: untrained DeepLIFT")


def image_as_map(images: np.ndarray) -> np.ndarray:
    """The song energy of each image (N, H, W) as a normalised "map": the pixels themselves on a
    black page, one minus them on a white one. A map that knows nothing about any model — the
    first reference row of chapters 08-11."""
    pictures = np.asarray(images, dtype=np.float32)
    energy = np.where(np.median(pictures, axis=(1, 2), keepdims=True) > 0.5, 1 - pictures, pictures)
    return normalise_maps(energy)


def reference_maps(model: nn.Module, images: np.ndarray, seed: int = 0,
                   device: torch.device | str | None = None) -> dict[str, np.ndarray]:
    """The two reference rows every score in chapters 08-11 is read against, normalised, by the
    names of :data:`REFERENCE_MAPS`: :func:`image_as_map`, and DeepLIFT on a network of the same
    shape and input standardisation with weights drawn by ``seed`` and never trained, for the class
    the trained ``model`` predicts, as the methods' maps are (the caller's random state is left as
    it was)."""
    from .model import DialectCNN

    device = torch.device(device) if device is not None else next(model.parameters()).device
    with seeded(seed):  # the CPU's generator, which draws the weights; no GPU's is touched
        untrained = DialectCNN(model.config).to(device).eval()
    untrained.standardise.load_state_dict(model.standardise.state_dict())
    targets = predicted_classes(model, _as_batch(images).to(device))  # the class the trained model's maps explain
    return {REFERENCE_MAPS[0]: image_as_map(images),
            REFERENCE_MAPS[1]: normalise_maps(explain(untrained, images, "deeplift", targets=targets,
                                                      device=device).maps)}


def explained_clips(dataset, n: int, split: str = "test", seed: int = 0) -> np.ndarray:
    """``n`` clips of a split, half from each dialect, drawn once by ``seed``: the clips that every
    method explains, so chapters 04-10 compare maps of the same clips.

    Within a dialect the draw goes round its song types in turn (``song_type``, where the clips
    have one), each time taking a clip of a bird (``individual``, else ``recording_id``) not yet
    drawn where the type has one: a handful of clips drawn at random can all be one song type (six
    of eight Mexican clips once were), and every score over them would be a score of that type."""
    rng = np.random.default_rng(seed)
    pool = dataset.split_indices(split)
    labels = dataset.labels[pool]
    clips = dataset.clips.iloc[pool]
    types = clips["song_type"].astype(str).to_numpy() if "song_type" in clips else np.zeros(len(pool), dtype=str)
    bird_column = next((c for c in ("individual", "recording_id") if c in clips), None)
    birds = clips[bird_column].astype(str).to_numpy() if bird_column else np.arange(len(pool)).astype(str)
    chosen = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        queues = {kind: list(rng.permutation(members[types[members] == kind])) for kind in np.unique(types[members])}
        order, drawn, used = list(rng.permutation(list(queues))), [], set()
        wanted = min(n // 2, len(members))
        while len(drawn) < wanted:
            for kind in order:
                queue = queues[kind]
                if not queue or len(drawn) == wanted:
                    continue
                fresh = next((k for k, member in enumerate(queue) if birds[member] not in used), 0)
                member = queue.pop(fresh)
                drawn.append(member)
                used.add(birds[member])
        chosen.append(pool[np.array(drawn, dtype=np.int64)])
    return np.sort(np.concatenate(chosen)) if chosen else pool[:0]


def validation_clips(dataset, profile: str, seed: int = 0) -> np.ndarray:
    """The validation clips whose maps choose the adaptive ensemble's temperature (chapter 08): half
    as many as the profile's explained test clips, at least 4 (:func:`explained_clips`)."""
    from .profiles import get_profile

    return explained_clips(dataset, max(4, get_profile(profile).explain_clips // 2), split="validation", seed=seed)


def _explanations_of(clips_of, profile: str, seed: int, device, progress: bool, model, dataset, caller: str,
                     methods: tuple[str, ...]) -> tuple[np.ndarray, dict[str, Explanation]]:
    """The clips ``clips_of(dataset)`` and their maps by ``methods`` at the profile's settings
    (:func:`settings_for_profile`, cached by :func:`explain_dataset`), from the profile's mixed-set
    CNN and images unless ``model`` and ``dataset`` are given."""
    from .training import model_and_data

    model, dataset = model_and_data(profile, seed, device, model, dataset, caller)
    clips = clips_of(dataset)
    return clips, {m: explain_dataset(model, dataset, clips, m, profile, settings_for_profile(m, profile, seed),
                                      device=device, progress=progress) for m in methods}


def validation_explanations(profile: str, seed: int = 0, device: torch.device | str | None = None,
                            progress: bool = False, model: nn.Module | None = None,
                            dataset=None) -> tuple[np.ndarray, dict[str, Explanation]]:
    """Chapter 08's :func:`validation_clips` and the four methods' explanations of them, at the
    profile's settings (:func:`settings_for_profile`, cached by :func:`explain_dataset`), so that
    ``wrenlib execute`` makes them as a preparation of their own beside chapters 04-07 instead of
    chapter 08 after them: at the full profile they took two of chapter 08's minutes on a GPU
    (the Performance page's kept run). ``model`` and ``dataset`` default to the profile's mixed-set
    CNN and images (chapter 03)."""
    return _explanations_of(lambda data: validation_clips(data, profile, seed), profile, seed, device, progress,
                            model, dataset, "validation_explanations", METHODS)


def explanations_of_test_clips(profile: str, seed: int = 0, device: torch.device | str | None = None,
                               progress: bool = False, model: nn.Module | None = None, dataset=None,
                               methods: tuple[str, ...] = ("lime", "shap"),
                               ) -> tuple[np.ndarray, dict[str, Explanation]]:
    """The profile's explained test clips (:func:`explained_clips`) and their maps by ``methods``
    (default LIME and SHAP, the costly two), at the profile's settings, cached: the maps chapters
    06 and 07 show and chapter 08 scores, which ``wrenlib execute`` makes as a preparation once the
    mixed-set CNN is trained, so that chapter 08 waits for them and not for the rest of chapters
    06 and 07 (at the full profile on a GPU, chapter 06 alone ran 5 minutes, most of it comparing
    LIME's features). ``model`` and ``dataset`` default to the profile's mixed-set CNN and images."""
    from .profiles import get_profile

    return _explanations_of(lambda data: explained_clips(data, get_profile(profile).explain_clips, seed=seed),
                            profile, seed, device, progress, model, dataset, "explanations_of_test_clips", methods)


# --------------------------------------------------------------------------------------------
# Benchmark: what an explanation costs next to a forward pass (make bench).


def benchmark_explainers(image_size: tuple[int, int], methods: tuple[str, ...] = METHODS, n_images: int = 2,
                         batch_size: int = 16, device: torch.device | str = "cpu", lime_samples: int = 64,
                         shap_background: int = 4, repeats: int = 1) -> "pandas.DataFrame":  # noqa: F821
    """Seconds per explained image of each method next to one forward pass (chapters 04-07,
    ``make bench``).

    Measured side by side in one run on a randomly initialised :class:`~wrenlib.model.DialectCNN`
    of ``image_size`` and sparse random images (5 % of the pixels lit, alternately on a black and a
    white background), after one cheap warm-up call per method (imports, first allocations):

    - ``forward_seconds_per_image``: one forward pass of a batch of ``batch_size`` images divided
      by ``batch_size``, the best of at least three runs;
    - ``seconds_per_image``: :func:`explain` on ``n_images`` images divided by ``n_images``, the
      best of ``repeats`` runs; ``forward_pass_equivalents`` is the ratio of the two. Grad-CAM and
      DeepLIFT run batches of min(``n_images``, ``batch_size``) images (DeepLIFT also at most
      :func:`images_per_call`), so only with ``n_images`` >= ``batch_size`` do they run the
      forward pass's batches (on a CPU a large image can cost more per image in a larger batch);
      LIME evaluates its samples in batches of its own (``LimeSettings.batch_size``) and
      DeepExplainer in batches of 2 x ``shap_background`` (references in groups of at most
      :func:`images_per_call`);
    - ``overhead_share``, the share of the explanation time spent outside the network itself:
      for LIME and SHAP measured, 1 - ``extras["model_time_share"]``: the network's forward and
      backward passes are timed as they happen (for SHAP the backward pass includes
      DeepExplainer's modified gradients, which are the model evaluation of DeepSHAP), averaged
      over the images. NaN for Grad-CAM and DeepLIFT, which are nothing but model passes.

    CUDA is synchronised before every clock reading; library warnings are suppressed. It starts by
    handing the memory earlier work freed back to the system
    (:func:`~wrenlib.runtime.release_freed_memory`), so its own peak adds to no leftover.
    """
    import pandas as pd

    from .frontend import apply_background
    from .runtime import release_freed_memory

    release_freed_memory()
    from .model import DialectCNN, ModelConfig

    if n_images < 1 or batch_size < 1 or lime_samples < 1 or shap_background < 1 or repeats < 1:
        raise ValueError("n_images, batch_size, lime_samples, shap_background and repeats must be at least 1")
    for method in methods:
        _settings_class(method)
    device = torch.device(device)
    height, width = image_size

    def synchronise() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def best_seconds(run, times: int) -> tuple[float, Any]:
        best, result = float("inf"), None
        for _ in range(times):
            synchronise()
            started = time.perf_counter()
            out = run()
            synchronise()
            seconds = time.perf_counter() - started
            if seconds < best:
                best, result = seconds, out
        return best, result

    rng = np.random.default_rng(0)
    n_random = max(batch_size, n_images) + shap_background
    levels = np.where(rng.random((n_random, height, width)) < 0.05,
                      rng.random((n_random, height, width)), 0.0).astype(np.float32)
    images = apply_background(levels, np.where(np.arange(n_random) % 2, "white", "black"))
    explained, references = images[:n_images], images[n_random - shap_background:]
    with seeded(0):
        model = DialectCNN(ModelConfig(height, width))
    model = model.to(device).eval()
    x = torch.from_numpy(images[:batch_size])[:, None].to(device)
    targets = predicted_classes(model, torch.from_numpy(explained)[:, None].to(device), batch_size)

    network = fast_forward(model)  # the unit: the fastest forward pass of the same function

    def forward() -> None:
        with torch.no_grad():
            network(x)

    budgets = {"gradcam": ("last conv block", None), "deeplift": ("white baseline", None),
               "lime": (f"{lime_samples} samples", LimeSettings(n_samples=lime_samples)),
               "shap": (f"{shap_background} references", ShapSettings(n_background=shap_background))}
    warm_up = {"lime": LimeSettings(n_samples=8, batch_size=8), "shap": ShapSettings(n_background=1)}
    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        forward()
        forward_seconds = best_seconds(forward, max(3, repeats))[0] / batch_size
        for method in methods:
            budget, settings = budgets[method]
            explain(model, explained[:1], method, targets=targets[:1], settings=warm_up.get(method),
                    batch_size=batch_size, references=references[:1])
            seconds, result = best_seconds(
                lambda: explain(model, explained, method, targets=targets, settings=settings, batch_size=batch_size,
                                references=references), repeats)
            seconds /= n_images
            overhead = float("nan")
            if "model_time_share" in result.extras:
                overhead = float(np.mean(1.0 - result.extras["model_time_share"]))
            rows.append({"method": method, "image_height_px": height, "image_width_px": width,
                         "batch_size": batch_size, "seconds_per_image": seconds,
                         "forward_seconds_per_image": forward_seconds,
                         "forward_pass_equivalents": seconds / forward_seconds,
                         "overhead_share": overhead, "budget": budget})
    return pd.DataFrame(rows)
