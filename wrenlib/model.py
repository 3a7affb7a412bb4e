"""The paper's CNN (chapter 03): five conv blocks, three fully connected layers.

Each block is Conv 3x3 (padding 1) -> ReLU -> MaxPool 2x2 with 16, 32, 64, 128, 256 channels;
then flatten and fully connected 512 -> 1024 -> 2. The flatten size follows from the image size
(59.9 M parameters at 480 x 960). What the paper does not state is a parameter with a default:
one input channel (grey), dropout before the last two linear layers, and a fixed standardisation
as the first module. Every module instance is used exactly once in a forward pass (no shared
ReLU, no functional activations), which DeepLIFT and SHAP need.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from typing import Any, Callable

import torch
from torch import nn

# Standardise's per-image median on a GPU: with deterministic algorithms on (wrenlib.set_seed),
# torch warns that the *index* of a median may differ between runs where values tie. Only the value,
# which is the same in every run, is used, so the warning (once per process, in every training
# and chapter on a GPU) says nothing about this code.
warnings.filterwarnings("ignore", message="median CUDA with indices output does not have a deterministic",
                        category=UserWarning)

CONV_CHANNELS = (16, 32, 64, 128, 256)
HIDDEN_UNITS = (512, 1024)


@dataclass(frozen=True)
class ModelConfig:
    """Everything that fixes the network's shape."""

    image_height_px: int = 480
    image_width_px: int = 960
    in_channels: int = 1
    conv_channels: tuple[int, ...] = CONV_CHANNELS
    hidden_units: tuple[int, ...] = HIDDEN_UNITS
    n_classes: int = 2
    dropout: float = 0.3
    standardisation: str = "per_image"  # "per_image": (x - image median) / std; "fixed": (x - mean) / std

    def __post_init__(self) -> None:
        if self.standardisation not in ("fixed", "per_image"):
            raise ValueError(f"standardisation must be 'fixed' or 'per_image', got {self.standardisation!r}")
        factor = 2 ** len(self.conv_channels)
        if self.image_height_px < factor or self.image_width_px < factor:
            raise ValueError(f"images must be at least {factor} x {factor} pixels for "
                             f"{len(self.conv_channels)} pooling steps")

    @property
    def feature_map_size(self) -> tuple[int, int]:
        """Height and width after the last pooling step."""
        factor = 2 ** len(self.conv_channels)
        return self.image_height_px // factor, self.image_width_px // factor

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, fields: dict[str, Any]) -> "ModelConfig":
        """The config that :meth:`to_dict` wrote, also after a JSON round trip (lists become tuples)."""
        return cls(**{key: tuple(value) if isinstance(value, list) else value for key, value in fields.items()})


class Standardise(nn.Module):
    """Standardisation as the model's first module, with its scale measured on the training images.

    On raw spectrogram images (mostly empty: median pixel near 0) the paper's CNN does not learn;
    standardising inside the model fixes that and keeps attributions in image space. ``fixed``
    subtracts one mean for all images; ``per_image`` subtracts each image's own median (its
    background level: 0 on black, 1 on white), which chapter 03 found necessary for the mixed set
    (with one fixed mean, a mixed-background training stayed at chance).
    """

    def __init__(self, mean: float = 0.0, std: float = 1.0, per_image: bool = False) -> None:
        super().__init__()
        self.per_image = per_image
        self.register_buffer("mean", torch.tensor(float(mean)))
        self.register_buffer("std", torch.tensor(float(std)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.per_image:  # the image's own background level (its median) becomes 0
            centre = x.flatten(1).median(dim=1).values.view(-1, *([1] * (x.dim() - 1)))
            return (x - centre) / self.std
        return (x - self.mean) / self.std


class DialectCNN(nn.Module):
    """The paper's network; ``features`` ends at the last conv block, ``classifier`` is the MLP."""

    def __init__(self, config: ModelConfig = ModelConfig()) -> None:
        super().__init__()
        self.config = config
        self.standardise = Standardise(per_image=config.standardisation == "per_image")
        blocks = []
        channels = config.in_channels
        for out_channels in config.conv_channels:
            blocks.append(nn.Sequential(
                nn.Conv2d(channels, out_channels, kernel_size=3, padding=1),
                nn.ReLU(),
                nn.MaxPool2d(2),
            ))
            channels = out_channels
        self.features = nn.Sequential(*blocks)
        height, width = config.feature_map_size
        layers: list[nn.Module] = [nn.Flatten()]
        size = channels * height * width
        for units in config.hidden_units:
            layers += [nn.Linear(size, units), nn.ReLU(), nn.Dropout(config.dropout)]
            size = units
        layers.append(nn.Linear(size, config.n_classes))
        self.classifier = nn.Sequential(*layers)
        # Convolution weights in channels-last order: the same numbers, but oneDNN's CPU kernels
        # run a forward pass about 1.5x faster this way (make bench); .to(device), copies and
        # load_state_dict keep the layout.
        self.features.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(self.standardise(x)))

    @property
    def last_conv_block(self) -> nn.Module:
        """The block whose output Grad-CAM explains (the paper's "last convolutional layer")."""
        return self.features[-1]

    @property
    def last_conv_layer(self) -> nn.Conv2d:
        """The last convolution itself."""
        return self.features[-1][0]

    def latent_layer(self) -> nn.Module:
        """The penultimate fully connected layer's activation (ReLU), whose output chapter 09 embeds."""
        return self.classifier[-3]

    def latent_features(self, x: torch.Tensor) -> torch.Tensor:
        """Activations of :meth:`latent_layer` for a batch (1024 values per image by default)."""
        captured: list[torch.Tensor] = []
        handle = self.latent_layer().register_forward_hook(lambda _m, _i, out: captured.append(out))
        try:
            self(x)
        finally:
            handle.remove()
        return captured[0]

    def pool_first(self) -> "PoolFirstTwin":
        """The same network with every block's max-pool moved before its ReLU, sharing this one's
        modules (so its parameters, buffers and train/eval mode).

        ReLU and a max over a window commute (ReLU is monotone), so the twin computes the same
        outputs and, with the same first-maximum tie-break, the same gradients, bit for bit (tested);
        but its ReLUs see a quarter of the values, which can make a step faster (chapter 03 measures
        both orders side by side on the machine that runs it; under load the two come out close).
        Training and forward-only evaluation (predictions, LIME, deletion curves) run the twin;
        DeepLIFT and SHAP, whose rules depend on the order of the layers, explain the paper's order
        itself."""
        return PoolFirstTwin(self)

    def set_standardisation(self, mean: float, std: float) -> None:
        """Fix the input standardisation (measured on the training images)."""
        self.standardise.mean.fill_(float(mean))
        self.standardise.std.fill_(max(float(std), 1e-6))


class PoolFirstTwin(nn.Module):
    """:meth:`DialectCNN.pool_first`: conv -> max-pool -> ReLU blocks on a DialectCNN's own modules."""

    def __init__(self, model: DialectCNN) -> None:
        super().__init__()
        self.config = model.config
        self.standardise = model.standardise
        self.features = nn.Sequential(*[nn.Sequential(block[0], block[2], block[1]) for block in model.features])
        self.classifier = model.classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(self.standardise(x)))


def fast_forward(model: nn.Module) -> nn.Module:
    """The model's pool-first twin when it has one (a :class:`DialectCNN`), else the model: for
    code that only needs its outputs or its training gradients."""
    return model.pool_first() if isinstance(model, DialectCNN) else model


def body_and_head(network: nn.Module) -> tuple[Callable[[torch.Tensor], torch.Tensor], nn.Module]:
    """A network split into its body (standardisation and convolutions) and its head (the dense
    layers): ``head(body(x))`` is ``network(x)`` for a :class:`DialectCNN` and its pool-first
    twin; any other network is all body, its head the identity."""
    if all(hasattr(network, name) for name in ("standardise", "features", "classifier")):
        return (lambda x: network.features(network.standardise(x))), network.classifier
    return network, nn.Identity()


def flops_per_image(config: ModelConfig, training: bool = True) -> int:
    """Floating-point operations of one image through the network by torch's FLOP counter
    (convolutions and matrix products; the network is built on the ``meta`` device, so nothing is
    computed): forward and backward when ``training``, forward only otherwise (the Performance
    page's arithmetic of the book's trainings)."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        twin = DialectCNN(config).pool_first()  # the twin fit() trains: the same convolutions
        x = torch.zeros(1, config.in_channels, config.image_height_px, config.image_width_px)
    # the standardisation (a median, no products) is left out: the meta device has no deterministic median
    network = nn.Sequential(twin.features, twin.classifier)
    with FlopCounterMode(display=False) as counter:
        if training:
            network(x).sum().backward()
        else:
            with torch.no_grad():
                network(x)
    return int(counter.get_total_flops())


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def layer_table(model: DialectCNN) -> "pandas.DataFrame":  # noqa: F821
    """One row per module that computes something: name, type, output shape, parameters."""
    import pandas as pd

    rows = []
    hooks = []
    for name, module in model.named_modules():
        if len(list(module.children())) == 0:
            def record(mod, _inputs, output, name=name):
                rows.append({"layer": name, "type": type(mod).__name__,
                             "output shape": tuple(output.shape[1:]),
                             "parameters": sum(p.numel() for p in mod.parameters())})
            hooks.append(module.register_forward_hook(record))
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, model.config.in_channels, model.config.image_height_px,
                                     model.config.image_width_px))
    finally:
        for hook in hooks:
            hook.remove()
    return pd.DataFrame(rows)
