"""`DataConfig`: the [data] section of a training config, every field with a default."""

from __future__ import annotations

from dataclasses import dataclass, fields

from ..errors import ReslabError

FORMATS = ("auto", "folder", "cifar", "mnist", "csv")
AUGMENTS = ("imagenet_paper", "rrc", "cifar_paper", "none")
EVAL_SPLITS = ("auto", "val", "test", "holdout", "none")
IN_MEMORY = ("auto", "yes", "no")
PAD_MODES = ("zeros", "reflect")


@dataclass(frozen=True)
class DataConfig:
    path: str = ""  # image folder / cifar-10-batches-py dir / IDX dir / CSV file
    format: str = "auto"  # auto | folder | cifar | mnist | csv
    val_fraction: float = 0.0  # seeded, class-stratified hold-out from train when > 0 (0.1 = the paper's 45k/5k)
    auto_holdout: float = 0.0  # when the data has no val/ or test/ split: hold out this fraction per class (seeded by split_seed)
    split_seed: int = 0  # seeds the hold-out and limit_per_class, independent of the training seed
    eval_split: str = "auto"  # auto | val | test | holdout | none; auto = holdout if val_fraction > 0, else val, else test
    augment: str = "cifar_paper"  # imagenet_paper | rrc | cifar_paper | none
    image_size: int = 32  # training crop, pixels
    eval_resize: int = 0  # shorter side before the centre crop at evaluation; 0 = image_size (CIFAR); 256 for 224 crops
    scale_min: int = 256  # imagenet_paper: shorter side drawn in [scale_min, scale_max] pixels
    scale_max: int = 480
    rrc_scale: tuple[float, float] = (0.08, 1.0)  # rrc: crop area as a fraction of the image
    rrc_ratio: tuple[float, float] = (3 / 4, 4 / 3)  # rrc: crop aspect ratio range
    cifar_pad: int = 4  # cifar_paper: padding on each side, pixels (the crop moves up to this far)
    pad_mode: str = "zeros"  # cifar_paper: zeros (the paper) | reflect (mirror the border, as airbench)
    hflip: bool = True  # random horizontal flips in every training augmentation
    alternate_flip: bool = False  # hflip: each image mirrored in every other epoch (a random half in even epochs,
    # the other half in odd ones) rather than by a coin per epoch: airbench's flip, in-memory data only
    color_jitter: float = 0.0  # brightness/contrast/saturation factors drawn in [1 - x, 1 + x]
    pca_lighting: float = 0.0  # AlexNet PCA colour augmentation std (0.1 in AlexNet and the ResNet paper)
    random_erasing: float = 0.0  # probability per image of erasing one random rectangle (Zhong et al. 2017; 0.25 in DeiT)
    hue: float = 0.0  # hue rotation drawn in [-hue, hue] turns (torchvision ColorJitter's hue; SimCLR: 0.1)
    jitter_p: float = 1.0  # probability that an image gets colour jitter (color_jitter, hue); SimCLR: 0.8
    grayscale_p: float = 0.0  # probability that an image is turned grey (3 channels kept); SimCLR: 0.2
    blur_p: tuple[float, ...] = (0.0,)  # Gaussian blur probability, one value or one per view (BYOL: [1.0, 0.1])
    solarize_p: tuple[float, ...] = (0.0,)  # solarization probability, one value or one per view (BYOL: [0.0, 0.2])
    views: int = 1  # 2: two independent augmentations of every image (self-supervised methods)
    labelled: bool = True  # false: a folder's images at any depth, class folders or not, as one class (self-supervised)
    mean: tuple[float, ...] = ()  # () = per-channel mean of the training set when in memory, else ImageNet's
    std: tuple[float, ...] = ()
    channels: int = 3  # 1 for grayscale models; grayscale data is replicated to 3 channels when channels=3
    in_memory: str = "auto"  # auto | yes | no; auto: arrays, and folders of small equal-sized images (<= max_in_memory_gb)
    max_in_memory_gb: float = 2.0  # decoded uint8 size above which auto does not decode into memory
    workers: int = -1  # decode worker processes; -1 = one per available core (max 8); 0 = in the main process
    eval_batch_size: int = 0  # 0 = the training batch size
    max_bad_fraction: float = 0.01  # abort once more than this fraction of files cannot be decoded
    limit_per_class: int = 0  # > 0: a seeded subset of that many training images per class (quick experiments)
    eval_limit_per_class: int = 0  # > 0: a seeded subset of that many evaluation images per class (quick experiments)
    cache_decoded: bool = True  # keep decoded in-memory folders under ~/.cache/reslab/decoded (RESLAB_CACHE)

    def __post_init__(self):
        # TOML gives lists; the dataclass is frozen and hashable, so store tuples.
        for name in ("mean", "std", "rrc_scale", "rrc_ratio", "blur_p", "solarize_p"):
            value = getattr(self, name)
            if isinstance(value, (list, int, float)):
                values = value if isinstance(value, list) else [value]
                object.__setattr__(self, name, tuple(float(v) for v in values))
        if isinstance(self.in_memory, bool):
            object.__setattr__(self, "in_memory", "yes" if self.in_memory else "no")
        _check_choice("format", self.format, FORMATS)
        _check_choice("augment", self.augment, AUGMENTS)
        _check_choice("eval_split", self.eval_split, EVAL_SPLITS)
        _check_choice("in_memory", self.in_memory, IN_MEMORY)
        _check_choice("pad_mode", self.pad_mode, PAD_MODES)
        if self.cifar_pad < 0:
            raise ReslabError(f"data.cifar_pad must be >= 0, got {self.cifar_pad}")
        if self.alternate_flip and self.in_memory == "no":
            raise ReslabError("data.alternate_flip needs in-memory data; set data.in_memory=auto or yes, or alternate_flip=false")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ReslabError(f"data.val_fraction must be in [0, 1), got {self.val_fraction}; use e.g. 0.1")
        if not 0.0 <= self.auto_holdout < 1.0:
            raise ReslabError(f"data.auto_holdout must be in [0, 1), got {self.auto_holdout}; use e.g. 0.2")
        if self.channels not in (1, 3):
            raise ReslabError(f"data.channels must be 1 or 3, got {self.channels}")
        if self.image_size < 1 or self.eval_resize < 0:
            raise ReslabError(f"data.image_size must be >= 1 and eval_resize >= 0, got {self.image_size} and {self.eval_resize}")
        if self.eval_resize and self.eval_resize < self.image_size:
            raise ReslabError(
                f"data.eval_resize ({self.eval_resize}) is smaller than image_size ({self.image_size}); "
                "the centre crop would not fit: use eval_resize >= image_size or 0"
            )
        if self.augment == "imagenet_paper" and not self.image_size <= self.scale_min <= self.scale_max:
            raise ReslabError(
                f"data.scale_min/scale_max ({self.scale_min}, {self.scale_max}) must satisfy "
                f"image_size <= scale_min <= scale_max; the paper uses 256 and 480 for 224 crops"
            )
        for name in ("mean", "std"):
            value = getattr(self, name)
            if value and len(value) not in (1, self.channels):
                raise ReslabError(f"data.{name} has {len(value)} values; give {self.channels} (one per channel) or none")
        if not 0.0 <= self.random_erasing <= 1.0:
            raise ReslabError(f"data.random_erasing is a probability in [0, 1], got {self.random_erasing}; DeiT uses 0.25")
        if self.views not in (1, 2):
            raise ReslabError(f"data.views must be 1 or 2 (two views for self-supervised methods), got {self.views}")
        for name in ("jitter_p", "grayscale_p", *(("blur_p", "solarize_p"))):
            values = getattr(self, name)
            values = values if isinstance(values, tuple) else (values,)
            if not values or any(not 0.0 <= v <= 1.0 for v in values):
                raise ReslabError(f"data.{name} must be probabilities in [0, 1], got {getattr(self, name)}")
        for name in ("blur_p", "solarize_p"):
            if len(getattr(self, name)) not in (1, self.views):
                raise ReslabError(f"data.{name} has {len(getattr(self, name))} values; give one, or one per view ({self.views})")
        if not 0.0 <= self.hue <= 0.5:
            raise ReslabError(f"data.hue must be in [0, 0.5] turns of the colour wheel, got {self.hue}; SimCLR uses 0.1")
        if not 0.0 <= self.max_bad_fraction <= 1.0:
            raise ReslabError(f"data.max_bad_fraction must be in [0, 1], got {self.max_bad_fraction}")

    @property
    def resolved_eval_resize(self) -> int:
        return self.eval_resize or self.image_size

    def view_p(self, name: str, view: int) -> float:
        """A per-view probability (blur_p, solarize_p): its value for `view`, or the one value for all."""
        values = getattr(self, name)
        return values[view] if len(values) > 1 else values[0]

    @classmethod
    def from_dict(cls, d: dict) -> "DataConfig":
        """Build from a TOML table; an unknown key is a ReslabError naming the valid ones."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ReslabError(f"unknown [data] key(s) {', '.join(unknown)}; valid keys are {', '.join(sorted(known))}")
        return cls(**d)


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ReslabError(f"data.{name} is '{value}'; choose one of {', '.join(choices)}")
