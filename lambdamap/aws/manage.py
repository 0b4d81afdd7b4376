"""What is deployed, and taking it down: ``lambdamap status``, ``cleanup`` and ``destroy``.

Each of them works on a :class:`~lambdamap.aws.clients.Target` and leaves alone whatever lambdamap did not create
(resources without the ``lambdamap:managed`` tag, objects outside its prefix).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from lambdamap.aws.aliases import list_memory_aliases, stale_aliases
from lambdamap.aws.clients import (
    Aws,
    Target,
    aws_errors,
    bucket_exists,
    get_function,
    is_managed,
    unless_missing,
)
from lambdamap.aws.deploy import ASYNC_RETRY_ATTEMPTS, MAX_EVENT_AGE_S, read_async_config
from lambdamap.aws.memory import alias_memory
from lambdamap.core import keys
from lambdamap.core.task import client_versions
from lambdamap.errors import DeploymentError
from lambdamap.observe.jobs import delete_jobs


@dataclass
class DeploymentStatus:
    """What ``lambdamap status`` reports."""

    function_name: str
    region: str
    function: dict[str, Any] | None
    runtime_versions: dict[str, str]
    client_versions: dict[str, str]
    bucket: str | None
    bucket_exists: bool | None
    problems: list[str]
    notes: list[str] = field(default_factory=list)
    #: The function's event invoke config (None: it has none, or the function does not exist).
    async_config: dict[str, Any] | None = None
    #: The function's memory aliases for ``map(..., memory=MB)``: alias name -> function version.
    memory_aliases: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def render(self) -> str:
        lines = [f"function {self.function_name} ({self.region}): "
                 + ("not deployed" if self.function is None else
                    f"{self.function.get('State')}, last update {self.function.get('LastUpdateStatus')}")]
        if self.function is not None:
            f = self.function
            lines += [f"  runtime {f.get('Runtime')} {','.join(f.get('Architectures', []))}, "
                      f"{f.get('MemorySize')} MB, timeout {f.get('Timeout')} s",
                      *(f"  layer {entry['Arn']} ({entry.get('CodeSize', 0) / 1e6:.1f} MB zipped)"
                        for entry in f.get("Layers", []))]
            a = self.async_config or {}
            lines.append(f"  async invocations: retried by Lambda {a.get('MaximumRetryAttempts', 2)} time(s), "
                         f"events kept up to {a.get('MaximumEventAgeInSeconds', MAX_EVENT_AGE_S)} s"
                         + ("" if self.async_config else " (AWS defaults: no event invoke config)"))
            if self.memory_aliases:
                lines.append("  memory sizes for map(..., memory=MB): " + ", ".join(
                    f"{alias_memory(a)} MB ({a} -> version {v})" for a, v in sorted(
                        self.memory_aliases.items(), key=lambda item: alias_memory(item[0]) or 0)))
        names = ("python", "cloudpickle", "lambdamap")
        lines.append("versions  " + "  ".join(
            f"{n}: runtime {self.runtime_versions.get(n, '?')} / client {self.client_versions.get(n)}" for n in names))
        if self.bucket:
            lines.append(f"bucket s3://{self.bucket}: " + {True: "exists", False: "MISSING", None: "unknown"}[
                self.bucket_exists])
        lines += [f"note: {n}" for n in self.notes]
        lines += [f"problem: {p}" for p in self.problems] or ["ok: the runtime matches this client"]
        return "\n".join(lines)


def status(target: Target, *, session: Any = None) -> DeploymentStatus:
    """What is deployed under ``target`` and whether its runtime matches this client's versions."""
    aws = Aws(target, session, purpose="checking the deployment")
    lam, name = aws.client("lambda"), target.function_name
    mine = client_versions()
    problems: list[str] = []
    notes: list[str] = []
    found = get_function(lam, name)
    function, runtime, bucket, async_conf = None, {}, target.bucket, None
    aliases: dict[str, str] = {}
    if found is None:
        problems.append(f"the function {name} does not exist in {aws.region}: run `lambdamap deploy`")
    else:
        function, tags = found["Configuration"], found.get("Tags") or {}
        runtime = {"python": tags.get("lambdamap:python") or function.get("Runtime", "").removeprefix("python"),
                   "cloudpickle": tags.get("lambdamap:cloudpickle", "unknown"),
                   "lambdamap": tags.get("lambdamap:version", "unknown")}
        bucket = bucket or tags.get("lambdamap:bucket")
        if function.get("State") != "Active" or function.get("LastUpdateStatus") not in (None, "Successful"):
            problems.append(f"the function is {function.get('State')} (last update "
                            f"{function.get('LastUpdateStatus')}): {function.get('StateReason') or ''}".strip())
        unknown = [key for key, value in runtime.items() if value == "unknown"]
        if unknown:
            notes.append(f"the function does not record its {' and '.join(unknown)} version(s) (it was not deployed "
                         "by `lambdamap deploy`); its handler still checks them on every invocation")
        for key in ("python", "cloudpickle", "lambdamap"):
            if runtime[key] != mine[key] and key not in unknown:
                problems.append(f"{key} differs: runtime {runtime[key]}, client {mine[key]}. Redeploy for this client "
                                f"(`lambdamap deploy --python {mine['python']}`) or install the runtime's version here")
        aliases = _memory_aliases(lam, name, function, problems, notes)
        async_conf = read_async_config(aws)
        retries = (async_conf or {}).get("MaximumRetryAttempts", 2)  # no config: AWS retries twice
        if retries != ASYNC_RETRY_ATTEMPTS:
            fix = ("run `lambdamap deploy`" if is_managed(tags) else
                   f"set it to 0 (`aws lambda put-function-event-invoke-config --function-name {name} "
                   "--maximum-retry-attempts 0`, or EventInvokeConfig in deploy/template.yaml)")
            problems.append(f"Lambda retries failed asynchronous invocations {retries} time(s), so a call that crashes "
                            f"its worker runs again behind lambdamap's back (which retries lost calls itself as "
                            f"`retries=` allows): {fix}")
    exists = None
    if bucket:
        exists = bucket_exists(aws, bucket)
        if not exists:
            problems.append(f"the bucket {bucket} does not exist: run `lambdamap deploy`")
    return DeploymentStatus(function_name=name, region=aws.region, function=function, runtime_versions=runtime,
                            client_versions=mine, bucket=bucket, bucket_exists=exists, problems=problems,
                            notes=notes, async_config=async_conf, memory_aliases=aliases)


def _memory_aliases(lam: Any, name: str, function: dict[str, Any], problems: list[str],
                    notes: list[str]) -> dict[str, str]:
    """The function's memory aliases (alias -> version); one problem naming those behind the function's deployment
    (a map with their ``memory=`` would run an older runtime)."""
    try:
        found = list_memory_aliases(lam, name)
        stale = [alias for alias, _ in stale_aliases(lam, name, function, found)]
    except Exception as exc:  # noqa: BLE001 - e.g. no lambda:ListAliases: the rest of the report still stands
        notes.append(f"could not read the memory aliases of {name}: {exc}")
        return {}
    if stale:
        sizes = ",".join(str(alias_memory(a)) for a in sorted(found, key=lambda a: alias_memory(a) or 0))
        problems.append(f"the memory alias(es) {', '.join(stale)} run an older deployment than the function (maps "
                        f"with their memory= would run it): run `lambdamap deploy --memory-sizes {sizes}`")
    return {alias: entry["FunctionVersion"] for alias, entry in found.items()}


def _bucket(aws: Aws) -> str:
    """The named bucket, else the one recorded on the function, else the account's default."""
    if aws.target.bucket:
        return aws.target.bucket
    found = get_function(aws.client("lambda"), aws.target.function_name)
    recorded = (found.get("Tags") or {}).get("lambdamap:bucket") if found else None
    return recorded or aws.bucket


def deployed_bucket(target: Target, *, session: Any = None) -> str:
    """The bucket ``target`` uses: named, else recorded on the function, else the default for the account."""
    return _bucket(Aws(target, session, purpose="finding the bucket"))


def cleanup(target: Target, *, blobs: bool = False, session: Any = None) -> tuple[str, int]:
    """Delete every job's objects under ``{prefix}/jobs/`` (and cached functions and shared objects under
    ``{prefix}/blobs/`` with ``blobs=True``). Returns the bucket and the number of objects deleted.

    Do not run it while jobs are running: their arguments and results would go.
    """
    aws = Aws(target, session, purpose="cleaning up the bucket")
    bucket = _bucket(aws)
    return bucket, delete_jobs(aws.storage(bucket), target.prefix, blobs=blobs)


def _iter_layer_versions(lam: Any, name: str) -> Iterator[int]:
    marker = None
    while True:
        page = lam.list_layer_versions(LayerName=name, **({"Marker": marker} if marker else {}))
        yield from (v["Version"] for v in page.get("LayerVersions", []))
        marker = page.get("NextMarker")
        if not marker:
            return


def destroy(target: Target, *, delete_bucket: bool = False, session: Any = None,
            log: Callable[[str], None] | None = None) -> list[str]:
    """Remove the function, every version of its layer and its role; the bucket only with ``delete_bucket``
    (after deleting lambdamap's objects in it; a bucket that holds other objects is left alone). Returns what
    was done. Missing pieces are skipped, so it can be re-run after a partial failure."""
    aws = Aws(target, session, purpose="destroying the deployment")
    lam, iam = aws.client("lambda"), aws.client("iam")
    done: list[str] = []

    def note(msg: str) -> None:
        done.append(msg)
        if log:
            log(msg)

    found = get_function(lam, target.function_name)
    tags = (found or {}).get("Tags") or {}
    if found is not None and not is_managed(tags):
        raise DeploymentError(f"the function {target.function_name} was not deployed by `lambdamap deploy`; remove "
                              "it with the tool that created it (e.g. `sam delete`), lambdamap leaves it alone")
    bucket = target.bucket or tags.get("lambdamap:bucket")
    if found is not None:
        with aws_errors(f"delete the function {target.function_name}"):
            lam.delete_function(FunctionName=target.function_name)
        note(f"deleted the function {target.function_name}")
    with aws_errors(f"delete the layer {target.layer}"):
        versions = list(_iter_layer_versions(lam, target.layer))
        for version in versions:
            lam.delete_layer_version(LayerName=target.layer, VersionNumber=version)
        if versions:
            note(f"deleted {len(versions)} version(s) of the layer {target.layer}")
    found_role = unless_missing(lambda: iam.get_role(RoleName=target.role), f"read the role {target.role}",
                                codes=("NoSuchEntity",))
    if found_role is not None:
        role = found_role["Role"]
        if not is_managed({t["Key"]: t["Value"] for t in role.get("Tags", [])}):
            note(f"kept the role {target.role}: lambdamap did not create it")
        else:
            with aws_errors(f"delete the role {target.role}"):
                for policy in iam.list_attached_role_policies(RoleName=target.role).get("AttachedPolicies", []):
                    iam.detach_role_policy(RoleName=target.role, PolicyArn=policy["PolicyArn"])
                for policy_name in iam.list_role_policies(RoleName=target.role).get("PolicyNames", []):
                    iam.delete_role_policy(RoleName=target.role, PolicyName=policy_name)
                iam.delete_role(RoleName=target.role)
            note(f"deleted the role {target.role}")
    if delete_bucket:
        bucket = bucket or aws.bucket
        if not bucket_exists(aws, bucket):
            return done
        storage = aws.storage(bucket)
        storage.delete_prefix(keys.root_prefix(target.prefix))
        others = storage.list("")
        if others:
            note(f"kept the bucket {bucket}: it holds {len(others)} object(s) outside {target.prefix}/ "
                 f"(e.g. {others[0]})")
        else:
            with aws_errors(f"delete the bucket {bucket}"):
                aws.client("s3").delete_bucket(Bucket=bucket)
            note(f"deleted the bucket {bucket}")
    elif bucket:
        note(f"kept the bucket {bucket} (pass --delete-bucket to delete it)")
    return done
