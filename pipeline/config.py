"""params.yaml -> one frozen, typed config object.

This is the only module that reads params.yaml. Unknown keys, wrong types and out-of-range values
raise `PipelineError` naming the key, before any stage does work.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from pipeline.augment import AUGMENTATIONS
from pipeline.balance import TARGETS
from pipeline.errors import PipelineError
from pipeline.registries import (
    ADA_OPS, CLASSIFIERS, DIFFAUGMENTS, GAN_ARCHS, GAN_LOSSES, METHODS,
)
from pipeline.schema import FrozenDict, build
from pipeline.schema import check as _check
from pipeline.selection import SELECTION_RULES
from pipeline.variants import VARIANTS

DEVICES = ("auto", "cpu", "cuda")
# The choices of a params key are the names of the registry it selects from, in its order.
AugmentName = Literal[tuple(AUGMENTATIONS)]  # type: ignore[valid-type]
MethodName = Literal[tuple(METHODS)]  # type: ignore[valid-type]
ArchName = Literal[tuple(GAN_ARCHS)]  # type: ignore[valid-type]
LossName = Literal[tuple(GAN_LOSSES)]  # type: ignore[valid-type]
DiffAugmentName = Literal[tuple(DIFFAUGMENTS)]  # type: ignore[valid-type]
AdaOpName = Literal[tuple(ADA_OPS)]  # type: ignore[valid-type]
ClassifierName = Literal[tuple(CLASSIFIERS)]  # type: ignore[valid-type]
VariantName = Literal[tuple(VARIANTS)]  # type: ignore[valid-type]
ScoreName = Literal["typical", "real", "typical_real"]
TargetName = Literal[tuple(TARGETS)]  # type: ignore[valid-type]
SelectionName = Literal[tuple(SELECTION_RULES)]  # type: ignore[valid-type]
# Safe for every modality the pipeline targets (pipeline/augment.py says which others are safe).
DEFAULT_AUGMENT = ("translate", "brightness", "contrast")
MIN_KEEP_COUNT = 3  # prepare.keep_counts: the fewest training images a class may keep


@dataclass(frozen=True)
class DataConfig:
    # Where images come from:
    #   digits    scikit-learn's bundled 8x8 handwritten digits (no download)
    #   medmnist  a MedMNIST .npz (`path`), or `name` downloaded with the medmnist package
    #   folder    one subfolder per class (optionally under train/ val/ test/); PNG/JPEG/TIFF/BMP/DICOM
    #   csv       a manifest with columns path,label[,patient_id][,split]; paths relative to it
    source: Literal["digits", "medmnist", "folder", "csv"] = "digits"
    path: str | None = None
    name: str | None = None  # medmnist only: e.g. pneumoniamnist, when `path` is not set
    classes: tuple[str, ...] = ()  # optional: class names in label order
    workers: int = 0  # processes decoding image files (0 = one per CPU core)

    def __post_init__(self) -> None:
        if self.source in ("folder", "csv"):
            _check(bool(self.path), "data.path", f"is required for data.source {self.source}")
        if self.source == "medmnist":
            _check(bool(self.path or self.name), "data.path",
                   "is required for data.source medmnist (or set data.name to download one)")
        _check(len(set(self.classes)) == len(self.classes), "data.classes", "has duplicates")
        _check(self.workers >= 0, "data.workers", "must be >= 0")


@dataclass(frozen=True)
class PrepareConfig:
    # None: images keep their native size (they must all be the same square size, else the
    # stage stops and asks for this key); an int: every image is resized to image_size x image_size
    image_size: int | None = None
    channels: Literal[1, 3] = 1  # 1 = grayscale, 3 = RGB
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    # How the *training* split is made imbalanced (val and test are never touched):
    #   auto       long_tail on the digits demo (balanced by nature, so the demo simulates a rare
    #              class), none on every other source: a user's data is never thinned silently
    #   none       keep everything
    #   long_tail  class k (of K) keeps min_fraction ** (k / (K - 1)) of its images:
    #              class 0 keeps all, the last class keeps min_fraction
    #   fractions  class c keeps keep_fractions[c]; classes not listed keep all
    #   counts     class c keeps keep_counts[c] images (>= 3), a seeded nested subset: the 10
    #              kept are among the 25 kept; classes not listed keep all (the regime study)
    # A class is named by its label index or its name (data.classes, folder, CSV label).
    imbalance: Literal["auto", "none", "long_tail", "fractions", "counts"] = "auto"
    min_fraction: float = 0.08
    keep_fractions: FrozenDict[int | str, float] = field(default_factory=lambda: FrozenDict())
    keep_counts: FrozenDict[int | str, int] = field(default_factory=lambda: FrozenDict())
    on_bad_image: Literal["fail", "skip"] = "fail"  # unreadable/truncated/empty image files
    drop_duplicates: bool = False  # drop training images whose exact copy is in val or test

    def __post_init__(self) -> None:
        _check(self.image_size is None or 4 <= self.image_size <= 256, "prepare.image_size",
               "must be between 4 and 256, or null to keep the images' native size")
        _check(0 < self.val_fraction < 0.5, "prepare.val_fraction", "must be in (0, 0.5)")
        _check(0 < self.test_fraction < 0.5, "prepare.test_fraction", "must be in (0, 0.5)")
        _check(0 < self.min_fraction <= 1, "prepare.min_fraction", "must be in (0, 1]")
        for c, f in self.keep_fractions.items():
            _check(0 < f <= 1, f"prepare.keep_fractions.{c}", "must be in (0, 1]")
        for c, n in self.keep_counts.items():
            _check(n >= MIN_KEEP_COUNT, f"prepare.keep_counts.{c}",
                   f"must be >= {MIN_KEEP_COUNT} (class {c!r}: fewer images cannot train or "
                   "be scored)")
        if self.imbalance == "counts":
            _check(len(self.keep_counts) > 0, "prepare.keep_counts",
                   "must name at least one class when prepare.imbalance is counts, e.g. "
                   "{malignant: 25}")


@dataclass(frozen=True)
class FeaturesConfig:
    """The in-project feature extractor behind fid_domain, kid_domain, PRDC, TSTR and the
    memorization audit: a small CNN trained on the real training split (no downloaded weights).
    The same budget trains the TSTR classifier on synthetic images."""

    width: int = 32
    steps: int = 500
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4
    classifier: Literal["cnn"] = "cnn"  # of CLASSIFIERS, the one with a feature layer (feature_dim)
    augment: tuple[AugmentName, ...] = DEFAULT_AUGMENT  # classifier-side, pipeline/augment.py
    device: str = "auto"

    def __post_init__(self) -> None:
        _check(len(set(self.augment)) == len(self.augment), "features.augment", "has duplicates")
        for key in ("width", "steps"):
            _check(getattr(self, key) > 0, f"features.{key}", "must be > 0")
        _check(self.batch_size >= 2, "features.batch_size", "must be >= 2 (BatchNorm needs 2)")
        _check(self.lr > 0, "features.lr", "must be > 0")
        _check(self.device in DEVICES, "features.device", f"must be one of {', '.join(DEVICES)}")


@dataclass(frozen=True)
class TrainGanConfig:
    """The train_gan stage: which method (pipeline/registries.py METHODS) and the settings of the
    loop every method shares (pipeline/training/loop.py); the method's own are in its section."""

    method: MethodName = "dcgan"
    steps: int = 1500  # updates (a GAN: generator updates, each after its discriminator's)
    ema_decay: float = 0.999  # the model that samples is an EMA of the trained weights
    eval_every: int = 500  # quality metrics (fid_domain, ...) every N steps and at the end; 0 = end
    checkpoint_every: int = 250  # resumable training state every N steps and at the end
    log_every: int = 50
    device: str = "auto"

    def __post_init__(self) -> None:
        for key in ("steps", "log_every", "checkpoint_every"):
            _check(getattr(self, key) > 0, f"train_gan.{key}", "must be > 0")
        _check(self.eval_every >= 0, "train_gan.eval_every", "must be >= 0 (0 = only at the end)")
        _check(0 <= self.ema_decay < 1, "train_gan.ema_decay", "must be in [0, 1)")
        _check(self.device in DEVICES, "train_gan.device", f"must be one of {', '.join(DEVICES)}")


@dataclass(frozen=True)
class DcganConfig:
    """train_gan.method: dcgan (pipeline/synthesizers/dcgan.py): a conditional DCGAN (or the
    seed's MLP GAN) with a choice of losses, penalties and DiffAugment."""

    arch: ArchName = "dcgan"
    loss: LossName = "wgan-gp"
    latent_dim: int = 64
    width: int = 32  # channels of the finest conv layer / hidden units scale
    batch_size: int = 64
    lr_g: float = 1e-4
    lr_d: float = 1e-4
    betas: tuple[float, float] = (0.0, 0.9)
    spectral_norm: bool = False  # on every discriminator layer (WGAN-GP has its penalty)
    balanced_sampling: bool = True  # draw training batches uniformly over classes, not images
    diffaugment: tuple[DiffAugmentName, ...] = ()
    d_steps: int = 1  # discriminator (critic) updates per generator update; WGAN-GP uses 5
    gp_weight: float = 10.0  # loss wgan-gp: weight of the gradient penalty
    r1_gamma: float = 0.0  # R1 penalty on real images (0 = off), any loss
    # auto: bf16 autocast on GPUs that support it, fp32 on CPU | fp32 | bf16
    precision: Literal["auto", "fp32", "bf16"] = "auto"

    def __post_init__(self) -> None:
        for key in ("latent_dim", "width", "d_steps"):
            _check(getattr(self, key) > 0, f"dcgan.{key}", "must be > 0")
        _check(self.gp_weight >= 0, "dcgan.gp_weight", "must be >= 0")
        _check(self.r1_gamma >= 0, "dcgan.r1_gamma", "must be >= 0")
        _check(self.batch_size >= 2, "dcgan.batch_size", "must be >= 2 (BatchNorm needs 2)")
        _check(self.lr_g > 0 and self.lr_d > 0, "dcgan.lr_g/lr_d", "must be > 0")
        _check(all(0 <= b < 1 for b in self.betas), "dcgan.betas", "each must be in [0, 1)")


@dataclass(frozen=True)
class StyleGanConfig:
    """train_gan.method: stylegan (pipeline/synthesizers/stylegan.py): a style-based conditional
    generator with adaptive discriminator augmentation, after StyleGAN2-ADA's small-image
    (CIFAR) settings: short mapping network, no path-length regulariser."""

    width: int = 24  # channels at the finest resolution, doubling towards the coarsest (max 4x)
    latent_dim: int = 64
    batch_size: int = 64
    balanced_sampling: bool = True  # draw training batches uniformly over classes, not images
    mapping_layers: int = 2
    lr: float = 0.0025  # generator and discriminator (Adam)
    betas: tuple[float, float] = (0.0, 0.99)
    r1_gamma: float = 0.01  # R1 penalty weight on real images
    r1_every: int = 16  # lazy regularisation: R1 every N steps, scaled by N
    style_mixing: float = 0.9  # probability of mixing two latents' styles at a random layer
    ada: bool = True  # adapt the augmentation probability p from D's overfitting (r_t)
    ada_target: float = 0.6  # the r_t = E[sign(D(real))] that p steers towards
    ada_interval: int = 4  # adjust p every N steps
    ada_kimg: float = 20.0  # thousands of images over which p can move from 0 to 1
    ada_p: float = 0.0  # initial p (ada: true) or the fixed p (ada: false; 0 = no augmentation)
    augment: tuple[AdaOpName, ...] = tuple(ADA_OPS)
    truncation_psi: float = 1.0  # sampling: w -> class mean w + psi (w - class mean w); 1 = off

    def __post_init__(self) -> None:
        for key in ("width", "latent_dim", "mapping_layers", "r1_every", "ada_interval"):
            _check(getattr(self, key) > 0, f"stylegan.{key}", "must be > 0")
        _check(self.batch_size >= 2, "stylegan.batch_size", "must be >= 2 (minibatch stddev)")
        _check(self.lr > 0, "stylegan.lr", "must be > 0")
        _check(all(0 <= b < 1 for b in self.betas), "stylegan.betas", "each must be in [0, 1)")
        _check(self.r1_gamma >= 0, "stylegan.r1_gamma", "must be >= 0")
        _check(0 <= self.style_mixing <= 1, "stylegan.style_mixing", "must be in [0, 1]")
        _check(0 < self.ada_target < 1, "stylegan.ada_target", "must be in (0, 1), e.g. 0.6")
        _check(self.ada_kimg > 0, "stylegan.ada_kimg", "must be > 0")
        _check(0 <= self.ada_p < 1, "stylegan.ada_p", "must be in [0, 1)")
        _check(len(set(self.augment)) == len(self.augment), "stylegan.augment", "has duplicates")
        _check(0 <= self.truncation_psi <= 1, "stylegan.truncation_psi", "must be in [0, 1]")


@dataclass(frozen=True)
class CycleGanConfig:
    """train_gan.method: cyclegan (pipeline/synthesizers/cyclegan.py): majority -> minority
    translation; ResNet generators, PatchGAN discriminators, least-squares loss."""

    width: int = 16  # channels of the first generator / discriminator layer
    n_res: int = 2  # residual blocks in each generator
    lr: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    batch_size: int = 8  # per class pair
    cycle_weight: float = 10.0  # |F(G(a)) - a| + |G(F(b)) - b|
    identity_weight: float = 5.0  # |G(b) - b| + |F(a) - a| (keeps intensities)
    pool_size: int = 50  # image history buffer per discriminator (0 = none)

    def __post_init__(self) -> None:
        for key in ("width", "n_res", "batch_size"):
            _check(getattr(self, key) > 0, f"cyclegan.{key}", "must be > 0")
        _check(self.lr > 0, "cyclegan.lr", "must be > 0")
        _check(all(0 <= b < 1 for b in self.betas), "cyclegan.betas", "each must be in [0, 1)")
        for key in ("cycle_weight", "identity_weight"):
            _check(getattr(self, key) >= 0, f"cyclegan.{key}", "must be >= 0")
        _check(self.pool_size >= 0, "cyclegan.pool_size", "must be >= 0")


@dataclass(frozen=True)
class DiffusionConfig:
    """train_gan.method: diffusion (pipeline/synthesizers/diffusion.py): a class-conditional DDPM
    (small U-Net, cosine schedule, classifier-free guidance) sampled with deterministic DDIM."""

    width: int = 24  # U-Net channels at the finest resolution (x2 per coarser level, max 4x)
    batch_size: int = 64
    balanced_sampling: bool = True  # draw training batches uniformly over classes, not images
    lr: float = 2e-4
    betas: tuple[float, float] = (0.9, 0.999)
    timesteps: int = 1000  # noise levels of training (cosine schedule)
    label_dropout: float = 0.1  # share of training labels replaced by the null label (for CFG)
    guidance: float = 1.0  # sampling: eps_null + guidance (eps_y - eps_null); 1 = conditional
    sampling_steps: int = 25  # DDIM steps (eta = 0: deterministic) per image
    # auto: bf16 autocast on GPUs that support it, fp32 on CPU | fp32 | bf16
    precision: Literal["auto", "fp32", "bf16"] = "auto"

    def __post_init__(self) -> None:
        for key in ("width", "batch_size", "timesteps", "sampling_steps"):
            _check(getattr(self, key) > 0, f"diffusion.{key}", "must be > 0")
        _check(self.sampling_steps <= self.timesteps, "diffusion.sampling_steps",
               "must be <= diffusion.timesteps")
        _check(self.lr > 0, "diffusion.lr", "must be > 0")
        _check(all(0 <= b < 1 for b in self.betas), "diffusion.betas", "each must be in [0, 1)")
        _check(0 <= self.label_dropout < 1, "diffusion.label_dropout",
               "must be in [0, 1) (0: no guidance possible, 0.1 is usual)")
        _check(self.guidance >= 0, "diffusion.guidance", "must be >= 0 (1 = no guidance)")
        _check(self.guidance == 1 or self.label_dropout > 0, "diffusion.guidance",
               "needs diffusion.label_dropout > 0 (the unconditional model it extrapolates from)")


@dataclass(frozen=True)
class GenerateConfig:
    # Balance target per class:
    #   majority  every class up to the largest class's count
    #   count     every class up to `count` images
    #   ratio     every class up to ratio * the largest class's count
    target: TargetName = "majority"
    count: int = 0
    ratio: float = 1.0
    # Memorization audit (always measured): a synthetic image closer (in feature space) to a
    # training image than 99% of real validation images are (or an exact or near copy of one)
    # is "memorized"; true = draw a replacement.
    reject_memorized: bool = True
    # Quality gate: drop a synthetic image that the real-data classifier puts in another class with
    # at least this confidence, and draw a replacement (0 = off).
    quality_gate: float = 0.0
    # Sample selection: draw this many audited candidates per image shipped and keep the
    # best-scored; 1 = no selection. The candidates form the pool that evaluate's share sweep
    # draws from. The score (pipeline/synthesize.py):
    #   typical       real-data classifier probability x min(1, k-NN realism)
    #   real          cross-fitted probability that a real-vs-synthetic classifier takes the
    #                 image for real (pipeline/shortcut.py): selection by indistinguishability
    #   typical_real  the product of the two
    candidates_per_image: int = 4
    score: ScoreName = "real"
    batch_size: int = 512
    device: str = "auto"

    def __post_init__(self) -> None:
        _check(self.candidates_per_image >= 1, "generate.candidates_per_image",
               "must be >= 1 (1 = ship the first audited draws, no selection)")
        _check(0 <= self.quality_gate < 1, "generate.quality_gate",
               "must be in [0, 1) (0 = off; e.g. 0.9 drops confidently wrong-class samples)")
        if self.target == "count":
            _check(self.count > 0, "generate.count", "must be > 0 when generate.target is count")
        _check(self.ratio > 0, "generate.ratio", "must be > 0")
        _check(self.batch_size > 0, "generate.batch_size", "must be > 0")
        _check(self.device in DEVICES, "generate.device", f"must be one of {', '.join(DEVICES)}")


# The training sets evaluate compares by default (pipeline/variants.py declares them all); the
# gan* ones are evaluated once per `synthetic_ratios` entry, named e.g. gan@0.5.
DEFAULT_VARIANTS = ("real", "class_weight", "oversample", "smote", "gan", "gan_mix", "gan_pretrain")


@dataclass(frozen=True)
class EvaluateConfig:
    # Training sets compared, all with the same classifier, step budget and seeds:
    #   real              the imbalanced training split as it is
    #   real_noaug        real without classifier-side augmentation (what that augmentation adds)
    #   class_weight      real, with inverse-frequency class weights in the loss
    #   oversample        real, minority images repeated at random up to the majority count
    #   smote             real + SMOTE interpolations (imbalanced-learn, on flattened pixels)
    #   gan               real + the best-scored synthetic images, r x each class's real count
    #   gan_random        the same share drawn without selection (the first audited draws)
    #   gan_class_weight  gan, with inverse-frequency weights of the combined counts
    #   gan_pretrain      pretrain on a class-balanced synthetic set, fine-tune on real
    #   gan_real          gan, the share taken most-real-looking first (pipeline/shortcut.py)
    #   gan_mix           label-free mixing: EVERY class, the majority too, gets r x its real
    #                     count of synthetic images, with class weights for the real imbalance,
    #                     so "looks synthetic" says nothing about the label (numeric r only)
    #   gan_downweight    gan, each synthetic image weighted `synthetic_weight` in the loss
    variants: tuple[VariantName, ...] = DEFAULT_VARIANTS
    # gan, gan_random, gan_class_weight: one variant per entry; r adds r x its real count of
    # synthetic images to each class below the majority, capped at balance; `balance` fills up
    synthetic_ratios: tuple[float | Literal["balance"], ...] = (0.5, "balance")
    pretrain_fraction: float = 0.5  # gan_pretrain: share of `steps` spent on the synthetic set
    synthetic_weight: float = 0.5  # gan_downweight: loss weight of a synthetic image (real = 1)
    augment: tuple[AugmentName, ...] = DEFAULT_AUGMENT  # classifier-side, every variant alike
    classifier: ClassifierName = "cnn"
    # How the GAN configuration and the baseline are chosen on validation (pipeline/selection.py):
    #   one_se  the simplest variant within one paired standard error of the best (default)
    #   max     the highest validation balanced accuracy
    selection: SelectionName = "one_se"
    seeds: int = 3  # each variant is trained with seeds seed, seed+1, ...; metrics are seed means
    bootstrap: int = 1000  # resamples of the test set for the 95% intervals (0 = none)
    steps: int = 500  # optimizer steps per variant: the same budget whatever the training set size
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4
    width: int = 32
    device: str = "auto"

    def __post_init__(self) -> None:
        _check(len(self.variants) > 0, "evaluate.variants", "must list at least one variant")
        _check(len(set(self.variants)) == len(self.variants), "evaluate.variants", "has duplicates")
        _check(len(set(self.augment)) == len(self.augment), "evaluate.augment", "has duplicates")
        _check(len(self.synthetic_ratios) > 0, "evaluate.synthetic_ratios",
               "must list at least one ratio (e.g. [0.5, balance])")
        _check(len(set(self.synthetic_ratios)) == len(self.synthetic_ratios),
               "evaluate.synthetic_ratios", "has duplicates")
        _check(all(r == "balance" or r > 0 for r in self.synthetic_ratios),
               "evaluate.synthetic_ratios", "each must be > 0 or the word balance")
        _check(0 < self.synthetic_weight <= 1, "evaluate.synthetic_weight",
               "must be in (0, 1]: the loss weight of a synthetic image, a real one weighs 1")
        _check("gan_mix" not in self.variants
               or any(r != "balance" for r in self.synthetic_ratios), "evaluate.synthetic_ratios",
               "needs a number (e.g. 0.5) for gan_mix, which gives every class r x its real "
               "count; `balance` has no meaning there")
        _check(0 < self.pretrain_fraction < 1, "evaluate.pretrain_fraction",
               "must be in (0, 1): the rest of evaluate.steps fine-tunes on the real split")
        for key in ("steps", "width", "seeds"):
            _check(getattr(self, key) > 0, f"evaluate.{key}", "must be > 0")
        _check(self.bootstrap >= 0, "evaluate.bootstrap", "must be >= 0")
        _check(self.batch_size >= 2, "evaluate.batch_size", "must be >= 2 (BatchNorm needs 2)")
        _check(self.lr > 0, "evaluate.lr", "must be > 0")
        _check(self.device in DEVICES, "evaluate.device", f"must be one of {', '.join(DEVICES)}")


# export.format: `same` (the input's own kind) or one of the writers of pipeline/export/writers.py
# (tests/test_export.py checks that these are its names)
EXPORT_FORMATS = ("same", "folder", "csv", "npz")
ExportFormat = Literal[EXPORT_FORMATS]  # type: ignore[valid-type]


@dataclass(frozen=True)
class ExportConfig:
    # The augmented dataset (data/export): real training images + the synthetic images of the
    # configuration evaluate chose on validation, val and test beside them, and DATASHEET.md.
    #   same    the input's own kind: folder -> class subfolders of PNG, csv -> a CSV manifest
    #           with relative paths, medmnist (and the digits demo) -> a MedMNIST-style .npz
    #   folder  <split>/<class>/*.png (torchvision ImageFolder) + manifest.csv
    #   csv     images/<split>/*.png + dataset.csv (path,label,split[,patient_id], provenance)
    #   npz     dataset.npz with MedMNIST keys (train_images, train_labels, ...) + manifest.csv
    format: ExportFormat = "same"


@dataclass(frozen=True)
class Config:
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    prepare: PrepareConfig = field(default_factory=PrepareConfig)
    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    train_gan: TrainGanConfig = field(default_factory=TrainGanConfig)
    dcgan: DcganConfig = field(default_factory=DcganConfig)
    stylegan: StyleGanConfig = field(default_factory=StyleGanConfig)
    cyclegan: CycleGanConfig = field(default_factory=CycleGanConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    generate: GenerateConfig = field(default_factory=GenerateConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    digest: str = ""  # sha256 of the params file; groups the MLflow runs of one pipeline execution

    def __post_init__(self) -> None:
        # < 2**31: image seeds are seed * 2**32 + i and must stay within int64
        _check(0 <= self.seed < 2**31, "seed", "must be in [0, 2147483647]")


def load_config(path: str | Path = "params.yaml") -> Config:
    """Read and validate a params file. Raises PipelineError naming the offending key."""
    path = Path(path)
    if not path.is_file():
        raise PipelineError(f"{path}: params file not found; run from the project root")
    raw = path.read_bytes()
    try:
        data = yaml.safe_load(raw) or {}
    except yaml.YAMLError as e:
        raise PipelineError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise PipelineError(f"{path}: must be a mapping of sections (seed, data, prepare, ...)")
    cfg = parse_config(data, source=str(path))
    return dataclasses.replace(cfg, digest=hashlib.sha256(raw).hexdigest())


def parse_config(data: dict[str, Any], *, source: str = "params.yaml") -> Config:
    try:
        return build(Config, data, prefix="")
    except PipelineError as e:
        raise PipelineError(f"{source}: {e}") from None
