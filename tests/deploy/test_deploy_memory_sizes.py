"""`deploy --memory-sizes` against moto: one published version and alias (`mem-MB`) per size, idempotent, kept in step
with the function, reported by status, removed by destroy; and the client refusing `memory=` sizes not deployed
before anything is stored or sent.

moto cannot run a handler (no Docker here): a map really reaching an alias is in tests/aws/test_lambda_memory.py,
on MiniStack.
"""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import pytest

import lambdamap
from lambdamap import cli
from lambdamap.aws import clients, manage
from lambdamap.aws import deploy as d
from lambdamap.aws.layer import LayerBuild, inspect_layer
from lambdamap.errors import ConfigError, DeploymentError

pytestmark = pytest.mark.timeout(300)

REGION = "eu-central-1"
BUCKET = f"lambdamap-123456789012-{REGION}"  # moto's default account
NAME = "lambdamap-runtime"
MUTATING = {"CreateFunction", "UpdateFunctionCode", "UpdateFunctionConfiguration", "PublishLayerVersion",
            "PutFunctionEventInvokeConfig", "PublishVersion", "CreateAlias", "UpdateAlias", "DeleteAlias",
            "DeleteFunction"}


def _variant(layer: LayerBuild, path: Path) -> LayerBuild:
    """A copy of ``layer`` with one more file (so another CodeSha256)."""
    shutil.copyfile(layer.path, path)
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr("python/variant.txt", b"variant")
    return inspect_layer(path)


def _target() -> clients.Target:
    return clients.Target(region=REGION)


def _aliases(lam) -> dict[str, str]:
    return {a["Name"]: a["FunctionVersion"] for a in lam.list_aliases(FunctionName=NAME)["Aliases"]}


def _versions(lam) -> dict[str, int]:
    return {v["Version"]: v["MemorySize"] for v in lam.list_versions_by_function(FunctionName=NAME)["Versions"]}


def _deployment(conf: dict) -> tuple:
    return (conf["CodeSha256"], conf["Runtime"], conf["Handler"], conf["Timeout"], conf["Role"],
            [layer["Arn"] for layer in conf["Layers"]])


def test_memory_sizes_publish_a_version_and_an_alias_each(session, minimal_layer, tmp_path):
    settings = d.FunctionSettings(memory_mb=1024, memory_sizes=(1769, 3538))
    result = d.deploy(_target(), minimal_layer, settings, session=session)
    lam = session.client("lambda")
    aliases = _aliases(lam)
    assert set(aliases) == {"mem-1769", "mem-3538"}
    assert {aliases[a]: _versions(lam)[aliases[a]] for a in aliases} == {aliases["mem-1769"]: 1769,
                                                                        aliases["mem-3538"]: 3538}
    latest = lam.get_function_configuration(FunctionName=NAME)
    assert latest["MemorySize"] == 1024  # the unqualified function keeps its own memory
    for alias in aliases:  # each version is this deployment: same code, layer, handler, role, time limit
        assert _deployment(lam.get_function_configuration(FunctionName=NAME, Qualifier=alias)) == _deployment(latest)
    assert "alias mem-3538: version 2 at 3538 MB" in result.steps

    session.recorder.clear()
    again = d.deploy(_target(), minimal_layer, settings, session=session)
    assert not MUTATING & set(session.recorder.operations())  # idempotent
    assert _aliases(lam) == aliases and not any(step.startswith("alias ") for step in again.steps)

    report = manage.status(_target(), session=session)
    assert report.ok, report.problems
    assert report.memory_aliases == aliases
    assert "memory sizes for map(..., memory=MB): 1769 MB (mem-1769 -> version 1), 3538 MB" in report.render()

    # A new layer re-publishes every size; sizes no longer listed go, with their versions.
    newer = _variant(minimal_layer, tmp_path / "newer.zip")
    d.deploy(_target(), newer, d.FunctionSettings(memory_mb=1024, memory_sizes=(3538, 10240)), session=session)
    moved = _aliases(lam)
    assert set(moved) == {"mem-3538", "mem-10240"} and moved["mem-3538"] != aliases["mem-3538"]
    assert set(_versions(lam)) == {"$LATEST", *moved.values()}  # the versions left behind were deleted
    latest = lam.get_function_configuration(FunctionName=NAME)
    assert latest["MemorySize"] == 1024
    for alias, size in (("mem-3538", 3538), ("mem-10240", 10240)):
        conf = lam.get_function_configuration(FunctionName=NAME, Qualifier=alias)
        assert conf["MemorySize"] == size and _deployment(conf) == _deployment(latest)
    assert manage.status(_target(), session=session).ok


def test_status_names_an_alias_behind_the_deployment_and_deploy_repairs_it(session, minimal_layer):
    settings = d.FunctionSettings(memory_sizes=(3538,))
    d.deploy(_target(), minimal_layer, settings, session=session)
    lam = session.client("lambda")
    # Someone points the alias at a version with another memory size (here $LATEST's 2048 MB, published).
    lam.update_function_configuration(FunctionName=NAME, Description="changed by hand")
    other = lam.publish_version(FunctionName=NAME)["Version"]
    lam.update_alias(FunctionName=NAME, Name="mem-3538", FunctionVersion=other)
    report = manage.status(_target(), session=session)
    (problem,) = report.problems
    assert "mem-3538 run an older deployment" in problem and "lambdamap deploy --memory-sizes 3538" in problem

    session.recorder.clear()
    d.deploy(_target(), minimal_layer, settings, session=session)
    assert {"PublishVersion", "UpdateAlias"} <= set(session.recorder.operations())
    assert lam.get_function_configuration(FunctionName=NAME, Qualifier="mem-3538")["MemorySize"] == 3538
    assert manage.status(_target(), session=session).ok


def test_destroy_removes_the_versions_and_aliases_with_the_function(session, minimal_layer):
    d.deploy(_target(), minimal_layer, d.FunctionSettings(memory_sizes=(1769,)), session=session)
    lam = session.client("lambda")
    assert "deleted the function lambdamap-runtime" in manage.destroy(_target(), session=session)
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_alias(FunctionName=NAME, Name="mem-1769")
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_function_configuration(FunctionName=NAME, Qualifier="1")


def test_a_map_at_a_size_not_deployed_is_refused_before_anything_is_stored_or_sent(session, minimal_layer,
                                                                                    aws_env):
    d.deploy(_target(), minimal_layer, d.FunctionSettings(memory_sizes=(3538,)), session=session)
    with lambdamap.default_executor(progress=False) as pwex:
        sent = []
        pwex.invoker.client.meta.events.register("before-call.lambda.Invoke", lambda **kw: sent.append(kw))
        checked = []
        pwex.invoker.client.meta.events.register("provide-client-params.lambda.GetFunctionConfiguration",
                                                 lambda params, **_: checked.append(params.get("Qualifier")))
        with pytest.raises(ConfigError, match=r"memory=1769 needs the alias 'mem-1769' of the Lambda function "
                                              r"'lambdamap-runtime', which does not exist.*`lambdamap deploy "
                                              r"--function-name lambdamap-runtime --memory-sizes 1769`"):
            pwex.map(abs, [1, 2], memory=1769)
        with pytest.raises(ConfigError, match="integer from 128 to 10240"):
            pwex.map(abs, [1], memory=64)
        with pytest.raises(ConfigError, match="integer from 128 to 10240"):
            pwex.starmap(abs, [(1,)], memory="3538")
        assert not sent
        assert session.client("s3").list_objects_v2(Bucket=BUCKET).get("KeyCount", 0) == 0

        # The alias that exists is checked once, however many maps use it. (moto cannot run the handler, so the
        # map's invocations are not awaited here; tests/aws/test_lambda_memory.py runs them on MiniStack.)
        checked.clear()
        pwex.invoker.check_memory(3538)
        pwex.invoker.check_memory(3538)
        assert checked == ["mem-3538"]


def test_bad_memory_sizes_are_refused_before_any_call(capsys):
    with pytest.raises(DeploymentError, match="memory sizes must be a tuple of integers from 128 to 10240"):
        d.FunctionSettings(memory_sizes=(64,))
    with pytest.raises(DeploymentError, match="must not repeat"):
        d.FunctionSettings(memory_sizes=(1769, 1769))
    for bad in ("64", "1769,abc", "1769,1769"):
        with pytest.raises(SystemExit) as info:
            cli.main(["deploy", "--region", REGION, "--memory-sizes", bad])
        assert info.value.code == 2 and "--memory-sizes" in capsys.readouterr().err
