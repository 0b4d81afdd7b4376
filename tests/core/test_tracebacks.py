"""Remote tracebacks as plain data, rendered on the client with the client's source (lambdamap.core.tracebacks)."""

from __future__ import annotations

import inspect
import pickle
import traceback

import cloudpickle

from lambdamap.core import serialize, tracebacks


def _without_carets(text: str) -> list[str]:
    return [line for line in text.splitlines() if set(line.strip()) - {"^", "~"}]


def test_a_chain_renders_as_python_prints_it():
    def inner():
        raise KeyError("low")

    def outer():
        try:
            inner()
        except KeyError as exc:
            raise ValueError("high") from exc

    try:
        try:
            outer()
        except ValueError:
            raise RuntimeError("while handling")  # noqa: B904 - the implicit context is what is tested
    except RuntimeError as exc:
        caught = exc
    rendered = tracebacks.capture(caught).render()
    assert _without_carets(rendered) == _without_carets("".join(traceback.format_exception(caught)))
    assert "direct cause" in rendered and "During handling" in rendered


def test_code_pickled_by_value_is_rendered_with_the_real_file_and_line():
    # Round trip through our pickler, as a worker gets it (cloudpickle >= 3.1.3 renames the file "<dynamic-code>").
    fn = pickle.loads(serialize.dumps_function(_by_value()))
    dynamic = tuple(map(int, cloudpickle.__version__.split(".")[:3])) >= (3, 1, 3)
    assert (fn.__code__.co_filename == tracebacks.DYNAMIC_FILENAME) == dynamic
    try:
        fn("a")
    except KeyError as exc:
        trace = tracebacks.capture(exc)
    frame = trace.sections[-1].frames[-1]
    assert frame.name == "fails_by_value"
    rendered = trace.render()
    line_no = inspect.getsourcelines(_by_value())[1] + 1
    assert f'File "{__file__}", line {line_no}, in fails_by_value\n    return {{"b": 2}}[x]' in rendered, rendered
    assert tracebacks.DYNAMIC_FILENAME not in rendered


def _by_value():
    def fails_by_value(x):
        return {"b": 2}[x]
    fails_by_value.__module__ = "__main__"  # pickled by value, as cloudpickle does for __main__ and local modules
    return fails_by_value


def test_unknown_dynamic_frames_still_render():
    frame = tracebacks.Frame(tracebacks.DYNAMIC_FILENAME, 7, "gone", "gone", 5, "")
    trace = tracebacks.RemoteTrace((tracebacks.Section((frame,), ("ValueError: x\n",), None),))
    assert trace.render() == ('Traceback (most recent call last):\n  File "<dynamic-code>", line 7, in gone\n'
                              "ValueError: x\n")
