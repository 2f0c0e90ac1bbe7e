"""Classifier registry, weights loading, inputs, plain training and prediction (tiny, CPU)."""

from pathlib import Path

import numpy as np
import pytest
import torch

from ganaug import InputError
from ganaug.classify import (
    MODELS,
    balanced_class_weights,
    build_model,
    predict,
    to_input,
    train_plain,
)


@pytest.mark.parametrize("channels", [3, 1])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_trains_one_step(name, channels):
    torch.manual_seed(0)
    model = build_model(name, num_classes=5, in_channels=channels)
    logits = model(torch.randn(2, channels, 64, 64))
    assert logits.shape == (2, 5)
    loss = torch.nn.functional.cross_entropy(logits, torch.tensor([0, 4]))
    loss.backward()
    assert torch.isfinite(loss)
    no_grad = [n for n, p in model.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert no_grad == []


def test_unknown_model_lists_valid_names():
    with pytest.raises(InputError, match="resnet18, resnet50, resnet101, densenet121"):
        build_model("vgg16", 5)


def _params(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_weights_file_loads(tmp_path: Path):
    torch.manual_seed(1)
    source = build_model("resnet18", 5)
    path = tmp_path / "r18.pt"
    torch.save(source.state_dict(), path)
    torch.manual_seed(2)
    fresh = _params(build_model("resnet18", 5))
    torch.manual_seed(2)
    loaded = build_model("resnet18", 5, weights=str(path))
    for key, value in source.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    assert not torch.equal(loaded.conv1.weight, fresh["conv1.weight"])


def test_imagenet_style_weights_into_gray_model_with_other_head(tmp_path: Path):
    torch.manual_seed(1)
    source = build_model("densenet121", 1000)  # an ImageNet-shaped file: 1000-class head, RGB
    path = tmp_path / "d121.pt"
    torch.save(source.state_dict(), path)
    model = build_model("densenet121", 5, in_channels=1, weights=str(path))
    stem = source.features.conv0.weight.sum(dim=1, keepdim=True)
    assert torch.allclose(model.features.conv0.weight, stem)
    assert torch.equal(model.features.norm5.weight, source.features.norm5.weight)
    assert model.classifier.weight.shape == (5, 1024)  # fresh head for our classes


def test_weights_of_another_architecture_refused(tmp_path: Path):
    path = tmp_path / "d121.pt"
    torch.save(build_model("densenet121", 5).state_dict(), path)
    with pytest.raises(InputError, match="does not fit resnet18"):
        build_model("resnet18", 5, weights=str(path))
    r50 = tmp_path / "r50.pt"
    torch.save(build_model("resnet50", 5).state_dict(), r50)
    with pytest.raises(InputError, match="does not fit resnet18"):
        build_model("resnet18", 5, weights=str(r50))
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="junk.pt"):
        build_model("resnet18", 5, weights=str(junk))


def test_to_input_normalises_on_device():
    images = torch.zeros(2, 4, 4, 3, dtype=torch.uint8)
    images[1] = 255
    x = to_input(images, "cpu")
    assert x.shape == (2, 3, 4, 4) and x.dtype == torch.float32
    assert torch.allclose(
        x[0, :, 0, 0], torch.tensor([-0.485 / 0.229, -0.456 / 0.224, -0.406 / 0.225])
    )
    assert torch.allclose(x[1, 0, 0, 0], torch.tensor((1 - 0.485) / 0.229))
    assert to_input(images[..., :1], "cpu").shape == (2, 1, 4, 4)


def test_balanced_class_weights():
    weights = balanced_class_weights(torch.tensor([0, 0, 0, 1]), 3)
    assert torch.allclose(weights, torch.tensor([4 / 9, 4 / 3, 0.0]))


def _learnable(n: int = 32, size: int = 16, seed: int = 0):
    """Two classes that differ in brightness."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    images = rng.integers(0, 100, (n, size, size, 3)) + 120 * labels[:, None, None, None]
    return torch.from_numpy(images.astype(np.uint8)), torch.from_numpy(labels)


def _tiny_net() -> torch.nn.Module:
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1),
        torch.nn.BatchNorm2d(8),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(8, 2),
    )


def test_train_plain_is_seeded_learns_and_leaves_global_rng_alone():
    images, labels = _learnable()
    runs = []
    for seed in (0, 0, 1):
        torch.manual_seed(5)
        model = _tiny_net()
        before = torch.get_rng_state()
        losses = train_plain(
            model, images, labels, epochs=6, lr=1e-2, batch_size=8, seed=seed, device="cpu"
        )
        assert torch.equal(torch.get_rng_state(), before)
        runs.append(losses)
    assert runs[0] == runs[1] and runs[0] != runs[2]
    assert len(runs[0]) == 6 and runs[0][-1] < runs[0][0]
    weighted = train_plain(
        _tiny_net(),
        images,
        labels,
        epochs=1,
        lr=1e-2,
        batch_size=8,
        seed=0,
        device="cpu",
        class_weights=torch.tensor([1.0, 3.0]),
    )
    assert len(weighted) == 1 and np.isfinite(weighted[0])


def test_predict_probabilities_and_features():
    images, _ = _learnable(n=10)
    torch.manual_seed(0)
    model = build_model("resnet18", 3).train()
    probs, feats = predict(model, images.numpy(), device="cpu", batch_size=4)
    assert probs.shape == (10, 3) and feats.shape == (10, 512)
    assert np.allclose(probs.sum(axis=1), 1, atol=1e-5)
    assert model.training  # restored
    again, _ = predict(model, images.numpy()[:3], device="cpu")
    assert np.allclose(again, probs[:3], atol=1e-5)  # eval mode: batch-independent
