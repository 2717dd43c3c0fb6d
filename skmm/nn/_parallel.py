"""Data-parallel training of one network over several processes.

With ``data_parallel=True`` a fusion estimator trains as torch's
``DistributedDataParallel`` does: every process of a ``torchrun`` launch fits
the same estimator on the same data, takes its share of the rows of every
batch, and averages the gradients with the others before each optimizer
step, so that all processes keep the same weights. The pieces:

- :func:`setup_data_parallel` joins the process group that ``torchrun``
  describes in the environment (NCCL between GPUs, Gloo between CPUs) and
  gives each process its own GPU (``LOCAL_RANK``);
- :func:`broadcast_seed` and :func:`broadcast_module` make every process
  start from the seeds and weights of process 0;
- :func:`shard` keeps a process's share of a batch's rows;
- :func:`average_gradients` sums the gradients of all processes, each
  weighted by its number of rows, in one collective: the step is the one a
  single process would take on the whole batch;
- :func:`reduce_batch_loss` gives every process the loss of the whole
  batch, so that the history, early stopping and the check for a diverged
  loss decide the same way everywhere.

Gradients are averaged after the backward pass rather than overlapped with
it as ``DistributedDataParallel`` does; for skmm's networks the collective
is small beside the step, and the network needs no wrapper (its weights,
pickles and ``state_dict`` stay those of a single-process fit).
"""

import os

import torch
import torch.distributed as dist

__all__ = [
    "average_gradients",
    "broadcast_module",
    "broadcast_seed",
    "reduce_batch_loss",
    "setup_data_parallel",
    "shard",
    "world",
]

_LAUNCH = (
    "Launch the script with torchrun, one process per device, e.g. "
    "`torchrun --nproc_per_node=2 train.py`, or call "
    "torch.distributed.init_process_group first."
)


def world():
    """``(rank, world_size)`` of this process in the default process group."""
    return dist.get_rank(), dist.get_world_size()


def setup_data_parallel(device):
    """Join the process group and return the device of this process.

    Parameters
    ----------
    device : torch.device
        The device the estimator resolved (``"cuda"`` or ``"cpu"``).

    Returns
    -------
    device : torch.device
        ``cuda:LOCAL_RANK`` for a CUDA device without an index, else
        ``device``.
    """
    if not dist.is_available():
        raise ValueError(
            "data_parallel=True needs torch.distributed, which this build of "
            "torch lacks."
        )
    if not dist.is_initialized():
        missing = [
            key
            for key in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
            if key not in os.environ
        ]
        if missing:
            raise ValueError(
                "data_parallel=True trains one model over several processes, but "
                "this process was not started as one of them (the environment "
                f"lacks {', '.join(missing)}). {_LAUNCH}"
            )
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return device


def _collective_device(device):
    # NCCL moves CUDA tensors only; Gloo moves CPU tensors.
    return device if dist.get_backend() == "nccl" else torch.device("cpu")


def broadcast_seed(seed, device):
    """Process 0's ``seed``, in every process."""
    value = torch.tensor([seed], dtype=torch.int64, device=_collective_device(device))
    dist.broadcast(value, src=0)
    return int(value.item())


def broadcast_module(module, device):
    """Copy process 0's parameters and buffers into ``module`` everywhere."""
    target = _collective_device(device)
    for tensor in [*module.parameters(), *module.buffers()]:
        data = tensor.data
        moved = data if data.device == target else data.to(target)
        dist.broadcast(moved, src=0)
        if moved is not data:
            data.copy_(moved)


def shard(rows):
    """This process's share of a batch's ``rows`` (a LongTensor or a slice).

    Rows are dealt round-robin, so shares differ by at most one row. A batch
    with fewer rows than processes returns None: the processes must all
    take the same number of steps, so such a batch is skipped everywhere.
    """
    rank, size = world()
    if isinstance(rows, slice):
        if rows.stop - rows.start < size:
            return None
        return slice(rows.start + rank, rows.stop, size)
    if len(rows) < size:
        return None
    return rows[rank::size]


def average_gradients(parameters, n_rows):
    """Replace each gradient by the row-weighted mean over all processes.

    Parameters
    ----------
    parameters : iterable of Tensor
        The trainable parameters; one without a gradient counts as zero.
    n_rows : int
        Rows of this process's share of the batch.
    """
    parameters = [p for p in parameters if p.requires_grad]
    if not parameters:
        return
    grads = [
        torch.zeros_like(p) if p.grad is None else p.grad.detach() for p in parameters
    ]
    device = grads[0].device
    flat = torch.cat([g.reshape(-1).float() * n_rows for g in grads])
    flat = torch.cat([flat, torch.tensor([float(n_rows)], device=device)])
    collective = _collective_device(device)
    moved = flat.to(collective)
    dist.all_reduce(moved)
    flat = moved.to(device)
    total = flat[-1]
    offset = 0
    for p, g in zip(parameters, grads):
        n = g.numel()
        mean = (flat[offset : offset + n] / total).view_as(g).to(g.dtype)
        if p.grad is None:
            p.grad = mean
        else:
            p.grad.copy_(mean)
        offset += n


def reduce_batch_loss(loss, n_rows, device):
    """The loss and the number of rows of the whole batch, over all processes."""
    values = torch.tensor(
        [loss * n_rows, float(n_rows)],
        dtype=torch.float64,
        device=_collective_device(device),
    )
    dist.all_reduce(values)
    total, rows = values.tolist()
    return total / rows, int(rows)
