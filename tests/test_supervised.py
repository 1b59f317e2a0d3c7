import math

import torch

from workbench.config import ObjectiveConfig
from workbench.models.vit import VisionTransformer
from workbench.objectives import BuildContext, StepInputs, build_objective


def context(depth=3, classes=5):
    return BuildContext(width=8, depth=depth, patch_size=4, grid=2, channels=1, image_size=8, num_prefix=1,
                        num_classes=classes)


def inputs(model, labels):
    x = torch.randn(len(labels), 1, 8, 8)
    out = model(x)
    return StepInputs(batch={"labels": labels}, views={"clean": x}, student={"clean": out})


def test_zero_head_gives_log_k_and_hand_computed_accuracy():
    model = VisionTransformer(image_size=8, patch_size=4, in_channels=1, width=8, depth=3, heads=2)
    objective = build_objective("supervised", ObjectiveConfig(), context())
    head = objective.heads["3"].linear
    torch.nn.init.zeros_(head.weight)
    with torch.no_grad():
        head.bias.copy_(torch.tensor([0.0, 0.0, 5.0, 0.0, 0.0]))  # always predicts class 2
    labels = torch.tensor([2, 2, 0, 1])
    out = objective(inputs(model, labels))
    # logits are (0,0,5,0,0) for every image: ce = log(4 + e^5) - z_label
    lse = math.log(4 + math.exp(5))
    expected = ((lse - 5) * 2 + lse * 2) / 4
    assert math.isclose(out.terms["ce"].item(), expected, rel_tol=1e-5)
    assert out.metrics["acc"].item() == 0.5


def test_deep_supervision_has_one_head_and_term_per_layer():
    model = VisionTransformer(image_size=8, patch_size=4, in_channels=1, width=8, depth=3, heads=2)
    objective = build_objective("deep", ObjectiveConfig(kind="supervised", layers="all"), context())
    out = objective(inputs(model, torch.tensor([0, 1, 2])))
    assert set(out.terms) == {"ce_l1", "ce_l2", "ce_l3"}
    for layer in ("1", "2", "3"):
        torch.nn.init.zeros_(objective.heads[layer].linear.weight)
        torch.nn.init.zeros_(objective.heads[layer].linear.bias)
    out = objective(inputs(model, torch.tensor([0, 1, 2])))
    for v in out.terms.values():
        assert math.isclose(v.item(), math.log(5), rel_tol=1e-6)  # uniform over 5 classes
