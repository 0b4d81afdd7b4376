"""Job summaries, the Lambda cost model, and timeline plots."""

from __future__ import annotations

import subprocess
import sys
import time

import matplotlib.image
import pytest

import lambdamap
from lambdamap.observe.summary import LambdaPricing, lambda_cost


def test_lambda_cost_bills_per_started_millisecond_and_request():
    pricing = LambdaPricing(gb_second_x86_64=1.0, gb_second_arm64=0.5, per_request=0.25)
    # 0.0001 s is billed as 1 ms; 1.0004 s as 1001 ms; at 2048 MB = 2 GB.
    assert lambda_cost([0.0001, 1.0004], 2048, pricing=pricing) == pytest.approx(2 * 1.002 + 2 * 0.25)
    assert lambda_cost([1.0], 1024, architecture="arm64", pricing=pricing) == pytest.approx(0.5 + 0.25)
    default = lambda_cost([1.0] * 1000, 1024)  # 1000 GB-s at the published us-east-1 price + 1000 requests
    assert default == pytest.approx(1000 * 0.0000166667 + 1000 * 0.20 / 1e6)


def test_pricing_lives_in_aws_and_summaries_do_not_import_boto3():
    code = ("import sys, lambdamap, lambdamap.observe.summary as s, lambdamap.aws.pricing as p; "
            "assert lambdamap.LambdaPricing is s.LambdaPricing is p.LambdaPricing; "
            "assert lambdamap.lambda_cost is s.lambda_cost is p.lambda_cost; "
            "assert 'boto3' not in sys.modules and 'botocore' not in sys.modules, 'boto3 imported'")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("kwargs, fragment", [({"memory_mb": 64}, "128 to 10240"),
                                              ({"memory_mb": 512, "architecture": "sparc"}, "architecture")])
def test_lambda_cost_rejects_bad_settings(kwargs, fragment):
    memory = kwargs.pop("memory_mb")
    with pytest.raises(ValueError, match=fragment):
        lambda_cost([1.0], memory, **kwargs)


def test_job_summary_counts_what_ran():
    with lambdamap.local_executor(workers=2, progress=False) as pwex:
        def fn(x):
            if x == 3:
                raise ValueError("three")
            time.sleep(0.02)
            return x

        futures = pwex.map(fn, range(8), chunksize=2)
        lambdamap.wait(futures)
        summary = pwex.job_summary(futures)
        assert (summary.calls, summary.failed_calls, summary.invocations, summary.jobs) == (8, 1, 4, 1)
        assert summary.function_seconds >= 7 * 0.02
        assert summary.invocation_seconds >= summary.function_seconds * 0.9
        assert summary.wall_seconds >= 0.04 and 1 <= summary.workers <= 2
        assert summary.bytes_uploaded > 0 and summary.bytes_downloaded > 0
        assert summary.storage_requests >= 4 * 3  # at least args put + worker reads/writes per invocation
        assert summary.platform == "local" and summary.cost_usd is None
        priced = pwex.job_summary(futures, memory_mb=1769)
        assert priced.cost_usd == pytest.approx(
            lambda_cost([r["worker_end"] - r["worker_start"] for j in pwex.jobs() for r in j.records
                         if j.job_id == futures[0].job_id], 1769))
        assert "estimated AWS Lambda cost at 1769 MB" in str(priced)


@pytest.mark.parametrize("n", [10, 10_000])
def test_plot_writes_a_readable_png(tmp_path, n):
    with lambdamap.local_executor(workers=2, progress=False) as pwex:
        futures = pwex.map(abs, range(n))
        lambdamap.wait(futures)
        path = lambdamap.plot(futures, tmp_path / "timeline.png")
    image = matplotlib.image.imread(path)
    assert image.shape[0] > 500 and image.shape[1] > 800
    assert image[..., :3].std() > 0.05  # something was drawn, not a blank canvas


def test_plot_needs_finished_futures(tmp_path):
    with pytest.raises(lambdamap.ConfigError, match="at least one future"):
        lambdamap.plot([], tmp_path / "x.png")
    with lambdamap.local_executor(workers=1, progress=False) as pwex:
        fut = pwex.submit(time.sleep, 2)
        with pytest.raises(lambdamap.ConfigError, match="none of the futures has finished"):
            lambdamap.plot([fut], tmp_path / "x.png")


def _tick_texts(ax, axis: str) -> list[str]:
    """The tick labels ``axis`` of ``ax`` shows (major and minor, inside the view)."""
    low, high = sorted(ax.get_ylim() if axis == "y" else ax.get_xlim())
    labels = ax.get_yticklabels(which="both") if axis == "y" else ax.get_xticklabels(which="both")
    index = 1 if axis == "y" else 0
    return [t.get_text() for t in labels
            if t.get_visible() and t.get_text() and low <= t.get_position()[index] <= high]


@pytest.mark.parametrize("n", [20, 2_000])
def test_plot_labels_calls_and_counts_with_integers_and_names_job_and_backend(tmp_path, monkeypatch, n):
    import matplotlib.figure

    drawn = []
    savefig = matplotlib.figure.Figure.savefig

    def keep(fig, *args, **kwargs):  # look at the figure plot() saves, whatever its layout
        drawn.append(fig)
        return savefig(fig, *args, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", keep)
    with lambdamap.local_executor(workers=2, progress=False) as pwex:
        futures = pwex.map(abs, range(n), chunksize=1 if n == 20 else 10)
        lambdamap.wait(futures)
        lambdamap.plot(futures, tmp_path / "timeline.png")
    (fig,) = drawn
    titles = [fig._suptitle.get_text() if fig._suptitle else ""] + [ax.get_title() for ax in fig.axes]
    assert any(futures[0].job_id in t and "on local" in t for t in titles), titles
    # Call numbers and call counts (every y axis here) are whole numbers, written plainly: not 2.5, not 1.8x10^1.
    labels = [text for ax in fig.axes for text in _tick_texts(ax, "y") if ax.get_ylabel() in (
        "calls", "call (in submission order)")]
    assert labels and all(text.replace(",", "").replace("\N{MINUS SIGN}", "-").isdigit() for text in labels), labels
    assert any(ax.get_ylabel() == "worker" for ax in fig.axes)  # the one-row-per-worker view
