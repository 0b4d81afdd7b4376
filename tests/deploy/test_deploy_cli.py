"""The `lambdamap` command: runtime build, deploy, status, cleanup and destroy (AWS calls against moto)."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

from lambdamap import cli
from lambdamap.aws import layer as layer_module
from lambdamap.aws.layer import client_python
from lambdamap.config import read_config_file

pytestmark = pytest.mark.timeout(300)

REGION = "eu-central-1"
BUCKET = f"lambdamap-123456789012-{REGION}"


def test_no_command_prints_usage(capsys):
    assert cli.main([]) == 2
    assert "runtime" in capsys.readouterr().err


def test_the_console_script_is_installed():
    script = Path(sys.executable).parent / "lambdamap"  # pyproject: lambdamap = "lambdamap.cli:main"
    for cmd in ([str(script), "--version"], [sys.executable, "-m", "lambdamap.cli", "--version"]):
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0 and proc.stdout.startswith("lambdamap "), proc.stderr


def test_an_unknown_python_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["runtime", "build", "--python", "2.7"])
    assert info.value.code == 2 and "invalid choice: '2.7'" in capsys.readouterr().err


def test_runtime_build(tmp_path, capsys, layer_cache):
    out = tmp_path / "layer.zip"
    assert cli.main(["runtime", "build", "--python", client_python(), "--minimal", "--output", str(out),
                     "--cache-dir", str(layer_cache)]) == 0
    text = capsys.readouterr().out
    assert out.is_file() and f"layer {out}" in text and "MB zipped" in text and "MB unzipped" in text


def test_deploy_status_cleanup_destroy(moto_aws, aws_env, minimal_layer, capsys):
    assert cli.main(["deploy", "--layer-zip", str(minimal_layer.path), "--region", REGION, "--memory", "1024",
                     "--timeout", "60"]) == 0
    out = capsys.readouterr().out
    assert "function lambdamap-runtime: active" in out and f"wrote {aws_env}" in out
    assert read_config_file(aws_env)["bucket"] == BUCKET
    conf = boto3.client("lambda", region_name=REGION).get_function_configuration(FunctionName="lambdamap-runtime")
    assert (conf["MemorySize"], conf["Timeout"]) == (1024, 60)

    assert cli.main(["status"]) == 0  # everything else from the config file just written
    assert "ok: the runtime matches this client" in capsys.readouterr().out

    lam = boto3.client("lambda", region_name=REGION)
    lam.tag_resource(Resource=conf["FunctionArn"], Tags={"lambdamap:python": "3.99"})
    assert cli.main(["status"]) == 1
    assert "problem: python differs: runtime 3.99" in capsys.readouterr().out

    s3 = boto3.client("s3", region_name=REGION)
    s3.put_object(Bucket=BUCKET, Key="lambdamap/jobs/j/results/000000.pkl", Body=b"x")
    assert cli.main(["cleanup"]) == 0
    assert f"deleted 1 object(s) from s3://{BUCKET}" in capsys.readouterr().out

    assert cli.main(["destroy", "--delete-bucket", "--yes"]) == 0
    out = capsys.readouterr().out
    assert "deleted the function lambdamap-runtime" in out and f"deleted the bucket {BUCKET}" in out


def test_errors_exit_1_with_the_reason(moto_aws, minimal_layer, capsys):
    assert cli.main(["status", "--function-name", "lambdamap-runtime"]) == 1  # an AWS option: check the deployment
    assert "lambdamap: error: no AWS region: pass --region" in capsys.readouterr().err
    assert cli.main(["deploy", "--layer-zip", str(minimal_layer.path), "--region", REGION, "--python", "3.14"]) == 1
    assert "--python 3.14 does not match the layer zip" in capsys.readouterr().err
    assert cli.main(["deploy", "--layer-zip", str(minimal_layer.path), "--region", REGION,
                     "--function-name", "bad name"]) == 1
    assert "invalid function name 'bad name'" in capsys.readouterr().err


def test_commands_can_be_added(capsys):
    def add_hello(subparsers):
        hello = subparsers.add_parser("hello", help="say hello")
        hello.add_argument("name")
        hello.set_defaults(handler=lambda args: print(f"hello {args.name}") or 0)

    cli.register_command(add_hello)
    try:
        assert cli.main(["hello", "world"]) == 0
        assert capsys.readouterr().out == "hello world\n"
    finally:
        cli.COMMANDS.remove(add_hello)


@pytest.fixture
def no_build(monkeypatch):
    """build_layer replaced by a recorder of the Python it was asked for (no pip run)."""
    asked: list[str] = []

    def build_layer(python, *args, **kwargs):
        asked.append(python)
        raise SystemExit(0)

    monkeypatch.setattr(layer_module, "build_layer", build_layer)
    return asked


def test_on_a_3_11_client_the_default_python_is_refused_before_building(monkeypatch, capsys, no_build):
    # Lambda's python3.11 (Amazon Linux 2, glibc 2.26) cannot load current numpy/scipy wheels: say so before pip.
    monkeypatch.setattr(layer_module, "client_python", lambda: "3.11")
    with pytest.raises(SystemExit):
        cli.main(["runtime", "build", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "default: this client's, 3.11" in help_text and "cannot load current numpy/scipy/scikit-learn" in help_text

    assert cli.main(["runtime", "build"]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "python3.11 runtime (Amazon Linux 2, glibc 2.26) cannot load current numpy/scikit-learn/scipy" in err
    assert "Python 3.12 or newer" in err and "--minimal" in err
    assert no_build == []  # refused before building
    with pytest.raises(SystemExit):
        cli.main(["runtime", "build", "--minimal"])  # pure Python loads anywhere
    with pytest.raises(SystemExit):
        cli.main(["runtime", "build", "--python", "3.12"])  # asked for explicitly
    assert no_build == ["3.11", "3.12"]


def test_on_a_3_12_client_the_default_python_is_the_clients(monkeypatch, capsys, no_build):
    monkeypatch.setattr(layer_module, "client_python", lambda: "3.12")
    with pytest.raises(SystemExit):
        cli.main(["runtime", "build", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "default: this client's, 3.12, so pickles match)" in help_text and "cannot load" not in help_text
    with pytest.raises(SystemExit):
        cli.main(["runtime", "build"])
    assert no_build == ["3.12"]


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _deployed(minimal_layer, capsys) -> None:
    assert cli.main(["deploy", "--layer-zip", str(minimal_layer.path), "--region", REGION]) == 0
    capsys.readouterr()


def _buckets() -> list[str]:
    return [b["Name"] for b in boto3.client("s3", region_name=REGION).list_buckets()["Buckets"]]


def test_destroy_delete_bucket_asks_first(moto_aws, aws_env, minimal_layer, capsys, monkeypatch):
    _deployed(minimal_layer, capsys)
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))  # not a terminal: refuse, naming --yes
    assert cli.main(["destroy", "--delete-bucket"]) == 1
    err = capsys.readouterr().err
    assert "--yes" in err and "no terminal" in err
    assert BUCKET in _buckets() and cli.main(["status"]) == 0  # nothing was removed
    capsys.readouterr()

    monkeypatch.setattr(sys, "stdin", _Terminal("n\n"))
    assert cli.main(["destroy", "--delete-bucket"]) == 1
    out = capsys.readouterr().out
    assert f"the bucket s3://{BUCKET} with everything under lambdamap/? [y/N]" in out and "nothing deleted" in out
    assert BUCKET in _buckets() and cli.main(["status"]) == 0
    capsys.readouterr()

    monkeypatch.setattr(sys, "stdin", _Terminal("y\n"))
    assert cli.main(["destroy", "--delete-bucket"]) == 0
    assert f"deleted the bucket {BUCKET}" in capsys.readouterr().out
    assert BUCKET not in _buckets()


def test_destroy_without_delete_bucket_does_not_ask(moto_aws, aws_env, minimal_layer, capsys, monkeypatch):
    _deployed(minimal_layer, capsys)
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    assert cli.main(["destroy"]) == 0
    assert "deleted the function lambdamap-runtime" in capsys.readouterr().out
    assert BUCKET in _buckets()
