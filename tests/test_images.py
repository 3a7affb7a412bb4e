"""The image dataset the CNN reads."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader

from wrenlib.frontend import PAPER_FRONT_END, assign_backgrounds
from wrenlib.images import SpectrogramDataset, render_level_cache


def _dataset(small_dataset, background="mixed"):
    front = PAPER_FRONT_END.with_image_size(60, 120)
    levels = render_level_cache(small_dataset.waveforms, front, progress=False)
    return SpectrogramDataset(levels, small_dataset.clips, assign_backgrounds(len(levels), background, 0),
                              front, small_dataset)


def test_items_carry_image_label_metadata_and_aligned_masks(small_dataset):
    dataset = _dataset(small_dataset)
    image, label, meta, masks = dataset[3]
    assert image.shape == (1, 60, 120) and image.dtype == torch.float32
    assert label == small_dataset.clips.loc[3, "label"]
    assert meta["individual"] == small_dataset.clips.loc[3, "individual"]
    assert set(masks) == {"diagnostic", "song"}
    diagnostic = masks["diagnostic"].numpy()
    assert diagnostic.any() and not (diagnostic & ~masks["song"].numpy()).any()
    # the mask marks song energy: on a black image, mask pixels are brighter than the rest
    black = dataset.with_background("black")
    picture = black.image(3)
    assert picture[diagnostic].mean() > picture[~masks["song"].numpy()].mean() + 0.03
    assert picture[diagnostic].max() > 0.2


def test_stacked_masks_are_each_clips_own_mask_rendered_alone(small_dataset, monkeypatch):
    """The stack is pooled a batch at a time; it must be each clip's mask as one clip alone gives
    it, under either pixel rule, and a mask the clips lack is named."""
    import pytest

    from wrenlib import frontend
    from wrenlib.frontend import render_mask

    dataset = _dataset(small_dataset)
    clips = [5, 0, 3, 3] * 5  # 20: more than one batch of 16
    for name in ("diagnostic", "song"):
        alone = np.stack([dataset.masks(i)[name] for i in clips])
        assert np.array_equal(dataset.stacked_masks(clips, name), alone)
        grids = np.stack([getattr(small_dataset, f"{name}_mask")(int(dataset.clips.loc[i, "clip"])) for i in clips])
        strict = render_mask(grids, dataset.front_end, "majority")
        assert np.array_equal(strict, np.stack([render_mask(g, dataset.front_end, "majority") for g in grids]))
        monkeypatch.setattr(frontend, "MASK_BATCH_BYTES", 3 * 4 * grids[0].size)  # batches of 3 grids, one of 2
        assert np.array_equal(render_mask(grids, dataset.front_end, "majority"), strict)
        assert strict.sum() < alone.sum()  # "any" marks a pixel wherever "majority" does, and more
    assert dataset.stacked_masks([], "song").shape == (0, 60, 120)
    with pytest.raises(ValueError, match="no 'confound' mask here; the clips have diagnostic, song"):
        dataset.stacked_masks(clips, "confound")


def test_backgrounds_share_one_cache(small_dataset):
    black, white = _dataset(small_dataset, "black"), _dataset(small_dataset, "white")
    np.testing.assert_allclose(white.image(0), 1 - black.image(0), atol=1e-6)


def test_subset_keeps_whole_birds_and_loader_batches(small_dataset):
    dataset = _dataset(small_dataset)
    test = dataset.subset("test")
    assert set(test.clips["split"]) == {"test"}
    dataset.with_masks = False
    images, labels, meta, masks = next(iter(DataLoader(dataset, batch_size=4)))
    assert images.shape == (4, 1, 60, 120) and labels.shape == (4,) and masks == {}
    assert len(meta["individual"]) == 4


def test_profile_image_dataset_is_rendered_once_and_cached(isolated_artifacts, monkeypatch):
    from wrenlib import profiles
    from wrenlib.cache import profile_dir
    from wrenlib.images import load_spectrogram_dataset

    monkeypatch.setitem(profiles.PROFILES, "tiny", profiles.Profile("tiny", 2, 2, 30, 60))
    first = load_spectrogram_dataset("tiny", background="white")
    levels_file = profile_dir("tiny") / "images_30x60" / "levels.npy"
    stamp = levels_file.stat().st_mtime_ns
    second = load_spectrogram_dataset("tiny", background="black")
    assert levels_file.stat().st_mtime_ns == stamp
    np.testing.assert_allclose(first.image(1), 1 - second.image(1), atol=1e-6)
    assert len(first) == 8 and first[0][0].shape == (1, 30, 60)


def test_training_batches_cross_to_the_device_as_bytes_and_become_the_images_there(small_dataset):
    """The training loader copies the 8-bit levels to the model's device and converts them there
    (a copy that converts on the way converts on the CPU, four times the bytes): the only copy
    between devices carries uint8, and the batches are the dataset's images with their labels."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    from wrenlib.training import batches

    dataset = _dataset(small_dataset, "mixed")
    indices = np.arange(6)
    cpu = list(batches(dataset, indices, 4))
    np.testing.assert_array_equal(torch.cat([images for images, _ in cpu])[:, 0].numpy(), dataset.images(indices))
    assert torch.cat([labels for _, labels in cpu]).tolist() == np.asarray(dataset.labels)[indices].tolist()

    crossings, waits = [], []

    class Copies(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            if func is torch.ops.aten._to_copy.default and kwargs.get("device") == torch.device("meta"):
                waits.append(not kwargs.get("non_blocking", False))  # a blocking copy waits for the GPU
                if args[0].dim() == 3:  # the levels (N, H, W) going to the device
                    crossings.append(kwargs.get("dtype") or args[0].dtype)
            return func(*args, **kwargs)

    with Copies():
        on_device = list(batches(dataset, indices, 4, device="meta"))  # a device without data: shapes only
    assert crossings == [torch.uint8, torch.uint8]
    assert len(waits) == 6 and not any(waits)  # levels, backgrounds, labels per batch: none waits
    assert on_device[0][0].dtype == torch.float32 and on_device[0][0].shape == (4, 1, *dataset.image(0).shape)


def test_a_split_keeps_its_clips_backgrounds_and_levels_map_onto_the_full_range(small_dataset):
    """subset() keeps each clip's own background (a mixed set's test images are those of the whole
    set); with_background's seed draws them; level 255 is 1.0 exactly, and storing rounds."""
    from wrenlib.images import levels_to_uint8

    data = _dataset(small_dataset)
    test = data.split_indices("test")
    part = data.subset("test")
    np.testing.assert_array_equal(part.backgrounds, data.backgrounds[test])
    np.testing.assert_array_equal(part.image(0), data.image(int(test[0])))
    assert not np.array_equal(data.with_background("mixed", 1).backgrounds, data.with_background("mixed", 2).backgrounds)
    bright = SpectrogramDataset(np.full((1, 8, 8), 255, np.uint8), small_dataset.clips.iloc[:1],
                                np.array(["black"]), PAPER_FRONT_END.with_image_size(8, 8), None, with_masks=False)
    assert bright.image(0).max() == 1.0
    assert levels_to_uint8(np.array([0.5, 0.999])).tolist() == [128, 255]
