"""Configuration from environment and TOML, every problem reported at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import Config, ConfigError


def test_defaults_run_on_embedded_sqlite():
    config = Config.load(environ={})
    assert config.is_sqlite and config.redis_url is None
    assert config.token_endpoint == "http://127.0.0.1:8080/oauth/token"


def test_environment_overrides_toml(tmp_path: Path):
    toml = tmp_path / "gateway.toml"
    toml.write_text(
        'public_url = "https://toml.example"\nmax_document_bytes = 2048\ntrust_anchors = ["a.pem", "b.pem"]\n'
    )
    config = Config.load(
        environ={
            "GATEWAY_CONFIG": str(toml),
            "GATEWAY_PUBLIC_URL": "https://env.example",
            "GATEWAY_ALLOW_RSA_SHA1": "yes",
        }
    )
    assert config.public_url == "https://env.example"
    assert config.max_document_bytes == 2048 and config.allow_rsa_sha1
    assert config.trust_anchor_paths == (Path("a.pem"), Path("b.pem"))


def test_every_problem_is_reported_together(tmp_path: Path):
    with pytest.raises(ConfigError) as caught:
        Config.load(
            environ={
                "GATEWAY_DATABASE_URL": "mysql://x",
                "GATEWAY_REDIS_URL": "http://x",
                "GATEWAY_PUBLIC_URL": "nope",
                "GATEWAY_MAX_DOCUMENT_BYTES": "lots",
                "GATEWAY_DEMO": "maybe",
            }
        )
    text = str(caught.value)
    for name in ("GATEWAY_MAX_DOCUMENT_BYTES", "GATEWAY_DEMO"):
        assert name in text
    with pytest.raises(ConfigError) as caught:
        Config.load(
            environ={"GATEWAY_DATABASE_URL": "mysql://x", "GATEWAY_REDIS_URL": "http://x", "GATEWAY_PUBLIC_URL": "nope"}
        )
    assert len(caught.value.problems) == 3


def test_unknown_toml_setting_and_missing_file_are_errors(tmp_path: Path):
    toml = tmp_path / "gateway.toml"
    toml.write_text('databse_url = "sqlite:///x.db"\n')
    with pytest.raises(ConfigError, match="unknown setting"):
        Config.load(environ={"GATEWAY_CONFIG": str(toml)})
    with pytest.raises(ConfigError, match="does not exist"):
        Config.load(environ={"GATEWAY_CONFIG": str(tmp_path / "absent.toml")})


def test_missing_keys_say_how_to_make_them(tmp_path: Path):
    problems = Config(keys_dir=tmp_path).missing_key_files()
    assert problems and all("gateway keys init" in p for p in problems)


def test_every_true_false_setting_reads_false_as_false_from_the_environment():
    """GATEWAY_SIGNS_CHECKPOINTS=false once arrived as the (true) string "false": every bool is coerced."""
    from dataclasses import fields

    from gateway.config import Config

    flags = [f.name for f in fields(Config) if f.type in ("bool", bool)]
    assert "signs_checkpoints" in flags
    for word, expected in (("false", False), ("true", True), ("0", False), ("yes", True)):
        env = {f"GATEWAY_{name.upper()}": word for name in flags}
        config = Config.load(env)
        assert all(getattr(config, name) is expected for name in flags), (word, flags)
