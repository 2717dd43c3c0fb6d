"""Saving and loading fitted models without pickle: skmm.save and skmm.load.

A pickle (and a joblib file) runs whatever code its author put in it when it
is loaded. :func:`save` writes a ``skops.io`` file instead: a zip of JSON that
names the type of every object in it and holds arrays and tensors as data.
:func:`load` refuses the file before creating any object unless every type it
names is in :data:`TRUSTED_TYPES` (or in the caller's ``trusted``), and then
builds each object from its attributes, never by calling code the file chose.

skops knows scikit-learn and numpy, not torch, so three kinds of object get a
representation of their own here:

- a tensor (and an ``nn.Parameter``) is stored as the bytes of ``torch.save``
  and read back with ``torch.load(weights_only=True)``, torch's unpickler
  restricted to tensors and plain containers;
- a torch optimizer is stored as its class, its hyper-parameters, its
  parameter groups and its per-parameter state (the tensors it shares with the
  network stay shared), and rebuilt without calling its ``__init__``;
- a skorch net is stored as its attributes, with its network, loss and
  optimizer as the objects above. skorch's own ``__getstate__`` would store
  them as ``torch.save`` pickles, read back with loading options taken from
  the file itself, which a crafted file could set to run code.

A network module is stored as its attributes like any other object; its
class, and the classes of the layers inside it, must be trusted types.
"""

import io
import uuid
from collections import defaultdict

import torch

__all__ = ["TRUSTED_TYPES", "load", "save"]

_SKOPS_MISSING = (
    "skmm.save and skmm.load need the skops package: pip install skmm[safe] "
    "(or pip install 'skops>=0.10')."
)

# Every type a fitted skmm estimator, encoder or pipeline of them holds beyond
# what skops trusts by default (builtins, numpy, scipy, scikit-learn). Kept as
# an explicit list, so that a new type shows up in a test, not in a user's
# file: tests/test_persistence.py saves every public estimator and fails on a
# type missing here.
TRUSTED_TYPES = [
    # skmm: estimators, encoders, fusion, and what their fitted state holds
    "skmm._alignment.CrossModalAligner",
    "skmm._blocks.BlockSpec",
    "skmm._estimators.FusionClassifier",
    "skmm._estimators.FusionMultiTask",
    "skmm._estimators.FusionRegressor",
    "skmm._estimators._TaskClasses",
    "skmm._estimators._silent",
    "skmm._fusion.MultimodalFusion",
    "skmm._targets.TaskTarget",
    "skmm.encoders._audio.AudioEncoder",
    "skmm.encoders._image.CNNImageEncoder",
    "skmm.encoders._image.CNNImageEncoder._augmented_tower",
    "skmm.encoders._image_pretrained.PretrainedImageEncoder",
    "skmm.encoders._sentence.SentenceTextEncoder",
    "skmm.encoders._text.SequenceTextEncoder",
    "skmm.encoders._text.TfidfTextEncoder",
    "skmm.encoders._text._clean_text",
    "skmm.nn._data.BatchIterator",
    "skmm.nn._augment.AugmentedTower",
    "skmm.nn._augment.ImageAugmentation",
    "skmm.nn._fusion_layers.AttentionFusion",
    "skmm.nn._fusion_layers.ConcatFusion",
    "skmm.nn._fusion_layers.GatedFusion",
    "skmm.nn._fusion_layers.LateFusion",
    "skmm.nn._fusion_layers.LowRankFusion",
    "skmm.nn._fusion_layers.TensorFusion",
    "skmm.nn._fusion_network.FusionNetwork",
    "skmm.nn._fusion_network.InputScaler",
    "skmm.nn._losses.MultiTaskLoss",
    "skmm.nn._skorch_net.FusionNeuralNet",
    "skmm.nn._towers.ConvTower",
    "skmm.nn._towers.MLPTower",
    "skmm.nn._towers.ProjectedTower",
    "skmm.nn._towers.SequenceTower",
    "skmm.nn._training.Dropout",
    # torch: tensors (stored as data, see above), optimizers, layers
    "torch.Tensor",
    "torch.nn.functional.relu",
    "torch.nn.modules.activation.MultiheadAttention",
    "torch.nn.modules.activation.ReLU",
    "torch.nn.modules.container.ModuleDict",
    "torch.nn.modules.container.ModuleList",
    "torch.nn.modules.container.ParameterList",
    "torch.nn.modules.container.Sequential",
    "torch.nn.modules.conv.Conv2d",
    "torch.nn.modules.linear.Linear",
    "torch.nn.modules.linear.NonDynamicallyQuantizableLinear",
    "torch.nn.modules.normalization.LayerNorm",
    "torch.nn.modules.pooling.MaxPool2d",
    "torch.nn.modules.rnn.GRU",
    "torch.nn.modules.sparse.Embedding",
    "torch.nn.modules.transformer.TransformerEncoder",
    "torch.nn.modules.transformer.TransformerEncoderLayer",
    "torch.nn.parameter.Parameter",
    "torch.optim.adagrad.Adagrad",
    "torch.optim.adam.Adam",
    "torch.optim.adamw.AdamW",
    "torch.optim.rmsprop.RMSprop",
    "torch.optim.sgd.SGD",
    # skorch: the net's dataset class, optimizer setter, callbacks, history
    "skorch.callbacks.logging.EpochTimer",
    "skorch.callbacks.logging.PrintLog",
    "skorch.callbacks.scoring.PassthroughScoring",
    "skorch.callbacks.training.EarlyStopping",
    "skorch.dataset.Dataset",
    "skorch.history.History",
    "skorch.setter.optimizer_setter",
    # Python: the print sink of skorch's log, partial of a trusted function
    "builtins.print",
    "functools.partial",
]


def _skops_io():
    try:
        import skops.io as sio
    except ImportError as exc:
        raise ImportError(_SKOPS_MISSING) from exc
    _register(sio)
    return sio


def save(obj, path):
    """Save a fitted skmm model (or any object of trusted types) to ``path``.

    The file is a ``skops.io`` archive: it holds data and the names of types,
    no code, and :func:`load` reads it back without running code the file
    chose. Tensors are stored as tensor data; a model trained on a GPU loads
    on a CPU-only machine.

    Parameters
    ----------
    obj : object
        A fitted estimator, encoder or pipeline.
    path : str or path-like
        Where to write; ``.skops`` is the usual extension.

    Raises
    ------
    TypeError
        If ``obj`` holds an object a safe file cannot store, such as a
        pretrained sentence-transformers model trained inside a fusion
        estimator.

    See Also
    --------
    load : read the file back.
    """
    sio = _skops_io()
    try:
        sio.dump(obj, path)
    except (RecursionError, TypeError) as exc:
        raise TypeError(
            f"skmm.save cannot store this {type(obj).__name__}: "
            f"{type(exc).__name__}: {str(exc)[:200]}. A pretrained tower trained "
            "inside a fusion estimator (the blocks of SentenceTextEncoder("
            "output='tokens') or PretrainedImageEncoder(output='pixels')) holds "
            "objects of its own package that a safe file cannot store: save such "
            "a model with joblib, and load it only from a trusted source."
        ) from exc


def load(path, trusted=None):
    """Load a file written by :func:`save`, refusing any type not trusted.

    The types in ``skmm.TRUSTED_TYPES`` (skmm's estimators and encoders and
    the torch, skorch and scikit-learn types their fitted state holds) are
    trusted; a file that names any other type is refused before any object
    is created.

    Parameters
    ----------
    path : str or path-like
        A file written by :func:`save`.
    trusted : list of str, default=None
        Further types to trust, by their full name (``"module.Class"``): only
        types you have reviewed, in a file from a source you trust.

    Returns
    -------
    obj : object
        The saved object.

    Raises
    ------
    TypeError
        If the file names a type that is not trusted; the message names it.
    """
    sio = _skops_io()
    from skops.io.exceptions import UntrustedTypesFoundException

    allowed = TRUSTED_TYPES + list(trusted or [])
    try:
        return sio.load(path, trusted=allowed)
    except UntrustedTypesFoundException:
        untrusted = sorted(
            set(sio.get_untrusted_types(file=path)) - set(allowed),
        )
        raise TypeError(
            f"The file {str(path)!r} holds objects of types that skmm.load does "
            f"not trust: {untrusted}. Loading them could run code from the file. "
            "If you wrote the file yourself or trust its source, and these types "
            "are yours, pass them as trusted=[...]."
        ) from None


# -- skops representations of torch and skorch objects ---------------------------

_registered = False


def _register(sio):
    """Teach skops the three representations described in the module docstring."""
    global _registered
    if _registered:
        return
    # skops has no public extension API: its dispatchers are module-level.
    from skops.io._audit import NODE_TYPE_MAPPING, Node, get_tree
    from skops.io._protocol import PROTOCOL
    from skops.io._utils import _get_state, get_module, get_state, gettype
    from skorch import NeuralNet

    def header(obj, loader):
        return {
            "__class__": type(obj).__name__,
            "__module__": get_module(type(obj)),
            "__loader__": loader,
        }

    def tensor_get_state(obj, save_context):
        buffer = io.BytesIO()
        torch.save(obj.detach().cpu().clone(), buffer)
        name = f"{uuid.uuid4().hex}.pt"
        save_context.zip_file.writestr(name, buffer.getvalue())
        state = header(obj, "SkmmTensorNode")
        state["file"] = name
        state["requires_grad"] = bool(obj.requires_grad)
        return state

    class TensorNode(Node):
        def __init__(self, state, load_context, trusted=None):
            super().__init__(state, load_context, trusted)
            self.trusted = self._get_trusted(trusted, [])
            self.data = load_context.src.read(state["file"])
            self.requires_grad = state["requires_grad"]
            self.children = {}

        def _construct(self):
            tensor = torch.load(
                io.BytesIO(self.data), map_location="cpu", weights_only=True
            )
            if not isinstance(tensor, torch.Tensor):
                raise TypeError("A tensor entry of the file does not hold a tensor.")
            if self.class_name == "Parameter":
                return torch.nn.Parameter(tensor, requires_grad=self.requires_grad)
            return tensor.requires_grad_(self.requires_grad)

    def optimizer_get_state(obj, save_context):
        state = header(obj, "SkmmOptimizerNode")
        state["content"] = get_state(
            {
                "defaults": obj.defaults,
                "param_groups": [dict(group) for group in obj.param_groups],
                "state": [[param, dict(s)] for param, s in obj.state.items()],
            },
            save_context,
        )
        return state

    class OptimizerNode(Node):
        def __init__(self, state, load_context, trusted=None):
            super().__init__(state, load_context, trusted)
            self.trusted = self._get_trusted(trusted, [])
            self.content = get_tree(state["content"], load_context, trusted=trusted)
            self.children = {"content": self.content}

        def _construct(self):
            cls = gettype(self.module_name, self.class_name)
            content = self.content.construct()
            per_param = defaultdict(dict)
            for param, param_state in content["state"]:
                per_param[param] = param_state
            optimizer = cls.__new__(cls)
            optimizer.__setstate__(
                {
                    "defaults": content["defaults"],
                    "param_groups": content["param_groups"],
                    "state": per_param,
                }
            )
            return optimizer

    def net_get_state(obj, save_context):
        attrs = dict(vars(obj))
        attrs["batch_listeners_"] = None
        state = header(obj, "SkmmNeuralNetNode")
        state["content"] = get_state(attrs, save_context)
        return state

    class NeuralNetNode(Node):
        def __init__(self, state, load_context, trusted=None):
            super().__init__(state, load_context, trusted)
            self.trusted = self._get_trusted(trusted, [])
            self.attrs = get_tree(state["content"], load_context, trusted=trusted)
            self.children = {"attrs": self.attrs}

        def _construct(self):
            cls = gettype(self.module_name, self.class_name)
            net = cls.__new__(cls)
            vars(net).update(self.attrs.construct())
            _to_available_device(net)
            return net

    _get_state.register(torch.Tensor)(tensor_get_state)
    _get_state.register(torch.optim.Optimizer)(optimizer_get_state)
    _get_state.register(NeuralNet)(net_get_state)
    NODE_TYPE_MAPPING[("SkmmTensorNode", PROTOCOL)] = TensorNode
    NODE_TYPE_MAPPING[("SkmmOptimizerNode", PROTOCOL)] = OptimizerNode
    NODE_TYPE_MAPPING[("SkmmNeuralNetNode", PROTOCOL)] = NeuralNetNode
    _registered = True


def _to_available_device(net):
    """Put a loaded net (whose tensors load on the CPU) on its device, or the CPU."""
    device = str(getattr(net, "device", "cpu") or "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        device = "cpu"
    net.device = device
    for name in ("module_", "criterion_"):
        module = getattr(net, name, None)
        if isinstance(module, torch.nn.Module):
            module.to(device)
    optimizer = getattr(net, "optimizer_", None)
    if isinstance(optimizer, torch.optim.Optimizer) and device != "cpu":
        # Loading its own state moves the optimizer's tensors to those of
        # the parameters.
        optimizer.load_state_dict(optimizer.state_dict())
