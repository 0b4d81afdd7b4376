"""Build the AWS Lambda layer that carries the generic worker runtime.

::

    requirements (pinned to the client's versions) ─▶ pip install --platform manylinux… --only-binary=:all:
        --python-version X.Y --target python/ ─▶ strip (tests, __pycache__, stubs, sources) ─▶ deps zip (cached)
        ─▶ + lambdamap and dml from this installation + manifest ─▶ deterministic layer zip ─▶ size check

The layer holds cloudpickle, numpy, scipy, pandas and scikit-learn (the dml stack), lambdamap's own runtime dependency
(tqdm) and the ``lambdamap`` and ``dml`` packages themselves. boto3 is left out on purpose: every Lambda Python
runtime provides it, and botocore would take a large share of the 250 MB budget.

Third-party packages are pinned to the versions installed on the client (``match_client=True``), because pickles of
numpy arrays, pandas frames and fitted scikit-learn models only load reliably with the same versions on both sides
(cloudpickle is always pinned: the worker refuses a different one).
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from lambdamap.distribution import own_packages
from lambdamap.errors import DeploymentError

#: Lambda Python runtimes: major.minor -> (glibc of the runtime's OS, OS name). Wheels must not need a newer glibc.
LAMBDA_PYTHONS: dict[str, tuple[tuple[int, int], str]] = {
    "3.11": ((2, 26), "Amazon Linux 2"),
    "3.12": ((2, 34), "Amazon Linux 2023"),
    "3.13": ((2, 34), "Amazon Linux 2023"),
    "3.14": ((2, 34), "Amazon Linux 2023"),
}
#: Lambda architecture -> machine name in manylinux platform tags.
ARCHITECTURES = {"x86_64": "x86_64", "arm64": "aarch64"}

#: "Unzipped size must be smaller than 262144000 bytes" (function code plus all layers).
MAX_UNZIPPED_BYTES = 262_144_000
#: Zips up to 50 MB can be uploaded in the API request; bigger ones must go through S3.
MAX_DIRECT_UPLOAD_BYTES = 50 * 1024 * 1024
#: Kept free for the function's own code zip (a few hundred bytes: the handler lives in the layer).
FUNCTION_CODE_RESERVE_BYTES = 1024 * 1024

DEFAULT_PACKAGES: tuple[str, ...] = ("cloudpickle", "numpy", "scipy", "pandas", "scikit-learn")
MINIMAL_PACKAGES: tuple[str, ...] = ("cloudpickle",)
#: Runtime dependencies of lambdamap itself besides cloudpickle (boto3 comes with the Lambda runtime).
LAMBDAMAP_DEPENDENCIES: tuple[str, ...] = ("tqdm",)
#: Our own pure-Python packages, copied from this installation (pickles refer to them by reference).
PROJECT_PACKAGES: tuple[str, ...] = own_packages()
#: Left out unless asked for by name with ``extra``: the runtime provides them.
RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer", "jmespath")

MANIFEST_NAME = "python/lambdamap-layer.json"
#: Bump when the stripping or the zip layout changes, so cached dependency zips are rebuilt.
_BUILD_FORMAT = 1
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed timestamps: the same inputs give the same zip and the same CodeSha256
_STRIP_DIRS = {"__pycache__", "tests", "test"}  # never "testing": numpy.testing and pandas._testing are imported
_STRIP_SUFFIXES = {".pyc", ".pyo", ".pyi", ".pyx", ".pxd", ".pxi", ".c", ".cc", ".cpp", ".h", ".hpp"}
_STRIP_DIST_INFO = {"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"}  # METADATA and licenses stay
_PIP_ENV_CONFLICTS = ("PIP_USER", "PIP_PREFIX", "PIP_ROOT", "PIP_TARGET", "PIP_REQUIRE_VIRTUALENV")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*")


@dataclass(frozen=True)
class LayerBuild:
    """A built layer zip and what is in it."""

    path: Path
    python: str
    arch: str
    requirements: tuple[str, ...]
    #: Every distribution in the layer (normalised name -> version), plus "lambdamap" and "python".
    versions: dict[str, str]
    unzipped_bytes: int
    zipped_bytes: int
    #: base64 SHA-256 of the zip, as Lambda reports it in ``CodeSha256``.
    code_sha256: str
    warnings: tuple[str, ...] = ()
    from_cache: bool = False

    @property
    def needs_s3_upload(self) -> bool:
        """Whether the zip is over the 50 MB direct-upload limit (``lambdamap deploy`` then uploads through S3)."""
        return self.zipped_bytes > MAX_DIRECT_UPLOAD_BYTES

    @property
    def runtime_versions(self) -> dict[str, str]:
        """The versions a client must match (the keys of :func:`lambdamap.core.task.client_versions`)."""
        return {k: self.versions.get(k, "unknown") for k in ("python", "cloudpickle", "lambdamap")}

    def summary(self) -> str:
        lines = [
            f"layer {self.path}",
            f"  python{self.python} {self.arch}; lambdamap {self.versions.get('lambdamap')}, "
            f"cloudpickle {self.versions.get('cloudpickle')}",
            f"  packages: {', '.join(f'{k}=={v}' for k, v in sorted(self.versions.items()) if k != 'python')}",
            f"  size: {_mb(self.zipped_bytes)} zipped, {_mb(self.unzipped_bytes)} unzipped "
            f"(limit {_mb(MAX_UNZIPPED_BYTES)} unzipped for the function and all layers)",
        ]
        if self.needs_s3_upload:
            lines.append(f"  over the {_mb(MAX_DIRECT_UPLOAD_BYTES)} direct-upload limit: `lambdamap deploy` uploads "
                         "it through the S3 bucket")
        lines += [f"  warning: {w}" for w in self.warnings]
        return "\n".join(lines)


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def client_python() -> str:
    """This interpreter's major.minor: the default target, so that pickles match."""
    return "{}.{}".format(*sys.version_info[:2])


def check_target(python: str, arch: str) -> None:
    """Raise :class:`DeploymentError` for a Python version or architecture Lambda does not offer."""
    if python not in LAMBDA_PYTHONS:
        raise DeploymentError(f"no Lambda runtime for Python {python!r}: choose one of {', '.join(LAMBDA_PYTHONS)} "
                              "(--python X.Y)")
    if arch not in ARCHITECTURES:
        raise DeploymentError(f"unknown Lambda architecture {arch!r}: choose x86_64 or arm64 (--arch)")


#: Packages whose current wheels need a newer glibc than Amazon Linux 2's 2.26, so Lambda's python3.11 runtime cannot
#: load the versions a current client has installed (numpy 2.4, scipy 1.17 and scikit-learn 1.9 ship manylinux_2_27
#: wheels at the oldest; pandas 3.1 still has manylinux_2_24 ones, but needs numpy).
NEEDS_NEW_GLIBC = ("numpy", "scipy", "scikit-learn")
#: The oldest glibc those wheels load on.
NEW_GLIBC = (2, 27)


def runtime_limitation(python: str, packages: Sequence[str]) -> str | None:
    """Why Lambda's runtime for ``python`` cannot load current wheels of some of ``packages``, else None."""
    glibc, os_name = LAMBDA_PYTHONS[python]
    if glibc >= NEW_GLIBC:
        return None
    heavy = sorted({requirement_name(p) for p in packages} & set(NEEDS_NEW_GLIBC))
    if not heavy:
        return None
    return (f"Lambda's python{python} runtime ({os_name}, glibc {glibc[0]}.{glibc[1]}) cannot load current "
            f"{'/'.join(heavy)} wheels (they need glibc {NEW_GLIBC[0]}.{NEW_GLIBC[1]} or newer)")


def platform_tags(python: str, arch: str) -> list[str]:
    """The manylinux platform tags whose wheels run on the Lambda runtime for ``python`` and ``arch``.

    pip does not expand ``manylinux_2_X`` tags to older glibc versions by itself, so every one is listed, newest
    first, up to the glibc of the runtime's OS (2.26 on Amazon Linux 2, 2.34 on Amazon Linux 2023).
    """
    check_target(python, arch)
    (major, minor), _ = LAMBDA_PYTHONS[python]
    machine = ARCHITECTURES[arch]
    oldest = 5 if machine == "x86_64" else 17  # manylinux1 was glibc 2.5; aarch64 wheels start at 2.17
    tags = [f"manylinux_{major}_{m}_{machine}" for m in range(minor, oldest - 1, -1)]
    return tags + [f"manylinux2014_{machine}"]  # pip expands this one to manylinux2010/manylinux1 on x86_64


def requirement_name(requirement: str) -> str:
    """The normalised distribution name of a requirement string (``"scikit-learn>=1.4"`` -> ``"scikit-learn"``)."""
    match = _NAME.match(requirement.strip())
    if not match:
        raise DeploymentError(f"not a package requirement: {requirement!r} (use e.g. 'xgboost' or 'xgboost==2.1.0')")
    return re.sub(r"[-_.]+", "-", match.group(0)).lower()


def _installed_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def resolve_requirements(packages: Sequence[str] = DEFAULT_PACKAGES, extra: Sequence[str] = (),
                         match_client: bool = True) -> tuple[str, ...]:
    """The pip requirements of a layer: ``packages`` + lambdamap's dependencies + ``extra``, in that order.

    A bare name is pinned to the version installed on this client when ``match_client`` is true (cloudpickle
    always: the worker refuses a different cloudpickle). Requirements with a version specifier are kept as given.
    """
    result: dict[str, str] = {}
    for req in [*packages, *LAMBDAMAP_DEPENDENCIES, *extra]:
        req = req.strip()
        name = requirement_name(req)
        if name in PROJECT_PACKAGES:
            raise DeploymentError(f"{name!r} is copied from this installation into every layer; do not list it")
        match = _NAME.match(req)
        bare = match is not None and req == match.group(0)  # requirement_name() above rejected a non-match
        if bare and (match_client or name == "cloudpickle"):
            version = _installed_version(name)
            req = f"{name}=={version}" if version else name
        result[name] = req  # a later entry (extra) wins over a default one
    return tuple(result.values())


def find_python(version: str) -> str | None:
    """An interpreter of ``version`` (major.minor) on this machine: PATH, then pyenv, then /usr/bin; else None."""
    if client_python() == version:
        return sys.executable
    candidates = [shutil.which(f"python{version}")]
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates += sorted((str(p) for p in pyenv_root.glob(f"versions/{version}.*/bin/python{version}")), reverse=True)
    candidates += [f"/usr/bin/python{version}", f"/usr/local/bin/python{version}"]
    for candidate in dict.fromkeys(c for c in candidates if c and os.access(c, os.X_OK)):
        try:  # run it: a pyenv shim exists on PATH even when that version is not selected, and then fails
            proc = subprocess.run([candidate, "-I", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                                  capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if proc.returncode == 0 and proc.stdout.strip() == version:
            return candidate
    return None


# -- the build --------------------------------------------------------------------------------------------------------
def build_layer(
    python: str | None = None,
    arch: str = "x86_64",
    output: str | os.PathLike[str] | None = None,
    *,
    extra: Sequence[str] = (),
    packages: Sequence[str] = DEFAULT_PACKAGES,
    match_client: bool = True,
    cache_dir: str | os.PathLike[str] | None = None,
    bytecode: bool | None = None,
    pip_timeout: float = 1800.0,
    log: bool = False,
) -> LayerBuild:
    """Build a Lambda layer zip for Python ``python`` (default: this client's major.minor) on ``arch``.

    ``output`` is the zip path, or a folder to put ``lambdamap-layer-py{X.Y}-{arch}.zip`` in (default: the current
    folder). ``extra`` adds requirements (``"xgboost"``, ``"lightgbm==4.5.0"``); ``packages`` replaces the default
    scientific stack (:data:`MINIMAL_PACKAGES` for pure-Python work). With ``cache_dir``, the stripped third-party
    part is cached there, keyed by the pinned requirement set, so a rebuild after changing lambdamap takes seconds.

    ``bytecode``: precompile the third-party packages (``.pyc``, unchecked-hash, so they stay valid on Lambda's
    read-only ``/opt``). This cuts the import time of the scientific stack on every cold start about threefold
    (3.5 s -> 1.0 s measured for numpy + pandas + scipy.stats + scikit-learn) for about 20% more unzipped size. It
    needs an interpreter of the target version on this machine: None (default) compiles when one is found and the
    layer still fits, True requires it, False never compiles.

    Raises :class:`DeploymentError` when pip fails (with pip's own message) or the layer cannot fit Lambda's
    250 MB unzipped limit (with the sizes).
    """
    python = python or client_python()
    check_target(python, arch)
    requirements = resolve_requirements(packages, extra, match_client)
    out = Path(output) if output is not None else Path.cwd()
    if out.suffix != ".zip":
        out = out / f"lambdamap-layer-py{python}-{arch}.zip"
    out.parent.mkdir(parents=True, exist_ok=True)
    warnings = [f"{name} is part of the Lambda runtime; it is in the layer only because you asked for it"
                for name in map(requirement_name, extra) if name in RUNTIME_PROVIDED]

    interpreter = find_python(python) if bytecode is not False else None
    if bytecode and interpreter is None:
        raise DeploymentError(f"bytecode=True needs a Python {python} interpreter on this machine and none was found "
                              "(looked on PATH, in pyenv and /usr/bin); install one or build without --bytecode")
    if bytecode is None and interpreter is None:
        warnings.append(f"no Python {python} interpreter here to precompile bytecode: cold starts import from source "
                        "(about 2.5 s slower for the scientific stack)")
    key = _cache_key(python, arch, requirements, interpreter is not None)
    cacheable = cache_dir is not None and all("==" in r for r in requirements)
    cached_zip = Path(cache_dir) / f"deps-{key}.zip" if cache_dir is not None and cacheable else None
    cached_meta = cached_zip.with_suffix(".json") if cached_zip else None
    from_cache = bool(cached_zip and cached_meta and cached_zip.is_file() and cached_meta.is_file())
    with tempfile.TemporaryDirectory(prefix="lambdamap-layer-") as tmp:
        if from_cache and cached_zip and cached_meta:
            deps_zip, versions = cached_zip, json.loads(cached_meta.read_text())["versions"]
        else:
            target = Path(tmp) / "python"
            _pip_install(requirements, target, python, arch, pip_timeout, log)
            versions = _distribution_versions(target)
            _strip(target)
            if interpreter is not None:
                compiled, note = _compile_bytecode(target, interpreter, pip_timeout)
                if note:
                    warnings.append(note)
                versions["bytecode"] = "yes" if compiled else "no"
            deps_zip = Path(tmp) / "deps.zip"
            _zip_tree(target, "python", deps_zip)
            if cached_zip and cached_meta:
                cached_zip.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(deps_zip, cached_zip.with_suffix(".tmp"))
                os.replace(cached_zip.with_suffix(".tmp"), cached_zip)
                cached_meta.write_text(json.dumps({"versions": versions, "requirements": requirements}, indent=1))
        bytecode_done = versions.pop("bytecode", "no") == "yes"
        missing = {"cloudpickle"} - set(versions)
        if missing:
            raise DeploymentError(f"the layer would lack {sorted(missing)}: lambdamap's worker needs it")
        tmp_out = Path(tmp) / "layer.zip"
        shutil.copyfile(deps_zip, tmp_out)
        versions = dict(versions)
        warnings += _add_project_packages(tmp_out, versions)
        versions["python"] = python
        manifest = {"format": _BUILD_FORMAT, "python": python, "arch": arch, "requirements": list(requirements),
                    "versions": versions, "platforms": platform_tags(python, arch), "bytecode": bytecode_done}
        with zipfile.ZipFile(tmp_out, "a", compression=zipfile.ZIP_DEFLATED) as zf:
            _write_entry(zf, MANIFEST_NAME, json.dumps(manifest, indent=1, sort_keys=True).encode(), executable=False)
        shutil.move(tmp_out, out)
    build = inspect_layer(out)
    build = LayerBuild(**{**asdict(build), "path": out, "warnings": tuple(warnings), "from_cache": from_cache})
    check_layer_fits(build.unzipped_bytes, build.zipped_bytes, out)
    return build


def check_layer_fits(unzipped_bytes: int, zipped_bytes: int, path: os.PathLike[str] | str | None = None) -> None:
    """Refuse a layer that cannot fit Lambda's 250 MB unzipped limit beside the function's code."""
    budget = MAX_UNZIPPED_BYTES - FUNCTION_CODE_RESERVE_BYTES
    if unzipped_bytes > budget:
        where = f" {path}" if path else ""
        raise DeploymentError(
            f"the layer{where} is {_mb(unzipped_bytes)} unzipped ({_mb(zipped_bytes)} zipped), but Lambda allows "
            f"{_mb(MAX_UNZIPPED_BYTES)} unzipped for the function and all its layers together "
            f"({_mb(budget)} left for this layer). Leave out packages (fewer --extra, or --minimal for pure-Python "
            "work) or split the dependencies over a container image instead"
        )


def inspect_layer(path: str | os.PathLike[str]) -> LayerBuild:
    """Read a layer zip built by :func:`build_layer`: its manifest, sizes and CodeSha256."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as zf:
            unzipped = sum(info.file_size for info in zf.infolist())
            manifest = json.loads(zf.read(MANIFEST_NAME))
    except (OSError, zipfile.BadZipFile) as exc:
        raise DeploymentError(f"cannot read the layer zip {path}: {exc}") from exc
    except KeyError:
        raise DeploymentError(f"{path} is not a lambdamap layer (no {MANIFEST_NAME}); build one with "
                              "`lambdamap runtime build`") from None
    return LayerBuild(
        path=path, python=manifest["python"], arch=manifest["arch"], requirements=tuple(manifest["requirements"]),
        versions=manifest["versions"], unzipped_bytes=unzipped, zipped_bytes=path.stat().st_size,
        code_sha256=code_sha256(path.read_bytes()),
    )


def code_sha256(data: bytes) -> str:
    """The base64 SHA-256 Lambda reports as ``CodeSha256`` for an uploaded zip."""
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


# -- steps ------------------------------------------------------------------------------------------------------------
def _cache_key(python: str, arch: str, requirements: Iterable[str], bytecode: bool) -> str:
    text = json.dumps([_BUILD_FORMAT, python, arch, platform_tags(python, arch), sorted(requirements), bytecode])
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def pip_command(requirements: Sequence[str], target: Path, python: str, arch: str) -> list[str]:
    """The pip command line that installs ``requirements`` for the Lambda runtime into ``target``.

    It runs this interpreter's pip with the user's own pip configuration (indexes, proxies, certificates).
    """
    cmd = [sys.executable, "-m", "pip", "install", "--target", str(target), "--only-binary=:all:",
           "--implementation", "cp", "--python-version", python, "--no-compile", "--no-warn-script-location",
           "--disable-pip-version-check", "--no-input"]
    for tag in platform_tags(python, arch):
        cmd += ["--platform", tag]
    return cmd + list(requirements)


def _pip_install(requirements: Sequence[str], target: Path, python: str, arch: str, timeout: float,
                 log: bool) -> None:
    if importlib.util.find_spec("pip") is None:
        raise DeploymentError(f"pip is not available to {sys.executable}; install it (python -m ensurepip) and retry")
    env = {k: v for k, v in os.environ.items() if k not in _PIP_ENV_CONFLICTS}  # they clash with --target
    cmd = pip_command(requirements, target, python, arch)
    try:
        proc = subprocess.run(cmd, env=env, timeout=timeout, text=True,
                              stdout=None if log else subprocess.PIPE, stderr=subprocess.PIPE)
    except subprocess.TimeoutExpired:
        raise DeploymentError(f"pip did not finish within {timeout:.0f} s; check your network or index settings "
                              "(`pip config list`)") from None
    if proc.returncode != 0:
        lines = (proc.stderr or "").strip().splitlines()
        tail = "\n".join([line for line in lines if line.startswith("ERROR")][-6:] or lines[-12:])
        glibc, os_name = LAMBDA_PYTHONS[python]
        raise DeploymentError(
            f"pip could not install {' '.join(requirements)} for Lambda python{python} on {arch} ({os_name}, "
            f"glibc {glibc[0]}.{glibc[1]}; binary wheels only):\n{tail}\n"
            "If a pinned version has no wheel for that runtime, pick a Python whose Lambda runtime has one "
            "(--python), pass a version that has (--extra 'pkg==X'), or let pip choose with --no-match-client "
            "(pickles of that package may then not load across client and runtime)"
        )


def _distribution_versions(target: Path) -> dict[str, str]:
    return {requirement_name(d.metadata["Name"]): d.version
            for d in importlib.metadata.distributions(path=[str(target)])}


def _strip(root: Path) -> None:
    """Delete what a runtime never imports: tests, bytecode, stubs, C sources, scripts, install bookkeeping."""
    shutil.rmtree(root / "bin", ignore_errors=True)  # console scripts with the build machine's interpreter path
    for dirpath, dirnames, filenames in os.walk(root, topdown=True):
        here = Path(dirpath)
        for name in [d for d in dirnames if d in _STRIP_DIRS and here != root]:
            shutil.rmtree(here / name)
            dirnames.remove(name)
        in_dist_info = here.name.endswith(".dist-info")
        for name in filenames:
            if Path(name).suffix in _STRIP_SUFFIXES or (in_dist_info and name in _STRIP_DIST_INFO):
                (here / name).unlink()


def _tree_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def _compile_bytecode(root: Path, interpreter: str, timeout: float) -> tuple[bool, str | None]:
    """Precompile ``root`` with the target interpreter; undo it if the layer would no longer fit.

    unchecked-hash pycs are used without comparing source timestamps, which Lambda's extraction does not keep.
    Tracebacks name the files as Lambda sees them (``/opt/python/...``).
    """
    before = _tree_bytes(root)
    cmd = [interpreter, "-I", "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash",
           "-s", str(root), "-p", "/opt/python", str(root)]
    try:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        proc = None
    after = _tree_bytes(root)
    budget = MAX_UNZIPPED_BYTES - FUNCTION_CODE_RESERVE_BYTES - 2 * 1024 * 1024  # lambdamap and dml go in too
    if proc is None or after > budget:
        for cache in list(root.rglob("__pycache__")):
            shutil.rmtree(cache, ignore_errors=True)
        reason = "timed out" if proc is None else (f"would grow the layer from {_mb(before)} to {_mb(after)} "
                                                    "unzipped, over the limit")
        return False, f"bytecode not precompiled: compiling {reason}; cold starts import from source"
    note = None
    if proc.returncode != 0:  # a file that does not compile simply keeps no .pyc
        failed = [line for line in proc.stdout.splitlines() if line.startswith("***")]
        note = f"{len(failed) or 'some'} file(s) did not compile to bytecode (they load from source): {failed[:3]}"
    return True, note


def _write_entry(zf: zipfile.ZipFile, arcname: str, data: bytes, executable: bool) -> None:
    info = zipfile.ZipInfo(arcname, date_time=_ZIP_DATE)
    info.external_attr = (0o100755 if executable else 0o100644) << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    zf.writestr(info, data, compresslevel=6)


def _zip_files(zf: zipfile.ZipFile, root: Path, arcroot: str, skip_pycache: bool = False) -> None:
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root)
        if skip_pycache and ("__pycache__" in rel.parts or path.suffix in {".pyc", ".pyo"}):
            continue
        _write_entry(zf, f"{arcroot}/{rel.as_posix()}", path.read_bytes(), os.access(path, os.X_OK))


def _zip_tree(root: Path, arcroot: str, dest: Path) -> None:
    with zipfile.ZipFile(dest, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        _zip_files(zf, root, arcroot)


def project_package_dirs() -> tuple[dict[str, Path], list[str]]:
    """Where this installation's packages (:func:`~lambdamap.distribution.own_packages`) are, and warnings about
    missing ones.

    They come from one distribution, so each is taken from beside ``lambdamap`` (the same source tree or
    site-packages), never from whatever ``import`` would find first on ``sys.path``.
    """
    import lambdamap

    home = Path(lambdamap.__file__).resolve().parent
    found, warnings = {"lambdamap": home}, []
    for name in PROJECT_PACKAGES[1:]:
        candidate = home.parent / name
        if (candidate / "__init__.py").is_file():
            found[name] = candidate
        else:
            warnings.append(f"the {name!r} package is not installed beside lambdamap ({home.parent}); the layer "
                            f"lacks it, so functions from {name} will not load on Lambda")
    return found, warnings


def _add_project_packages(zip_path: Path, versions: dict[str, str]) -> list[str]:
    import lambdamap

    dirs, warnings = project_package_dirs()
    with zipfile.ZipFile(zip_path, "a", compression=zipfile.ZIP_DEFLATED) as zf:
        present = {n.split("/")[1] for n in zf.namelist() if n.count("/") >= 2}
        for name, path in dirs.items():
            if name in present:
                raise DeploymentError(f"a third-party requirement installed a package named {name!r}, which would "
                                      "clash with lambdamap's own; remove that requirement")
            _zip_files(zf, path, f"python/{name}", skip_pycache=True)
    versions["lambdamap"] = lambdamap.__version__
    return warnings


def machine_arch() -> str:
    """This machine's Lambda architecture name, if it has one (x86_64 or arm64)."""
    machine = platform.machine().lower()
    return {"amd64": "x86_64", "x86_64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}.get(machine, machine)

