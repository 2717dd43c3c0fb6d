"""Where torch work runs, and in which precision."""

import contextlib

import torch


def resolve_device(device, *, fitting=True):
    """The torch device to use for ``device`` (``"auto"``, ``"cpu"``, ``"cuda"``...).

    ``"auto"`` is a GPU when one is visible, else the CPU. An explicit CUDA
    device without CUDA is an error in ``fit``; outside ``fit`` it falls back
    to the CPU, so a model fitted on a GPU still predicts on a CPU-only
    machine.
    """
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(
            "device must be 'cpu', 'cuda', 'cuda:N', 'auto' or a torch.device, got "
            f"{device!r}."
        ) from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        if fitting:
            raise ValueError(
                f"device={str(device)!r} was requested but no CUDA device is "
                "available; use device='auto' to fall back to the CPU."
            )
        return torch.device("cpu")
    return device


def runs_on_gpu(device):
    """Whether ``device`` resolves to something other than the CPU here.

    For the ``non_deterministic`` estimator tag. An invalid ``device`` is
    reported by ``fit``, not here: it counts as the CPU, as does a CUDA device
    on a machine without one.
    """
    try:
        return resolve_device(device, fitting=False).type != "cpu"
    except ValueError:
        return False


PRECISIONS = ("32", "bf16-mixed", "16-mixed")


def check_precision(precision, device):
    """Raise when ``precision`` cannot train on ``device`` (a ``torch.device``)."""
    if precision == "16-mixed" and device.type != "cuda":
        raise ValueError(
            f"precision='16-mixed' trains with float16 autocast and a gradient "
            f"scaler, which need a CUDA device, but the device is {str(device)!r}. "
            "Use precision='bf16-mixed' (supported on CPUs) or '32', or train "
            "with device='cuda'."
        )


def autocast(precision, device):
    """The autocast context of ``precision`` on ``device`` (a ``torch.device``).

    ``"32"``: none. ``"bf16-mixed"``: bfloat16 autocast, on any device.
    ``"16-mixed"``: float16 autocast on a GPU; elsewhere none, so that a
    model trained in float16 on a GPU predicts in float32 on a CPU.
    """
    if precision == "bf16-mixed":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    if precision == "16-mixed" and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.float16)
    return contextlib.nullcontext()
