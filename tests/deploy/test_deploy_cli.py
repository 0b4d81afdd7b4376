"""The `lambdamap` command: runtime build, deploy, status, cleanup and destroy (AWS calls against moto)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import boto3
import pytest

from lambdamap import cli
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

    assert cli.main(["destroy", "--delete-bucket"]) == 0
    out = capsys.readouterr().out
    assert "deleted the function lambdamap-runtime" in out and f"deleted the bucket {BUCKET}" in out


def test_errors_exit_1_with_the_reason(moto_aws, minimal_layer, capsys):
    assert cli.main(["status"]) == 1
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
