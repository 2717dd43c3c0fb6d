"""Transfer from a pretrained image network: frozen features or fine-tuning.

A small convolutional network is first trained on a large *source* task
(the orientation of striped images, 3,000 images) and its weights are saved
to a local file, as a published checkpoint would be. A *target* task with few
labels (300 training rows) needs the orientation of a row's image together
with a tabular column: ``y = horizontal XOR (x > 0)``. Four
``FusionClassifier`` pipelines read the images through
``PretrainedImageEncoder``:

- the same network with random weights, frozen (no transfer);
- the pretrained weights, frozen (``output="features"``: fixed features);
- the pretrained weights, fine-tuned with the rest of the model
  (``output="pixels"``, ``freeze=False``, at its own ``tower_lr``);
- the tabular column alone, for reference.

Then a grid search over fusion strategies shows the cache of frozen
encoders at work: each image is decoded and encoded once per fold, not once
per candidate.

Run with::

    python examples/pretrained_image_transfer.py
"""

import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import nn

from skmm import FusionClassifier, MultimodalFusion, PretrainedImageEncoder
from skmm.utils import frozen_cache_info

SIZE = 32
# Images are scaled to [0, 1], then normalised with these.
MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


def striped_images(n, rng):
    """RGB stripes of random period, phase, tint and noise; 1 if horizontal."""
    horizontal = rng.randint(0, 2, size=n)
    grid = np.arange(SIZE, dtype=np.float32)
    images = np.empty((n, SIZE, SIZE, 3), dtype=np.uint8)
    for i in range(n):
        period = rng.uniform(4, 10)
        wave = 0.5 + 0.5 * np.sin(2 * np.pi * grid / period + rng.uniform(0, 6.3))
        pattern = wave[:, None] if horizontal[i] else wave[None, :]
        pattern = np.broadcast_to(pattern, (SIZE, SIZE))
        tint = rng.uniform(0.3, 1.0, size=3)
        noisy = pattern[..., None] * tint + rng.normal(0, 0.6, (SIZE, SIZE, 3))
        images[i] = np.clip(noisy * 255, 0, 255).astype(np.uint8)
    return images, horizontal


def backbone():
    """The architecture the checkpoint is for: 32 pooled features."""
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.BatchNorm2d(32),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
    )


def pretrain(path, rng):
    """Train the backbone on the source task and save its state_dict."""
    images, labels = striped_images(3000, rng)
    X = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    X = (X - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    y = torch.from_numpy(labels)
    torch.manual_seed(0)
    network = backbone()
    model = nn.Sequential(network, nn.Linear(32, 2))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(3):
        for idx in torch.randperm(len(X)).split(64):
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(X[idx]), y[idx]).backward()
            optimizer.step()
    model.eval()
    with torch.no_grad():
        accuracy = (model(X).argmax(1) == y).float().mean().item()
    torch.save(network.state_dict(), path)
    return accuracy


def target_data(n, rng):
    images, horizontal = striped_images(n, rng)
    x = rng.normal(size=n)
    cells = np.empty(n, dtype=object)
    cells[:] = list(images)
    X = pd.DataFrame({"photo": cells, "x": x})
    return X, horizontal ^ (x > 0).astype(int)


def fusion_model(image_encoder, **params):
    modalities = MultimodalFusion(
        [("image", image_encoder, "photo"), ("tabular", StandardScaler(), ["x"])]
    )
    return make_pipeline(
        modalities,
        FusionClassifier(
            **{
                "fusion": "concat",
                "hidden_dim": 32,
                "max_epochs": 40,
                "batch_size": 32,
                "lr": 3e-3,
                "random_state": 0,
                **params,
            }
        ),
    )


def main():
    torch.set_num_threads(min(2, torch.get_num_threads()))
    rng = np.random.RandomState(0)
    checkpoint = Path(tempfile.mkdtemp()) / "stripes_backbone.pt"
    start = time.perf_counter()
    source_accuracy = pretrain(checkpoint, rng)
    print(
        f"pretrained on 3000 source images: training accuracy {source_accuracy:.3f} "
        f"({time.perf_counter() - start:.0f} s), weights in {checkpoint.name}"
    )

    X_train, y_train = target_data(300, rng)
    X_test, y_test = target_data(1000, rng)
    image = dict(image_size=SIZE, mean=MEAN, std=STD)
    models = {
        "random weights, frozen": fusion_model(
            PretrainedImageEncoder(backbone, **image)
        ),
        "pretrained, frozen": fusion_model(
            PretrainedImageEncoder(backbone, weights=checkpoint, **image)
        ),
        "pretrained, fine-tuned": fusion_model(
            PretrainedImageEncoder(
                backbone,
                weights=checkpoint,
                output="pixels",
                freeze=False,
                tower_lr=3e-4,
                **image,
            )
        ),
    }
    print(f"\n{'image tower':<26}{'test accuracy':>14}{'fit (s)':>9}")
    for name, model in models.items():
        start = time.perf_counter()
        model.fit(X_train, y_train)
        elapsed = time.perf_counter() - start
        print(f"{name:<26}{model.score(X_test, y_test):>14.3f}{elapsed:>9.1f}")
    tabular = make_pipeline(StandardScaler(), LogisticRegression())
    tabular.fit(X_train[["x"]], y_train)
    print(f"{'tabular column only':<26}{tabular.score(X_test[['x']], y_test):>14.3f}")

    grid = {"fusionclassifier__fusion": ["concat", "gated", "attention", "lowrank"]}
    before = frozen_cache_info()
    start = time.perf_counter()
    search = GridSearchCV(models["pretrained, frozen"], grid, cv=3)
    search.fit(X_train, y_train)
    after = frozen_cache_info()
    print(
        f"\ngrid search over {len(grid['fusionclassifier__fusion'])} fusion "
        f"strategies, cv=3 ({time.perf_counter() - start:.0f} s): best "
        f"{search.best_params_['fusionclassifier__fusion']}, "
        f"test accuracy {search.score(X_test, y_test):.3f}"
    )
    print(
        f"frozen image encoder outputs: {after.misses - before.misses} computed, "
        f"{after.hits - before.hits} read from the cache"
    )


if __name__ == "__main__":
    main()
