"""Settings: precedence, validation, derived names, secret masking."""

from __future__ import annotations

from pathlib import Path

import pytest

from kbpipe.config import Settings, load_settings, parse_dotenv
from kbpipe.errors import ConfigError


def test_defaults_match_the_seed(tmp_path: Path) -> None:
    s = load_settings(environ={}, env_file=tmp_path / "missing.env")
    assert s.data_model == "glm4_7"
    assert s.hf_org == "siro1"
    assert s.reward_threshold == 0.85
    assert s.judge_model == "openai/gpt-5.2"
    assert s.spec_model == "moonshotai/kimi-k2-0905"
    assert (s.judge_concurrency, s.spec_concurrency) == (256, 1024)
    assert s.tokenizer == "Qwen/Qwen3-30B-A3B-Thinking-2507"
    assert s.table_path("source") == Path("outputs/glm4_7/evals_dataset.parquet")


def test_precedence_defaults_dotenv_environment_flags(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(
        "# credentials\nexport DATA_MODEL=from_dotenv\nHF_ORG='dotenv-org'\n"
        "REWARD_THRESHOLD=0.5 # inline comment\n"
    )
    environ = {"DATA_MODEL": "from_env"}
    s = load_settings(environ=environ, env_file=env_file)
    assert (s.data_model, s.hf_org, s.reward_threshold) == ("from_env", "dotenv-org", 0.5)

    s = load_settings(
        {"data_model": "from_flag", "hf_org": None}, environ=environ, env_file=env_file
    )
    assert s.data_model == "from_flag"
    assert s.hf_org == "dotenv-org"  # a flag left unset does not override


def test_kbpipe_api_key_wins_over_prime_api_key(tmp_path: Path) -> None:
    s = load_settings(environ={"PRIME_API_KEY": "prime", "KBPIPE_API_KEY": "own"}, env_file=None)
    assert s.api_key == "own"
    assert load_settings(environ={"PRIME_API_KEY": "prime"}, env_file=None).api_key == "prime"


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"REWARD_THRESHOLD": "abc"}, "REWARD_THRESHOLD='abc' (environment) is not a number"),
        ({"REWARD_THRESHOLD": "1.5"}, "outside [0, 1]"),
        ({"DATA_MODEL": "org/model"}, "DATA_MODEL='org/model' is not a plain name"),
        ({"DATA_MODEL": "../up"}, "is not a plain name"),
        ({"TEST_MODE": "maybe"}, "TEST_MODE='maybe' (environment) is not a boolean"),
        ({"JUDGE_CONCURRENCY": "0"}, "JUDGE_CONCURRENCY must be at least 1"),
        ({"JUDGE_CONCURRENCY": "many"}, "is not an integer"),
        ({"KBPIPE_BASE_URL": "api.example"}, "must start with http"),
    ],
)
def test_bad_values_fail_at_start_up_naming_the_variable(environ, message) -> None:
    with pytest.raises(ConfigError, match=None) as exc:
        load_settings(environ=environ, env_file=None)
    assert message in str(exc.value)


def test_bad_dotenv_line_names_file_and_line(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("DATA_MODEL=x\nthis is not an assignment\n")
    with pytest.raises(ConfigError, match=r"\.env:2: expected KEY=VALUE"):
        parse_dotenv(env_file)


def test_synthetic_prompt_run_paths_and_repos() -> None:
    s = Settings(data_model="glm4_7", use_synthetic_prompts=True)
    assert s.model_dir == Path("outputs/glm4_7-synthetic-prompts")
    assert s.repo_id("filtered") == "siro1/kernelbook-glm4_7-synthetic-prompts-evals-filtered"
    # merged tables combine both runs, so they are named after the base run
    assert s.repo_id("unique", "merged") == "siro1/kernelbook-glm4_7-evals-unique-merged"


def test_repo_ids_follow_the_seed() -> None:
    s = Settings(data_model="kimi_k2", hf_org="me")
    assert s.repo_id("source") == "me/kernelbook-kimi_k2-evals"
    assert s.repo_id("filtered") == "me/kernelbook-kimi_k2-evals-filtered"
    assert s.repo_id("unique") == "me/kernelbook-kimi_k2-evals-unique"
    assert s.repo_id("synthetic") == "me/kernelbook-kimi_k2-synthetic-tasks"
    assert (
        s.repo_id("filtered", "no_reasoning") == "me/kernelbook-kimi_k2-evals-filtered-no-reasoning"
    )


def test_secrets_are_masked_in_describe_and_repr() -> None:
    s = Settings(api_key="sk-very-secret-key-1234", hf_token="hf_abcdefghijklmnopWXYZ")
    shown = s.describe()
    assert shown["api_key"] == "****1234"
    assert shown["hf_token"] == "****WXYZ"
    assert "very-secret" not in repr(s) and "abcdefghijklmnop" not in repr(s)


def test_test_mode_limits_rows_unless_limit_given() -> None:
    assert Settings().limit(None) is None
    assert Settings(test_mode=True).limit(None) == 5
    assert Settings(test_mode=True).limit(100) == 100
