"""The GPU runner: re-runs one candidate against its PyTorch reference, inside a worker.

torch and triton are imported in `setup`, in the worker process only, so this
module imports on machines without them.

Semantics of one job (a row):
- Both modules run in eval mode (dropout off, batch norm on running
  statistics): verification checks inference, the part a kernel replaces.
- The reference `{module}` comes from `info.python_code`; its instance, inputs,
  outputs and time are cached per worker, and the pool sends one module's rows
  to one worker, so they share it.
- Both modules are built from `get_init_inputs()` after `torch.manual_seed(0)`;
  then the reference's parameters and buffers are copied into the candidate
  with `load_state_dict(strict=False)`. Keys the candidate lacks or has extra
  are recorded; a key whose shape differs is skipped and recorded as
  unexpected with its shape, so a candidate storing a weight transposed fails
  on numbers, not on loading.
- `get_inputs()` is drawn after `torch.manual_seed(seed)` for each seed, moved
  to the GPU; each module gets its own clone (a kernel may write its input).
- Correct when every output has the reference's structure, shape and dtype
  and `allclose(new, ref, atol, rtol)` (NaN equal to NaN) at every seed, and
  the forward pass launched at least one Triton kernel. Launches are counted
  by wrapping triton's CUDA launcher class, which both `kernel[grid](...)` and
  inductor's generated launchers go through, so a `try`/`except` that falls
  back to torch when the launch fails is caught at run time too
  (`triton_launches` is null where the triton version has no such class).
  `max_abs_err` is the largest |new - ref|; `max_rel_err` the largest
  |new - ref| / max(|ref|, 1e-6) (the floor keeps exact zeros from dividing by 0).
- Timing only for correct rows: median of CUDA-event timings over
  `rep_ms` of calls, after `warmup_ms` of calls and one call that compiles,
  holding a per-GPU file lock so workers sharing a GPU do not time each other.
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kbpipe.verify.worker import JobError, describe, is_fatal, load_program, unload

REL_FLOOR = 1e-6
PROBE_KERNEL = """import triton
import triton.language as tl


@triton.jit
def fill(out_ptr, n, BLOCK: tl.constexpr):
    offsets = tl.arange(0, BLOCK)
    tl.store(out_ptr + offsets, 1.0, mask=offsets < n)
"""


@dataclass
class _Reference:
    ref_id: str
    model: Any = None
    init: tuple[list, dict] = ((), {})  # type: ignore[assignment]
    inputs: list[list[Any]] = field(default_factory=list)
    outputs: list[Any] = field(default_factory=list)
    ms: float | None = None
    error: str | None = None


@contextlib.contextmanager
def _phase(name: str) -> Iterator[None]:
    """Any exception, SystemExit included, becomes `{name}_error: Type: message`."""
    try:
        yield
    except JobError:
        raise
    except BaseException as exc:  # noqa: BLE001 - untrusted code may raise anything
        reason = describe(exc)
        raise JobError(f"{name}_error: {reason}", fatal=is_fatal(reason)) from exc


class GpuRunner:
    def setup(self, scratch: Path) -> dict[str, Any]:
        try:
            import torch
            import triton
        except ImportError as exc:
            raise RuntimeError(
                f"verify needs torch and triton ({exc}): install kbpipe[gpu]"
            ) from None
        if not torch.cuda.is_available():
            raise RuntimeError("torch sees no CUDA GPU")
        self.device = torch.device("cuda", 0)
        torch.zeros(1, device=self.device)  # the context now, not in the first job's timeout
        self.scratch = scratch
        visible = os.environ.get("CUDA_VISIBLE_DEVICES", "0").replace(",", "_")
        self.lock_path = scratch / f"gpu-{visible}.lock"
        self.env = {
            "gpu_name": torch.cuda.get_device_name(self.device),
            "torch_version": torch.__version__,
            "triton_version": triton.__version__,
        }
        self.reference: _Reference | None = None
        self.launches = _LaunchCounter()
        self._probe_launches()
        return self.env

    def _probe_launches(self) -> None:
        """Launch one known kernel: a counter that does not see it is switched off, so a
        triton version that launches some other way cannot fail every row."""
        import torch

        if not self.launches.installed:
            return
        probe = load_program(PROBE_KERNEL, self.scratch, "probe")
        before = self.launches.count
        out = torch.zeros(8, device=self.device)
        probe.fill[(1,)](out, 8, BLOCK=8)  # also loads the compiler before the first job
        torch.cuda.synchronize()
        if self.launches.count == before or out.sum().item() != 8:
            self.launches.installed = False

    def run(self, job: dict[str, Any]) -> dict[str, Any]:
        ref = self._reference(job)
        if ref.error:
            raise JobError(ref.error)
        settings = job["settings"]
        program = None
        model = None
        try:
            with _phase("import"):
                program = load_program(job["code"], self.scratch, "candidate")
            cls = getattr(program, f"{job['module_name']}New", None)
            if cls is None:
                raise JobError("missing_class")
            model, keys = self._instantiate(cls, ref)
            result = {**self.env, **keys, **self._compare(model, ref, settings)}
            if result["verified"] and settings["timing"]:
                result |= self._time(model, ref, settings)
            return result
        except BaseException:
            model = None
            self._release()  # an out-of-memory candidate must not starve the next one
            raise
        finally:
            unload(program)

    # ------------------------------------------------------------------ steps

    def _reference(self, job: dict[str, Any]) -> _Reference:
        ref_id = job["reference_id"]
        if self.reference is not None and self.reference.ref_id == ref_id:
            return self.reference
        self.reference = None
        self._release()
        ref = _Reference(ref_id)
        try:
            self._build_reference(ref, job)
        except JobError as exc:
            if exc.fatal:
                raise
            ref.error = exc.reason
            ref.model = ref.inputs = ref.outputs = None  # type: ignore[assignment]
        self.reference = ref
        return ref

    def _build_reference(self, ref: _Reference, job: dict[str, Any]) -> None:
        import torch

        name = job["module_name"]
        with _phase("reference"):
            module = load_program(job["reference"], self.scratch, "reference")
            cls = getattr(module, name, None)
            if cls is None:
                raise JobError(f"reference_error: no class {name} in info.python_code")
            ref.init = _init_inputs(module.get_init_inputs())
            torch.manual_seed(0)
            ref.model = cls(*ref.init[0], **ref.init[1]).to(self.device).eval()
            for seed in job["settings"]["seeds"]:
                torch.manual_seed(seed)
                inputs = _to_device(list(module.get_inputs()), self.device)
                with torch.no_grad():
                    out = ref.model(*_clone(inputs))
                torch.cuda.synchronize()
                ref.inputs.append(inputs)
                ref.outputs.append(out)

    def _instantiate(self, cls: type, ref: _Reference) -> tuple[Any, dict[str, list[str]]]:
        import torch

        with _phase("init"):
            torch.manual_seed(0)
            model = cls(*ref.init[0], **ref.init[1]).to(self.device).eval()
            own = model.state_dict()
            source = ref.model.state_dict()
            shaped = [k for k, v in source.items() if k in own and own[k].shape != v.shape]
            loadable = {k: v for k, v in source.items() if k not in shaped}
            loaded = model.load_state_dict(loadable, strict=False)
        unexpected = list(loaded.unexpected_keys) + [
            f"{k} {tuple(source[k].shape)} vs {tuple(own[k].shape)}" for k in shaped
        ]
        return model, {
            "state_dict_missing": list(loaded.missing_keys),
            "state_dict_unexpected": unexpected,
        }

    def _compare(self, model: Any, ref: _Reference, settings: dict[str, Any]) -> dict[str, Any]:
        import torch

        worst_abs = worst_rel = 0.0
        reason = None
        launches = []
        for inputs, expected in zip(ref.inputs, ref.outputs, strict=True):
            before = self.launches.count
            with _phase("forward"), torch.no_grad():
                got = model(*_clone(inputs))
                torch.cuda.synchronize()
            launches.append(self.launches.count - before)
            with _phase("compare"):
                seed_reason, abs_err, rel_err = compare_outputs(got, expected, settings)
            worst_abs, worst_rel = max(worst_abs, abs_err), max(worst_rel, rel_err)
            reason = reason or seed_reason
        if self.launches.installed and not any(launches) and reason is None:
            reason = "no_triton_launch: the forward pass launched no Triton kernel"
        return {
            "verified": reason is None,
            "verify_error": reason,
            "max_abs_err": worst_abs,
            "max_rel_err": worst_rel,
            "triton_launches": launches[0] if self.launches.installed else None,
        }

    def _time(self, model: Any, ref: _Reference, settings: dict[str, Any]) -> dict[str, Any]:
        import torch

        warmup, rep = settings["warmup_ms"], settings["rep_ms"]
        with _phase("timing"), torch.no_grad(), self._gpu_lock():
            if ref.ms is None:
                ref.ms = time_ms(lambda: ref.model(*ref.inputs[0]), warmup, rep)
            inputs = _clone(ref.inputs[0])
            new_ms = time_ms(lambda: model(*inputs), warmup, rep)
        speedup = ref.ms / new_ms if new_ms > 0 else None
        return {"ref_ms": ref.ms, "new_ms": new_ms, "speedup_measured": speedup}

    @contextlib.contextmanager
    def _gpu_lock(self) -> Iterator[None]:
        with open(self.lock_path, "a") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)  # released on close, or when we die
            yield

    def _release(self) -> None:
        import torch

        gc.collect()
        # On a poisoned context this raises again; the job's own error is the one to report.
        with contextlib.suppress(Exception):
            torch.cuda.empty_cache()


class _LaunchCounter:
    """Counts Triton kernel launches in this process (`installed` False if it cannot)."""

    def __init__(self) -> None:
        self.count = 0
        self.installed = self._wrap()

    def _wrap(self) -> bool:
        try:
            from triton.backends.nvidia.driver import CudaLauncher as launcher_cls
        except ImportError:  # triton 2.x: count JIT launches only
            try:
                from triton.runtime.jit import JITFunction as launcher_cls
            except ImportError:
                return False
        name = "__call__" if "__call__" in vars(launcher_cls) else "run"
        original = vars(launcher_cls).get(name)
        if original is None:
            return False
        counter = self

        def counted(launcher: Any, *args: Any, **kwargs: Any) -> Any:
            result = original(launcher, *args, **kwargs)
            counter.count += 1  # after the call: a launch that raised launched nothing
            return result

        setattr(launcher_cls, name, counted)
        return True


# ---------------------------------------------------------------------- helpers


def compare_outputs(
    got: Any, expected: Any, settings: dict[str, Any]
) -> tuple[str | None, float, float]:
    """(reason or None, max abs error, max rel error) of one seed's outputs."""
    import torch

    got_flat, exp_flat = _flatten(got), _flatten(expected)
    if len(got_flat) != len(exp_flat):
        return f"output_structure: {len(got_flat)} outputs, expected {len(exp_flat)}", 0.0, 0.0
    worst_abs = worst_rel = 0.0
    for i, (a, b) in enumerate(zip(got_flat, exp_flat, strict=True)):
        if not isinstance(b, torch.Tensor) or not isinstance(a, torch.Tensor):
            if a != b and not _close_scalars(a, b, settings):
                return f"mismatch: output {i} is {a!r}, expected {b!r}", math.inf, math.inf
            continue
        if a.shape != b.shape:
            return f"shape_mismatch: output {i} {tuple(a.shape)} vs {tuple(b.shape)}", 0.0, 0.0
        if a.dtype != b.dtype:
            return f"dtype_mismatch: output {i} {a.dtype} vs {b.dtype}", 0.0, 0.0
        abs_err, rel_err, close = _tensor_errors(a, b.to(a.device), settings)
        worst_abs, worst_rel = max(worst_abs, abs_err), max(worst_rel, rel_err)
        if not close:
            return f"mismatch: output {i} max_abs_err {abs_err:.3g}", worst_abs, worst_rel
    return None, worst_abs, worst_rel


def _tensor_errors(a: Any, b: Any, settings: dict[str, Any]) -> tuple[float, float, bool]:
    import torch

    if a.numel() == 0:
        return 0.0, 0.0, True
    if not (a.is_floating_point() or a.is_complex()):
        equal = bool(torch.equal(a, b))
        diff = (a.double() - b.double()).abs().max().item()
        return diff, diff, equal
    a64, b64 = a.double(), b.double()
    close = torch.allclose(a64, b64, atol=settings["atol"], rtol=settings["rtol"], equal_nan=True)
    both_nan = torch.isnan(a64) & torch.isnan(b64)
    same_inf = torch.isinf(b64) & (a64 == b64)
    diff = (a64 - b64).abs().masked_fill(both_nan | same_inf, 0.0)
    diff = diff.nan_to_num(nan=math.inf)  # a NaN where the reference has a number
    rel = diff / b64.abs().clamp_min(REL_FLOOR)
    return diff.max().item(), rel.max().item(), bool(close)


def _close_scalars(a: Any, b: Any, settings: dict[str, Any]) -> bool:
    if isinstance(a, int | float) and isinstance(b, int | float):
        return math.isclose(a, b, rel_tol=settings["rtol"], abs_tol=settings["atol"])
    return False


def time_ms(fn: Callable[[], Any], warmup_ms: float, rep_ms: float) -> float:
    """Median milliseconds of `fn` by CUDA events, after one call and a warm-up."""
    import torch

    fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(5):
        fn()
    end.record()
    torch.cuda.synchronize()
    estimate = max(start.elapsed_time(end) / 5, 1e-3)
    for _ in range(max(1, int(warmup_ms / estimate))):
        fn()
    n = max(10, min(1000, int(rep_ms / estimate)))
    events = [
        (torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
        for _ in range(n)
    ]
    for s, e in events:
        s.record()
        fn()
        e.record()
    torch.cuda.synchronize()
    times = sorted(s.elapsed_time(e) for s, e in events)
    return times[len(times) // 2]


def _init_inputs(value: Any) -> tuple[list, dict]:
    """KernelBook's `get_init_inputs()` is `[args, kwargs]`; a plain arg list also works."""
    if isinstance(value, list | tuple) and len(value) == 2 and isinstance(value[1], dict):
        return list(value[0]), dict(value[1])
    return list(value or []), {}


def _to_device(values: list[Any], device: Any) -> list[Any]:
    import torch

    return [v.to(device) if isinstance(v, torch.Tensor) else v for v in values]


def _clone(values: list[Any]) -> list[Any]:
    import torch

    return [v.clone() if isinstance(v, torch.Tensor) else v for v in values]


def _flatten(value: Any) -> list[Any]:
    if isinstance(value, list | tuple):
        return [x for v in value for x in _flatten(v)]
    if isinstance(value, dict):
        return [x for k in sorted(value, key=str) for x in _flatten(value[k])]
    return [value]
