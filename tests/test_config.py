from pathlib import Path

import pytest

from ganaug import InputError
from ganaug.config import PROFILES, Config, load_config, parse_set, save_config


def test_defaults_are_the_papers_numbers():
    cfg = Config()
    assert (cfg.gan.z_dim, cfg.gan.width, cfg.gan.batch_size) == (100, 1024, 8)
    assert (cfg.gan.lr, cfg.gan.lr2, cfg.gan.epochs) == (1e-4, 5e-5, 1400)
    assert (cfg.classify.lr, cfg.classify.batch_size, cfg.classify.epochs) == (1e-4, 64, 40)
    assert (cfg.augment.color_low, cfg.augment.color_high, cfg.augment.hflip_p) == (0.7, 0.9, 0.1)
    assert cfg.select.k == 443


@pytest.mark.parametrize("name", PROFILES)
def test_every_profile_loads(name):
    cfg = load_config(name)
    assert cfg.profile == name


def test_paper_profile_matches_paper():
    cfg = load_config("paper")
    assert cfg.experiment.models == ("resnet101", "densenet121")
    assert cfg.gan.loss == "wgan" and cfg.gan.epochs_lr1 == 800 and cfg.gan.epochs_lr2 == 600


def test_set_overrides_are_typed():
    cfg = load_config(
        "smoke",
        [
            "gan.width=64",
            "gan.lr=0.5",
            "augment.preview=false",
            "experiment.models=resnet18,densenet121",
            "experiment.seeds=1,2",
        ],
    )
    assert cfg.gan.width == 64 and cfg.gan.lr == 0.5 and cfg.augment.preview is False
    assert cfg.experiment.models == ("resnet18", "densenet121")
    assert cfg.experiment.seeds == (1, 2)


@pytest.mark.parametrize(
    "override, needle",
    [
        ("gan.widht=32", "gan.widht"),
        ("gan.width=wide", "an integer"),
        ("gan.loss=hinge", "wgan, wgan-gp"),
        ("nosuch.key=1", "sections"),
        ("gan.width=12", "multiple of 8"),
        ("experiment.regimes=none,magic", "magic"),
        ("augment.preview=maybe", "true or false"),
        ("novalue", "section.key=value"),
        ("select.knn_realism_weight=-1", "knn_realism_weight.*each >= 0"),
    ],
)
def test_bad_overrides_name_key_and_allowed(override, needle):
    with pytest.raises(InputError, match=needle.replace("+", r"\+")):
        load_config("smoke", [override])


def test_yaml_profile_file_and_unknown_key(tmp_path: Path):
    good = tmp_path / "mine.yaml"
    good.write_text("gan:\n  width: 16\n")
    assert load_config(str(good)).gan.width == 16
    bad = tmp_path / "bad.yaml"
    bad.write_text("gan:\n  widht: 16\n")
    with pytest.raises(InputError, match="gan.widht"):
        load_config(str(bad))
    with pytest.raises(InputError, match="not a profile name"):
        load_config(str(tmp_path / "missing.yaml"))


def test_saved_config_reloads_identically(tmp_path: Path):
    cfg = load_config("quick", ["gan.width=64"])
    save_config(cfg, tmp_path / "config.yaml")
    again = load_config(str(tmp_path / "config.yaml"))
    assert again.to_dict() | {"profile": cfg.profile} == cfg.to_dict()
    assert again.section_hash() == cfg.section_hash()


def test_section_hash_tracks_only_its_sections():
    a = load_config("smoke")
    b = load_config("smoke", ["gan.width=64"])
    assert a.section_hash("classify") == b.section_hash("classify")
    assert a.section_hash("gan") != b.section_hash("gan")


def test_parse_set_groups_by_section():
    assert parse_set(["a.b=1", "a.c=x=y"]) == {"a": {"b": "1", "c": "x=y"}}
