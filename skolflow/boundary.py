"""Prefect's ``task`` and ``flow`` decorators, with every exception that leaves a task or flow body sanitised.

Prefect logs a failed run's exception (its repr and traceback), makes its text the state message and
sends it in events and to the console. Wrapping each body here means no task or flow has to remember a
try/except for that (DESIGN §5, sanitised errors): :func:`skolflow.errors.sanitise` decides what may be
said, and the original leaves nowhere. A test keeps every module on these decorators.

Prefect uses the function for more than calling it, so the wrapper is made to pass for it:

- name, qualname, module, docstring and signature (``functools.update_wrapper``; ``inspect.signature``
  follows ``__wrapped__``): run names, parameter schemas, deployment entrypoints, descriptions;
- the function's own globals: Prefect resolves flow parameters' (string) annotations in ``fn.__globals__``
  when it validates them, so the wrapper's code reads nothing from this module's globals;
- the function's ``co_name`` and ``co_qualname`` on the wrapper's code: a task key is the qualname and a hash
  of ``fn.__code__``, so each task keeps a key of its own (and a traceback names the function);
- a flow's default version is the hash of the function's file, as Prefect computes it, not of this file.

Generator functions are refused: their exceptions arise while Prefect iterates, outside any wrapper.
"""

from __future__ import annotations

import functools
import inspect
import types
from collections.abc import Callable
from typing import Any, TypeVar, cast

import prefect
from prefect.flow_engine import FlowRunTimeoutError
from prefect.task_engine import TaskRunTimeoutError
from prefect.utilities.hashing import file_hash

from skolflow.errors import sanitise

Decorator = TypeVar("Decorator", bound=Callable[..., Any])

# Prefect raises these inside the body to end a run that overran its timeout, and recognises them by type.
PREFECT_TIMEOUTS = (TaskRunTimeoutError, FlowRunTimeoutError)


def _leaving(exc: Exception) -> BaseException:
    """What may leave the body instead of ``exc``, with no chained exception (which may be the original)."""
    if isinstance(exc, PREFECT_TIMEOUTS):
        return exc
    safe = sanitise(exc)
    safe.__cause__ = safe.__context__ = None
    return safe


def _sanitising(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` with every exception it raises sanitised, indistinguishable from ``fn`` to Prefect."""
    if inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn):
        raise TypeError(f"{fn.__qualname__}: a generator cannot be a skolflow task or flow (its exceptions "
                        "would leave unsanitised)")
    leaving = _leaving  # a closure cell: the wrapper runs with fn's globals, where this module's names are not

    if inspect.iscoroutinefunction(fn):
        async def body(*args: Any, **kwargs: Any) -> Any:
            try:
                return await fn(*args, **kwargs)
            except Exception as exc:
                safe = leaving(exc)
            raise safe from None  # outside the handler: nothing sets the original as __context__ again
    else:
        def body(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except Exception as exc:
                safe = leaving(exc)
            raise safe from None

    code = body.__code__.replace(co_name=fn.__name__, co_qualname=fn.__qualname__)
    wrapper = types.FunctionType(code, fn.__globals__, fn.__name__, None, body.__closure__)
    return functools.update_wrapper(wrapper, fn)


def _file_version(fn: Callable[..., Any]) -> str | None:
    """Prefect's default flow version (the hash of the file the function is in), for the function itself."""
    try:
        path = inspect.getsourcefile(fn)
        return file_hash(path) if path else None
    except (TypeError, OSError):
        return None


Options = dict[str, Any]


def _applied(decorator: Decorator, prepare: Callable[[Callable[..., Any], Options], Options]) -> Decorator:
    """``decorator`` (Prefect's) applied to the sanitising wrapper of the function, in both of its forms."""

    @functools.wraps(decorator)
    def decorate(fn: Callable[..., Any] | None = None, /, **options: Any) -> Any:
        if fn is None:  # @task(name=…): the options first, the function next
            return functools.partial(decorate, **options)
        return decorator(_sanitising(fn), **prepare(fn, options))

    return cast(Decorator, decorate)


task = _applied(prefect.task, lambda fn, options: options)
flow = _applied(prefect.flow, lambda fn, options: {**options, "version": options.get("version") or _file_version(fn)})
