"""Code run in a real Jupyter kernel (ipykernel, driven through jupyter_client): a function defined in a cell fails
on a worker, and its remote traceback names the cell and shows the cell's source line."""

from __future__ import annotations

import os
import time

import pytest

jupyter_client = pytest.importorskip("jupyter_client")


@pytest.fixture
def kernel(tmp_path):
    from jupyter_client.manager import start_new_kernel

    tmp = tmp_path / "tmp"  # the kernel's own TMPDIR: a folder left behind would show, and never litter /tmp
    tmp.mkdir()
    env = {**os.environ, "LAMBDAMAP_BACKEND": "local", "LAMBDAMAP_CONFIG": str(tmp_path / "none.toml"),
           "TMPDIR": str(tmp)}
    manager, client = start_new_kernel(kernel_name="python3", cwd=str(tmp_path), env=env, startup_timeout=120)
    client.parent = manager  # the tests interrupt the kernel through its manager, as Jupyter's stop button does
    try:
        yield client
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=False)  # a graceful shutdown, as Jupyter's: the kernel's exit hooks run
    assert [p.name for p in tmp.iterdir() if p.name.startswith("lambdamap-")] == []


def run_cell(client, code: str, timeout: float = 120) -> str:
    out: list[str] = []

    def hook(msg):
        content = msg["content"]
        if msg["msg_type"] == "stream":
            out.append(content["text"])
        elif msg["msg_type"] == "error":
            out.append("\n".join(content["traceback"]))

    reply = client.execute_interactive(code, output_hook=hook, timeout=timeout)
    assert reply["content"]["status"] == "ok", "".join(out)
    return "".join(out)


def test_cell_function_traceback_names_the_cell_and_its_source(kernel):
    run_cell(kernel, "import lambdamap\npwex = lambdamap.local_executor(workers=1, progress=False)")
    run_cell(kernel, "def scale(x):\n    factor = 10\n    return factor / (x - 3)  # cell source line\n")
    out = run_cell(kernel, "exc = pwex.submit(scale, 3).exception(timeout=120)\n"
                           "print(type(exc).__name__)\nprint(exc.__cause__.tb)\n"
                           "print(lambdamap.get_all_results(pwex.map(scale, [4, 5])))\npwex.shutdown()")
    assert out.startswith("ZeroDivisionError\n"), out
    # IPython names a cell's code after a file under its temporary folder and keeps its lines in linecache.
    assert "ipykernel_" in out and ", line 3, in scale\n    return factor / (x - 3)  # cell source line" in out, out
    assert "<dynamic-code>" not in out
    assert out.rstrip().endswith("[10.0, 5.0]")


def test_interrupting_a_cell_cancels_the_job_and_the_next_map_is_not_stuck_behind_it(kernel):
    run_cell(kernel, "import time, lambdamap\npwex = lambdamap.default_executor(workers=2)")
    msg_id = kernel.execute("futures = pwex.map(time.sleep, [1.0] * 40, chunksize=1)\n"
                            "lambdamap.get_all_results(futures)")
    time.sleep(2.0)
    kernel_manager_interrupt(kernel)
    reply = kernel.get_shell_msg(timeout=60)
    assert reply["parent_header"]["msg_id"] == msg_id and reply["content"]["status"] == "error"
    assert reply["content"]["ename"] == "KeyboardInterrupt"
    start = time.monotonic()
    out = run_cell(kernel, "print(lambdamap.get_all_results(pwex.map(abs, [-1, -2])))\n"
                           "print(sum(f.cancelled() for f in futures) > 30, all(f.done() for f in futures))\n"
                           "print(lambdamap.default_executor(workers=2) is pwex)")
    assert time.monotonic() - start < 10  # was 18 s: waiting behind the abandoned calls
    assert out.splitlines()[-3:] == ["[1, 2]", "True True", "True"], out


def kernel_manager_interrupt(client) -> None:
    client.parent.interrupt_kernel()
