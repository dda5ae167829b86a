"""Config composition and validation: every mistake fails before a model loads, naming the fix."""
import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import HydraException

from sinktop_eval.config import CONFIG_DIR, ConfigError, resolve_run


def compose_cfg(*overrides):
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
        return compose(config_name="config", overrides=list(overrides))


def test_design_card_command_resolves_with_stop_on_by_default():
    spec = resolve_run(compose_cfg("+model=qwen25vl", "+pruner=holitom"))
    assert (spec.pruner, spec.stop, spec.mu_s, spec.mu_t, spec.ratio) == ("holitom", "on", 0.04, 0.07, 0.1)
    assert spec.mu_source.startswith("paper llava_ov values, uncalibrated")  # no trustworthy Qwen values
    assert spec.tasks_label == "paper" and spec.model.checkpoint == "Qwen/Qwen2.5-VL-7B-Instruct"


def test_llava_defaults_are_the_papers_and_twins_default_to_smoke_tasks():
    spec = resolve_run(compose_cfg("+model=tiny_llava_ov", "+pruner=visionzip"))
    assert (spec.mu_s, spec.mu_t, spec.mu_source) == (0.03, 0.0, "paper")
    assert spec.tasks == ("sinktop_smoke",)
    fast = resolve_run(compose_cfg("+model=llava_ov", "+pruner=fastvid", "stop=off"))
    assert (fast.stop, fast.mu_s, fast.mu_t) == ("off", 0.0, 0.0)


def test_mu_overrides_and_ablation_modes():
    spec = resolve_run(compose_cfg("+model=llava_ov", "+pruner=holitom", "stop=stsp"))
    assert (spec.mu_s, spec.mu_t) == (0.04, 0.0)
    spec = resolve_run(compose_cfg("+model=llava_ov", "+pruner=holitom", "stop=sttp", "stop.mu_t=0.1"))
    assert (spec.mu_s, spec.mu_t, spec.mu_source) == (0.0, 0.1, "user override")
    with pytest.raises(ConfigError, match="stop=sttp needs a pruner with a temporal"):
        resolve_run(compose_cfg("+model=llava_ov", "+pruner=visionzip", "stop=sttp"))


def test_dense_records_ratio_one_and_stop_off():
    for pruner in ("dense", "none"):
        spec = resolve_run(compose_cfg("+model=tiny_qwen25vl", f"+pruner={pruner}", "ratio=0.15"))
        assert (spec.pruner, spec.ratio, spec.stop, spec.mu_s) == ("dense", 1.0, "off", 0.0)


@pytest.mark.parametrize("ratio", [0, -0.1, 1.5])
def test_ratio_outside_unit_interval_names_the_value(ratio):
    with pytest.raises(ConfigError, match=rf"ratio={ratio!r} is invalid; allowed: a number in \(0, 1\]"):
        resolve_run(compose_cfg("+model=tiny_qwen25vl", "+pruner=holitom", f"ratio={ratio}"))


def test_missing_model_or_pruner_lists_the_choices():
    with pytest.raises(ConfigError, match=r"no model chosen: add \+model=<llava_ov\|qwen25vl\|tiny_llava_ov\|tiny_qwen25vl>"):
        resolve_run(compose_cfg("+pruner=holitom"))
    with pytest.raises(ConfigError, match=r"no pruner chosen: add \+pruner=<dense\|fastvid\|holitom\|none\|random\|uniform\|visionzip>"):
        resolve_run(compose_cfg("+model=llava_ov"))


def test_unknown_group_option_is_rejected_by_hydra_with_the_options():
    with pytest.raises(HydraException, match="Available options"):
        compose_cfg("+model=tiny_qwen25vl", "+pruner=tome")


def test_bad_scalars_fail_with_the_allowed_values():
    with pytest.raises(ConfigError, match="frames=0 is invalid"):
        resolve_run(compose_cfg("+model=tiny_qwen25vl", "+pruner=holitom", "frames=0"))
    with pytest.raises(ConfigError, match="limit=0 is invalid"):
        resolve_run(compose_cfg("+model=tiny_qwen25vl", "+pruner=holitom", "limit=0"))
    with pytest.raises(ConfigError, match="wandb.mode='sometimes' is unknown"):
        resolve_run(compose_cfg("+model=tiny_qwen25vl", "+pruner=holitom", "wandb.mode=sometimes"))


def test_run_id_is_stable_and_keyed_by_what_changes_the_numbers():
    a = resolve_run(compose_cfg("+model=tiny_qwen25vl", "+pruner=holitom"))
    b = resolve_run(compose_cfg("+model=tiny_qwen25vl", "+pruner=holitom", "output_dir=/elsewhere", "force=true"))
    c = resolve_run(compose_cfg("+model=tiny_qwen25vl", "+pruner=holitom", "ratio=0.15"))
    d = resolve_run(compose_cfg("+model=tiny_qwen25vl", "+pruner=holitom", "pruner.settings.tau=0.65"))
    assert a.run_id == b.run_id
    assert len({a.run_id, c.run_id, d.run_id}) == 3
    assert a.run_id.startswith("tiny_qwen25vl_holitom_stop-on_r0.1_smoke_")
