"""Config composition and validation: every mistake fails before a model loads, naming the fix."""
import pytest
from hydra.errors import HydraException

from sinktop_eval.runner.config import ConfigError, compose, resolve_run, task_set


def compose_cfg(*overrides):
    return compose(list(overrides))


def settings(spec):
    """(pruner, stop, mu_s, mu_t, ratio, mu_source) of a spec's resolved combination."""
    combo = spec.combination.describe()
    return tuple(combo[k] for k in ("pruner", "stop", "mu_s", "mu_t", "ratio", "mu_source"))


def test_design_card_command_resolves_with_stop_on_by_default():
    spec = resolve_run(compose_cfg("+model=qwen25vl", "+pruner=holitom"))
    assert settings(spec)[:5] == ("holitom", "on", 0.04, 0.07, 0.1)
    assert settings(spec)[5].startswith("paper llava_ov values, uncalibrated")  # no trustworthy Qwen values
    assert spec.tasks.name == "paper" and spec.combination.checkpoint == "Qwen/Qwen2.5-VL-7B-Instruct"
    assert (spec.combination.family, spec.combination.weights) == ("qwen25vl", "pretrained")
    assert spec.tasks.benchmark_of["sinktop_mvbench19"] == "mvbench"  # the paper set merges the four families


def test_llava_defaults_are_the_papers_and_twins_default_to_smoke_tasks():
    spec = resolve_run(compose_cfg("+model=tiny_llava_ov", "+pruner=visionzip"))
    assert settings(spec)[2:] == (0.03, 0.0, 0.1, "paper")
    assert spec.tasks == task_set("smoke") and spec.tasks.data_root == "builtin:smoke"
    assert "sinktop_mvbench_local" in spec.tasks.names
    assert (spec.combination.family, spec.combination.weights) == ("llava_ov", "random")
    assert resolve_run(compose_cfg("+model=tiny_llava_ov", "+pruner=visionzip", "tasks=mcqa")).tasks.name == "mcqa"
    fast = resolve_run(compose_cfg("+model=llava_ov", "+pruner=fastvid", "stop=off"))
    assert settings(fast)[1:4] == ("off", 0.0, 0.0)


def test_mu_overrides_and_ablation_modes():
    spec = resolve_run(compose_cfg("+model=llava_ov", "+pruner=holitom", "stop=stsp"))
    assert settings(spec)[2:4] == (0.04, 0.0)
    spec = resolve_run(compose_cfg("+model=llava_ov", "+pruner=holitom", "stop=sttp", "stop.mu_t=0.1"))
    assert settings(spec)[2:] == (0.0, 0.1, 0.1, "user override")
    with pytest.raises(ConfigError, match="stop=sttp needs a pruner with a temporal"):
        resolve_run(compose_cfg("+model=llava_ov", "+pruner=visionzip", "stop=sttp"))


def test_dense_records_ratio_one_and_stop_off():
    for pruner in ("dense", "none"):
        spec = resolve_run(compose_cfg("+model=tiny_qwen25vl", f"+pruner={pruner}", "ratio=0.15"))
        assert settings(spec)[:4] == ("dense", "off", 0.0, 0.0) and spec.combination.ratio == 1.0
        assert spec.run_id.startswith("tiny_qwen25vl_dense_stop-off_r1_smoke_")


@pytest.mark.parametrize("ratio", [0, -0.1, 1.5])
def test_ratio_outside_unit_interval_names_the_value(ratio):
    with pytest.raises(ConfigError, match=rf"ratio={float(ratio)!r} is invalid; allowed: a number in \(0, 1\]"):
        resolve_run(compose_cfg("+model=tiny_qwen25vl", "+pruner=holitom", f"ratio={ratio}"))


def test_missing_model_or_pruner_lists_the_choices():
    with pytest.raises(ConfigError, match=r"no model chosen: add \+model=<llava_ov\|llava_video\|qwen25vl\|real_shape_llava_ov\|"
                                          r"real_shape_llava_video\|real_shape_qwen25vl\|tiny_llava_ov\|tiny_llava_video\|"
                                          r"tiny_qwen25vl>"):
        resolve_run(compose_cfg("+pruner=holitom"))
    with pytest.raises(ConfigError, match=r"no pruner chosen: add \+pruner=<dense\|dpc_knn\|fastvid\|flashvid\|holitom\|none\|"
                                          r"prunevid\|random\|uniform\|visionzip>"):
        resolve_run(compose_cfg("+model=llava_ov"))


def test_unknown_group_option_is_rejected_by_hydra_with_the_options():
    with pytest.raises(HydraException, match="Available options"):
        compose_cfg("+model=tiny_qwen25vl", "+pruner=tome")


def test_bad_scalars_fail_with_the_allowed_values():
    with pytest.raises(ConfigError, match="frames=0 is invalid"):
        resolve_run(compose_cfg("+model=tiny_qwen25vl", "+pruner=holitom", "frames=0"))
    with pytest.raises(ConfigError, match=r"limit=0.0 is invalid; allowed: null \(all samples\)"):
        resolve_run(compose_cfg("+model=tiny_qwen25vl", "+pruner=holitom", "limit=0"))
    with pytest.raises(ConfigError, match="wandb.mode='sometimes' is invalid; allowed: auto, offline"):
        resolve_run(compose_cfg("+model=tiny_qwen25vl", "+pruner=holitom", "wandb.mode=sometimes"))


def test_run_id_is_stable_and_keyed_by_what_changes_the_numbers():
    a = resolve_run(compose_cfg("+model=tiny_qwen25vl", "+pruner=holitom"))
    b = resolve_run(compose_cfg("+model=tiny_qwen25vl", "+pruner=holitom", "output_dir=/elsewhere", "force=true"))
    c = resolve_run(compose_cfg("+model=tiny_qwen25vl", "+pruner=holitom", "ratio=0.15"))
    d = resolve_run(compose_cfg("+model=tiny_qwen25vl", "+pruner=holitom", "pruner.settings.tau=0.65"))
    assert a.run_id == b.run_id
    assert len({a.run_id, c.run_id, d.run_id}) == 3
    assert a.run_id.startswith("tiny_qwen25vl_holitom_stop-on_r0.1_smoke_")


def test_hand_set_stop_parameters_mark_a_calibration_run():
    """mu overrides (pruning.defaults) and a gamma override (the combination) both write the one label the
    tables leave out and the sensitivity plot reads."""
    from sinktop_eval.results import USER_OVERRIDE

    spec = resolve_run(compose_cfg("+model=llava_ov", "+pruner=visionzip", "stop.mu_s=0.05"))
    assert spec.combination.mu_source == USER_OVERRIDE
    spec = resolve_run(compose_cfg("+model=llava_ov", "+pruner=visionzip", "stop.gamma=1.2"))
    assert spec.combination.mu_source == USER_OVERRIDE and settings(spec)[2] == 0.03  # the paper's mu_s kept
    off = resolve_run(compose_cfg("+model=llava_ov", "+pruner=visionzip", "stop=off", "stop.gamma=1.2"))
    assert off.combination.mu_source == "off"  # gamma does nothing without a SToP term


def test_release_variant_and_sink_alternatives_resolve_from_the_config():
    paper = resolve_run(compose_cfg("+model=llava_ov", "+pruner=fastvid"))
    release = resolve_run(compose_cfg("+model=llava_ov", "+pruner=fastvid", "pruner.variant=release"))
    assert release.combination.describe()["pruner_settings"]["variant"] == "release"
    assert release.run_id != paper.run_id  # the variant changes the numbers, so the identity
    hard = resolve_run(compose_cfg("+model=llava_ov", "+pruner=visionzip", "stop=hard", "stop.hard_k=0.15"))
    described = hard.combination.describe()
    assert (described["stop"], described["pruner_settings"]["sink_handling"], described["pruner_settings"]["hard_k"]) \
        == ("hard", "hard", 0.15)
    redistribute = resolve_run(compose_cfg("+model=llava_ov", "+pruner=holitom", "stop=redistribute"))
    assert redistribute.combination.describe()["pruner_settings"]["redistribute_p"] == 0.6  # the default, recorded
    with pytest.raises(ConfigError, match=r"stop=hard needs a pruner that ranks tokens by attention"):
        resolve_run(compose_cfg("+model=llava_ov", "+pruner=uniform", "stop=hard"))
    with pytest.raises(ConfigError, match=r"hard_k=0.15 does not apply to stop=on"):
        resolve_run(compose_cfg("+model=llava_ov", "+pruner=visionzip", "stop.hard_k=0.15"))
    with pytest.raises(ConfigError, match=r"variant"):
        resolve_run(compose_cfg("+model=llava_ov", "+pruner=uniform", "pruner.variant=release"))


def test_new_pruners_are_config_options_with_their_own_typed_settings():
    for name in ("flashvid", "prunevid", "dpc_knn"):
        spec = resolve_run(compose_cfg("+model=tiny_llava_ov", f"+pruner={name}"))
        assert spec.combination.pruner.name == name
    cfg = compose_cfg("+model=tiny_llava_ov", "+pruner=flashvid")
    assert cfg.pruner.settings.expansion == 1.25 and "variant" not in cfg.pruner.settings  # variant is pruner.variant
