"""pipeline/config.py: params.yaml -> one frozen, typed Config; every user mistake names its key."""

from __future__ import annotations

import dataclasses
import hashlib
import typing
from pathlib import Path

import pytest
import yaml

from conftest import REPO
from pipeline.augment import AUGMENTATIONS
from pipeline.balance import TARGETS
from pipeline.config import (
    DEFAULT_VARIANTS,
    Config,
    PrepareConfig,
    DcganConfig,
    TrainGanConfig,
    load_config,
    parse_config,
)
from pipeline.errors import PipelineError
from pipeline.gan.diffaugment import AUGMENTS
from pipeline.gan.losses import LOSSES
from pipeline.models.ada import ADA_OPS
from pipeline.models.classifier import CLASSIFIERS
from pipeline.models.dcgan import GAN_ARCHS
from pipeline.schema import as_flat_dict
from pipeline.synthesizers.registry import METHODS
from pipeline.variants import VARIANTS


def load_text(tmp_path: Path, text: str) -> Config:
    path = tmp_path / "params.yaml"
    path.write_text(text)
    return load_config(path)


def error_for(tmp_path: Path, text: str) -> str:
    with pytest.raises(PipelineError) as e:
        load_text(tmp_path, text)
    return str(e.value)


def test_repo_params_load_cleanly() -> None:
    path = REPO / "params.yaml"
    cfg = load_config(path)
    raw = yaml.safe_load(path.read_text())
    assert set(raw) == {f.name for f in dataclasses.fields(Config)} - {"digest"}
    for section, values in raw.items():
        if not isinstance(values, dict):
            assert getattr(cfg, section) == values
            continue
        for key, value in values.items():
            got = getattr(getattr(cfg, section), key)
            if isinstance(got, tuple):
                value = tuple(value)
            if isinstance(got, float):
                value = float(value)  # ints and '2e-4'-style strings become floats
            assert got == value, f"{section}.{key}"
    assert isinstance(cfg.dcgan.lr_g, float)
    assert isinstance(cfg.dcgan.betas, tuple) and len(cfg.dcgan.betas) == 2
    assert cfg.digest == hashlib.sha256(path.read_bytes()).hexdigest()


def test_empty_file_gives_the_documented_defaults(tmp_path: Path) -> None:
    cfg = load_text(tmp_path, "")
    assert dataclasses.replace(cfg, digest="") == Config()
    assert cfg.seed == 0
    assert (cfg.train_gan.steps, cfg.dcgan.width, cfg.train_gan.ema_decay) == (1500, 32, 0.999)
    assert (cfg.dcgan.loss, cfg.dcgan.spectral_norm) == ("wgan-gp", False)
    assert (cfg.prepare.val_fraction, cfg.prepare.min_fraction) == (0.15, 0.08)
    # a user's data keeps its native size and its own class counts unless asked otherwise
    assert (cfg.prepare.image_size, cfg.prepare.imbalance) == (None, "auto")
    assert (cfg.generate.target, cfg.generate.ratio) == ("majority", 1.0)
    assert cfg.generate.batch_size == 512
    assert (cfg.evaluate.steps, cfg.evaluate.variants) == (500, DEFAULT_VARIANTS)
    assert cfg.evaluate.synthetic_ratios == (0.5, "balance")
    assert cfg.evaluate.augment == cfg.features.augment == ("translate", "brightness", "contrast")
    assert cfg.generate.candidates_per_image == 4
    assert (cfg.evaluate.seeds, cfg.evaluate.classifier) == (3, "cnn")


def test_a_partial_section_keeps_the_other_defaults(tmp_path: Path) -> None:
    cfg = load_text(tmp_path, "seed: 7\ntrain_gan:\n  steps: 7\n"
                              "dcgan:\n  diffaugment: [translation, color]\n")
    assert cfg.seed == 7
    assert cfg.train_gan.steps == 7
    assert cfg.dcgan.diffaugment == ("translation", "color")
    assert cfg.dcgan.batch_size == DcganConfig().batch_size
    assert cfg.train_gan == dataclasses.replace(TrainGanConfig(), steps=7)
    assert cfg.prepare == PrepareConfig()


def test_digest_is_the_sha256_of_the_file_bytes(tmp_path: Path) -> None:
    a = load_text(tmp_path, "seed: 1\n")
    b = load_text(tmp_path, "seed: 1  # same settings, different bytes\n")
    assert a.digest == hashlib.sha256(b"seed: 1\n").hexdigest()
    assert a.digest != b.digest
    assert dataclasses.replace(a, digest="") == dataclasses.replace(b, digest="")


@pytest.mark.parametrize(("text", "key", "allowed"), [
    ("sed: 1\n", "sed", "seed"),
    ("train_gan:\n  stepz: 3\n", "train_gan.stepz", "steps"),
    ("prepare:\n  imbalanse: none\n", "prepare.imbalanse", "imbalance"),
    ("evaluate:\n  steps: 5\n  lrate: 0.1\n", "evaluate.lrate", "lr"),
    ("data:\n  root: /tmp\n", "data.root", "path"),
])
def test_unknown_keys_are_errors_naming_the_key(
    tmp_path: Path, text: str, key: str, allowed: str
) -> None:
    msg = error_for(tmp_path, text)
    assert msg.startswith(f"{tmp_path / 'params.yaml'}: {key}: unknown key")
    assert allowed in msg.split("allowed keys here:")[1]


@pytest.mark.parametrize(("text", "expected"), [
    ("train_gan:\n  steps: many\n", "train_gan.steps: expected int, got 'many' (str)"),
    ("train_gan:\n  steps: true\n", "train_gan.steps: expected int, got True (bool)"),
    ("seed: 1.5\n", "seed: expected int, got 1.5 (float)"),
    ("seed: null\n", "seed: expected int, got None"),
    ("dcgan:\n  lr_g: [1, 2]\n", "dcgan.lr_g: expected float, got [1, 2] (list)"),
    ("dcgan:\n  lr_d: fast\n", "dcgan.lr_d: expected float, got 'fast' (str)"),
    ("generate:\n  ratio: false\n", "generate.ratio: expected float, got False (bool)"),
    ("dcgan:\n  spectral_norm: 1\n", "dcgan.spectral_norm: expected bool, got 1 (int)"),
    ("dcgan:\n  betas: [0.5]\n", "dcgan.betas: expected a list of 2 values"),
    ("dcgan:\n  betas: [0.5, fast]\n", "dcgan.betas[1]: expected float"),
    ("train_gan: 3\n", "train_gan: expected a mapping, got 3 (int)"),
    ("prepare:\n  keep_fractions: [0.5]\n", "prepare.keep_fractions: expected a mapping"),
    ("prepare:\n  keep_fractions: {1.5: 0.5}\n", "prepare.keep_fractions key: expected str, got 1.5"),
    ("prepare:\n  keep_fractions: {1: half}\n", "prepare.keep_fractions.1: expected float"),
    ("data:\n  path: 3\n", "data.path: expected str, got 3 (int)"),
    ("evaluate:\n  variants: real\n", "evaluate.variants: expected a list, got 'real' (str)"),
    ("train_gan:\n  device: 0\n", "train_gan.device: expected str, got 0 (int)"),
])
def test_wrong_types_are_errors_naming_the_key(tmp_path: Path, text: str, expected: str) -> None:
    assert expected in error_for(tmp_path, text)


def names(registry: dict) -> str:
    return ", ".join(registry)


@pytest.mark.parametrize(("text", "key", "allowed"), [
    ("dcgan:\n  arch: gan\n", "dcgan.arch: 'gan' (str)", names(GAN_ARCHS)),
    ("dcgan:\n  loss: wgan\n", "dcgan.loss: 'wgan' (str)", names(LOSSES)),
    ("train_gan:\n  method: gan2\n", "train_gan.method: 'gan2' (str)", names(METHODS)),
    ("prepare:\n  channels: 2\n", "prepare.channels: 2 (int)", "1, 3"),
    ("prepare:\n  channels: true\n", "prepare.channels: True (bool)", "1, 3"),
    ("prepare:\n  imbalance: extreme\n", "prepare.imbalance: 'extreme' (str)",
     "auto, none, long_tail, fractions"),
    ("generate:\n  target: all\n", "generate.target: 'all' (str)", names(TARGETS)),
    ("data:\n  source: webcam\n", "data.source: 'webcam' (str)", "digits"),
    ("dcgan:\n  diffaugment: [translation, flip]\n", "dcgan.diffaugment[1]: 'flip' (str)",
     names(AUGMENTS)),
    ("stylegan:\n  augment: [xflip, cutout]\n", "stylegan.augment[1]: 'cutout' (str)",
     names(ADA_OPS)),
    ("evaluate:\n  variants: [real, smot]\n", "evaluate.variants[1]: 'smot' (str)",
     names(VARIANTS)),
    ("evaluate:\n  classifier: vit\n", "evaluate.classifier: 'vit' (str)", names(CLASSIFIERS)),
    ("evaluate:\n  synthetic_ratios: [0.5, all]\n", "evaluate.synthetic_ratios[1]: 'all' (str)",
     "balance"),
    ("evaluate:\n  augment: [translate, mixup]\n", "evaluate.augment[1]: 'mixup' (str)",
     names(AUGMENTATIONS)),
])
def test_values_outside_a_choice_list_the_allowed_values(
    tmp_path: Path, text: str, key: str, allowed: str
) -> None:
    msg = error_for(tmp_path, text)
    assert f"{key} is not allowed; choose one of: {allowed}" in msg


@pytest.mark.parametrize(("text", "expected"), [
    ("prepare:\n  image_size: 2\n", "prepare.image_size: must be between 4 and 256"),
    ("prepare:\n  image_size: 512\n", "prepare.image_size: must be between 4 and 256"),
    ("prepare:\n  val_fraction: 0.5\n", "prepare.val_fraction: must be in (0, 0.5)"),
    ("prepare:\n  test_fraction: 0\n", "prepare.test_fraction: must be in (0, 0.5)"),
    ("prepare:\n  min_fraction: 0\n", "prepare.min_fraction: must be in (0, 1]"),
    ("prepare:\n  min_fraction: 1.5\n", "prepare.min_fraction: must be in (0, 1]"),
    ("prepare:\n  keep_fractions: {3: 0}\n", "prepare.keep_fractions.3: must be in (0, 1]"),
    ("train_gan:\n  steps: 0\n", "train_gan.steps: must be > 0"),
    ("evaluate:\n  synthetic_ratios: [0.5, -1]\n",
     "evaluate.synthetic_ratios: each must be > 0 or the word balance"),
    ("evaluate:\n  synthetic_ratios: []\n", "evaluate.synthetic_ratios: must list at least one"),
    ("evaluate:\n  synthetic_ratios: [1, 1.0]\n", "evaluate.synthetic_ratios: has duplicates"),
    ("evaluate:\n  pretrain_fraction: 1\n", "evaluate.pretrain_fraction: must be in (0, 1)"),
    ("evaluate:\n  augment: [hflip, hflip]\n", "evaluate.augment: has duplicates"),
    ("generate:\n  candidates_per_image: 0\n", "generate.candidates_per_image: must be >= 1"),
    ("dcgan:\n  width: -8\n", "dcgan.width: must be > 0"),
    ("dcgan:\n  batch_size: 0\n", "dcgan.batch_size: must be >= 2"),
    ("dcgan:\n  latent_dim: 0\n", "dcgan.latent_dim: must be > 0"),
    ("train_gan:\n  log_every: 0\n", "train_gan.log_every: must be > 0"),
    ("dcgan:\n  lr_d: 0\n", "lr_d: must be > 0"),
    ("dcgan:\n  betas: [0.5, 1.0]\n", "dcgan.betas: each must be in [0, 1)"),
    ("train_gan:\n  ema_decay: 1.0\n", "train_gan.ema_decay: must be in [0, 1)"),
    ("train_gan:\n  device: tpu\n", "train_gan.device: must be one of auto, cpu, cuda"),
    ("dcgan:\n  d_steps: 0\n", "dcgan.d_steps: must be > 0"),
    ("train_gan:\n  checkpoint_every: 0\n", "train_gan.checkpoint_every: must be > 0"),
    ("train_gan:\n  eval_every: -1\n", "train_gan.eval_every: must be >= 0 (0 = only at the end)"),
    ("dcgan:\n  gp_weight: -1\n", "dcgan.gp_weight: must be >= 0"),
    ("dcgan:\n  r1_gamma: -0.5\n", "dcgan.r1_gamma: must be >= 0"),
    ("features:\n  steps: 0\n", "features.steps: must be > 0"),
    ("features:\n  batch_size: 1\n", "features.batch_size: must be >= 2"),
    ("features:\n  classifier: resnet18\n", "features.classifier: 'resnet18' (str) is not allowed"),
    ("generate:\n  quality_gate: 1.0\n", "generate.quality_gate: must be in [0, 1)"),
    ("generate:\n  reject_memorized: 1\n", "generate.reject_memorized: expected bool, got 1 (int)"),
    ("generate:\n  target: count\n", "generate.count: must be > 0 when generate.target is count"),
    ("generate:\n  ratio: 0\n", "generate.ratio: must be > 0"),
    ("generate:\n  batch_size: 0\n", "generate.batch_size: must be > 0"),
    ("generate:\n  device: gpu\n", "generate.device: must be one of auto, cpu, cuda"),
    ("evaluate:\n  variants: []\n", "evaluate.variants: must list at least one variant"),
    ("evaluate:\n  variants: [real, real]\n", "evaluate.variants: has duplicates"),
    ("evaluate:\n  steps: 0\n", "evaluate.steps: must be > 0"),
    ("evaluate:\n  lr: 0\n", "evaluate.lr: must be > 0"),
    ("evaluate:\n  device: metal\n", "evaluate.device: must be one of auto, cpu, cuda"),
])
def test_out_of_range_values_are_errors_naming_the_key(
    tmp_path: Path, text: str, expected: str
) -> None:
    assert expected in error_for(tmp_path, text)


def test_count_is_only_checked_when_it_is_the_target(tmp_path: Path) -> None:
    assert load_text(tmp_path, "generate:\n  target: majority\n  count: 0\n").generate.count == 0
    assert load_text(tmp_path, "generate:\n  target: count\n  count: 50\n").generate.count == 50


def test_exponent_floats_that_yaml_reads_as_strings_are_accepted(tmp_path: Path) -> None:
    # PyYAML (YAML 1.1) reads 2e-4 without a dot as the *string* '2e-4'.
    cfg = load_text(tmp_path, "dcgan:\n  lr_g: 2e-4\n  lr_d: 1e-3\nevaluate:\n  lr: 5e-4\n")
    assert isinstance(cfg.dcgan.lr_g, float) and cfg.dcgan.lr_g == 2e-4
    assert cfg.dcgan.lr_d == 1e-3
    assert cfg.evaluate.lr == 5e-4


def test_ints_are_accepted_where_floats_are_expected(tmp_path: Path) -> None:
    cfg = load_text(tmp_path, "generate:\n  ratio: 2\nprepare:\n  keep_fractions: {9: 1}\n")
    assert isinstance(cfg.generate.ratio, float) and cfg.generate.ratio == 2.0
    assert cfg.prepare.keep_fractions == {9: 1.0}
    assert isinstance(cfg.prepare.keep_fractions[9], float)


def test_keep_fractions_keys_are_class_ids(tmp_path: Path) -> None:
    cfg = load_text(tmp_path,
                    "prepare:\n  imbalance: fractions\n  keep_fractions: {1: 0.5, 9: 0.1}\n")
    assert cfg.prepare.keep_fractions == {1: 0.5, 9: 0.1}


def test_missing_file_is_an_error_saying_where_to_run(tmp_path: Path) -> None:
    with pytest.raises(PipelineError, match="params file not found; run from the project root"):
        load_config(tmp_path / "nope.yaml")


@pytest.mark.parametrize(("text", "expected"), [
    ("seed: [unclosed\n", "not valid YAML"),
    ("- seed\n- data\n", "must be a mapping of sections"),
])
def test_unreadable_files_are_errors(tmp_path: Path, text: str, expected: str) -> None:
    assert expected in error_for(tmp_path, text)


def test_config_is_frozen() -> None:
    cfg = load_config(REPO / "params.yaml")
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.seed = 1  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.train_gan.steps = 1  # type: ignore[misc]


def test_config_values_cannot_be_changed_after_loading() -> None:
    cfg = load_config(REPO / "params.yaml")
    with pytest.raises((AttributeError, TypeError)):
        cfg.evaluate.variants.append("gan")
    hash(cfg)


def test_digest_is_not_a_settable_key(tmp_path: Path) -> None:
    assert "digest: unknown key" in error_for(tmp_path, "digest: abc\nseed: 1\n")


def test_float_is_not_accepted_for_an_int_choice(tmp_path: Path) -> None:
    assert "prepare.channels" in error_for(tmp_path, "prepare:\n  channels: 3.0\n")


def test_negative_seed_is_rejected(tmp_path: Path) -> None:
    assert "seed" in error_for(tmp_path, "seed: -1\n")


def test_seeds_that_would_overflow_image_seeds_are_rejected(tmp_path: Path) -> None:
    # image seeds are seed * 2**32 + i (int64)
    assert "seed: must be in [0, 2147483647]" in error_for(tmp_path, "seed: 2147483648\n")
    assert load_text(tmp_path, "seed: 2147483647\n").seed == 2**31 - 1


@pytest.mark.parametrize("text", [
    "generate:\n  target: ratio\n  ratio: .inf\n",
    "dcgan:\n  lr_g: .inf\n",
    "evaluate:\n  lr: .inf\n",
])
def test_infinite_values_are_rejected(tmp_path: Path, text: str) -> None:
    error_for(tmp_path, text)


def test_parse_config_names_its_source() -> None:
    with pytest.raises(PipelineError, match=r"^exp\.yaml: train_gan\.stepz: unknown key"):
        parse_config({"train_gan": {"stepz": 1}}, source="exp.yaml")


def test_as_flat_dict_gives_dotted_mlflow_params() -> None:
    flat = as_flat_dict(DcganConfig(diffaugment=["translation", "cutout"]), "dcgan.")
    assert flat["dcgan.width"] == 32
    assert flat["dcgan.betas"] == "0.0,0.9"
    assert flat["dcgan.diffaugment"] == "translation,cutout"
    assert flat["dcgan.spectral_norm"] is False
    assert len(flat) == len(dataclasses.fields(DcganConfig))
    prep = as_flat_dict(PrepareConfig(imbalance="fractions", keep_fractions={1: 0.5}))
    assert prep["keep_fractions"] == "{1: 0.5}"
    nested = as_flat_dict(Config())
    assert nested["dcgan.arch"] == "dcgan" and nested["data.path"] is None
    assert "train_gan" not in nested


def test_params_yaml_holds_exactly_the_dataclass_defaults() -> None:
    """One source of truth: the shipped params.yaml and the config defaults cannot drift apart
    (data.path is the one exception: params.yaml names the folder DVC tracks as prepare's input,
    the digits demo reads nothing from it)."""
    shipped = load_config(REPO / "params.yaml")
    defaults = Config()
    assert dataclasses.replace(shipped, digest="", data=defaults.data) == defaults
    assert dataclasses.replace(shipped.data, path=None) == defaults.data


@pytest.mark.parametrize(("section", "key", "registry", "more"), [
    ("dcgan", "arch", GAN_ARCHS, ""), ("dcgan", "loss", LOSSES, ""),
    ("train_gan", "method", METHODS, ""), ("evaluate", "classifier", CLASSIFIERS, ""),
    ("generate", "target", TARGETS, "  count: 5\n"),
])
def test_every_registered_name_is_a_valid_choice(
    tmp_path: Path, section: str, key: str, registry: dict, more: str
) -> None:
    """The choices are the registries' names: a name registered in code is accepted as it is."""
    for name in registry:
        cfg = load_text(tmp_path, f"{section}:\n  {key}: {name}\n{more}")
        assert getattr(getattr(cfg, section), key) == name


def test_every_registered_list_entry_is_a_valid_choice(tmp_path: Path) -> None:
    text = yaml.safe_dump({"dcgan": {"diffaugment": list(AUGMENTS)},
                           "stylegan": {"augment": list(ADA_OPS)},
                           "evaluate": {"variants": list(VARIANTS), "augment": list(AUGMENTATIONS)},
                           "features": {"augment": list(AUGMENTATIONS)}})
    cfg = load_text(tmp_path, text)
    assert cfg.dcgan.diffaugment == tuple(AUGMENTS)
    assert cfg.stylegan.augment == tuple(ADA_OPS) == type(cfg.stylegan)().augment
    assert cfg.evaluate.variants == tuple(VARIANTS)
    assert set(DEFAULT_VARIANTS) <= set(VARIANTS)


def test_data_sources_are_exactly_the_registered_readers() -> None:
    """`data.source` keeps its own list (sources.py imports config, so config cannot import it):
    the two must name the same sources, in the same order."""
    from pipeline.config import DataConfig
    from pipeline.data.sources import SOURCES

    hint = typing.get_type_hints(DataConfig)["source"]
    assert typing.get_args(hint) == tuple(SOURCES)


def test_the_registries_names_are_the_implementing_registries_keys() -> None:
    """pipeline/registries.py is what config validates with; each registry keys its entries by
    exactly those names, in that order."""
    import pipeline.registries as names
    from pipeline.synthesizers.registry import method_module

    assert names.GAN_ARCHS == tuple(GAN_ARCHS) and names.GAN_LOSSES == tuple(LOSSES)
    assert names.DIFFAUGMENTS == tuple(AUGMENTS) and names.ADA_OPS == tuple(ADA_OPS)
    assert names.CLASSIFIERS == tuple(CLASSIFIERS)
    for name in names.METHODS:
        assert method_module(name).__name__ == f"pipeline.synthesizers.{name}"


def test_config_imports_no_method_package() -> None:
    """Validating params imports no model, loss or method (transitively): editing one reruns only
    the stages that use it, and dvc.yaml lists config.py's few dependencies."""
    from test_stages_cli import pipeline_modules

    found = pipeline_modules(REPO / "pipeline" / "config.py")
    assert "pipeline/registries.py" in found
    assert sorted(m for m in found if m.split("/")[1] in
                  ("gan", "models", "synthesizers", "training")) == []
