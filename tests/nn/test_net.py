"""FusionNeuralNet: skorch's NeuralNet with a leaner batch loop, same results."""

import pickle

import numpy as np
import torch
from skorch import NeuralNet
from skorch.callbacks import Callback, EarlyStopping
from skorch.helper import predefined_split

from skmm import ModalityBlocks
from skmm.nn._data import BatchIterator, BlockDataset
from skmm.nn._fusion_network import FusionNetwork
from skmm.nn._losses import MultiTaskLoss
from skmm.nn._skorch_net import FusionNeuralNet


class _CountBatches(Callback):
    def initialize(self):
        self.batches = 0
        return self

    def on_batch_end(self, net, **kwargs):
        self.batches += 1


def _fit(net_class, callbacks):
    rng = np.random.RandomState(0)
    X = rng.normal(size=(120, 5)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    blocks = ModalityBlocks({"X": X})
    data = BlockDataset(blocks, {"y": y})
    train, valid = data.subset(np.arange(90)), data.subset(np.arange(90, 120))
    torch.manual_seed(0)
    module = FusionNetwork(blocks.specs, {"y": 2}, hidden_dim=8, dropout=0.2)
    net = net_class(
        module=module,
        criterion=MultiTaskLoss({"y": "classification"}),
        optimizer=torch.optim.Adam,
        lr=1e-2,
        max_epochs=30,
        batch_size=16,
        iterator_train=BatchIterator,
        iterator_valid=BatchIterator,
        iterator_train__shuffle=True,
        iterator_train__generator=torch.Generator().manual_seed(0),
        train_split=predefined_split(valid),
        callbacks=callbacks,
        verbose=0,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        net.fit(train, y=None)
    return net


def test_same_history_weights_and_callbacks_as_neural_net():
    counts = {}
    nets = {}
    for net_class in (NeuralNet, FusionNeuralNet):
        counter = _CountBatches()
        stop = EarlyStopping(patience=3, load_best=True, sink=lambda *a: None)
        nets[net_class] = _fit(net_class, [("count", counter), ("stop", stop)])
        counts[net_class] = counter.batches
    plain, lean = nets[NeuralNet], nets[FusionNeuralNet]
    assert counts[NeuralNet] == counts[FusionNeuralNet] > 0
    assert len(plain.history) == len(lean.history) < 30
    np.testing.assert_allclose(
        plain.history[:, "train_loss"], lean.history[:, "train_loss"]
    )
    np.testing.assert_allclose(
        plain.history[:, "valid_loss"], lean.history[:, "valid_loss"]
    )
    for a, b in zip(plain.module_.parameters(), lean.module_.parameters()):
        torch.testing.assert_close(a, b)


def test_a_pickled_net_keeps_no_stale_batch_listeners():
    net = _fit(FusionNeuralNet, [("count", _CountBatches())])
    assert net.batch_listeners_ is not None
    net.callbacks = []
    net.initialize_callbacks()
    net.batch_listeners_ = net._batch_listeners() | {"on_batch_end": ["stale"]}
    restored = pickle.loads(pickle.dumps(net))
    assert restored.batch_listeners_ is None
    assert restored._listeners("on_batch_end") == []
