import pytest
import torch

from workbench.models.vit import VisionTransformer


def small(**kw):
    args = dict(image_size=16, patch_size=4, in_channels=3, width=32, depth=4, heads=4, mlp_ratio=2.0)
    args.update(kw)
    return VisionTransformer(**args)


def test_every_layer_is_returned_with_the_right_shape():
    model = small(registers=2)
    out = model(torch.randn(5, 3, 16, 16))
    assert len(out.layers) == model.depth + 1
    for layer in out.layers:
        assert layer.shape == (5, 1 + 2 + 16, 32)  # CLS + registers + 4x4 patches
    assert out.final.shape == (5, 19, 32)
    assert out.pooled(4, "cls").shape == (5, 32)
    assert out.patches(2).shape == (5, 16, 32)
    # mean pooling averages the patch tokens only, never CLS or registers
    torch.testing.assert_close(out.pooled(2, "mean"), out.layers[2][:, 3:].mean(1))
    # the last layer is read through the final norm
    torch.testing.assert_close(out.tokens(4), model.norm(out.layers[4]))


def test_layer_zero_is_patch_embedding_plus_positions():
    model = small()
    x = torch.randn(2, 3, 16, 16)
    out = model(x)
    expected = model.patch_embed(x) + model.pos_embed
    torch.testing.assert_close(out.layers[0][:, 1:], expected)
    torch.testing.assert_close(out.layers[0][:, 0], model.cls_token[0].expand(2, -1))


def test_keep_selects_patches_after_positions():
    model = small()
    x = torch.randn(2, 3, 16, 16)
    keep = torch.tensor([[0, 5, 7], [15, 1, 2]])
    out = model(x, keep=keep)
    assert out.layers[0].shape == (2, 4, 32)
    full = model.patch_embed(x) + model.pos_embed
    torch.testing.assert_close(out.layers[0][1, 1:], full[1, [15, 1, 2]])


def _grads_after_loss_on_layer(model, k):
    out = model(torch.randn(4, 3, 16, 16))
    out.layers[k].pow(2).mean().backward()
    block_grads = [sum(p.grad.abs().sum().item() for p in b.parameters() if p.grad is not None)
                   for b in model.blocks]
    embed = model.patch_embed.proj.weight.grad
    return block_grads, 0.0 if embed is None else embed.abs().sum().item()


def test_gradient_isolation_stops_gradients_at_block_boundaries():
    k = 3  # loss on the output of block 3 (layers are 1-indexed: layer k = block k's output)
    isolated = small(gradient_isolation=True)
    grads, embed = _grads_after_loss_on_layer(isolated, k)
    assert grads[0] == 0 and grads[1] == 0, "blocks before k must get no gradient"
    assert grads[2] > 0, "block k itself learns from the loss on its output"
    assert grads[3] == 0, "later blocks are not on the path"
    assert embed == 0

    end_to_end = small(gradient_isolation=False)
    grads, embed = _grads_after_loss_on_layer(end_to_end, k)
    assert all(g > 0 for g in grads[:3]) and embed > 0


def test_gradient_isolation_on_chosen_layers():
    model = small(gradient_isolation=[2])  # detach after layer 2 only
    grads, embed = _grads_after_loss_on_layer(model, 4)
    assert grads[0] == 0 and grads[1] == 0 and grads[2] > 0 and grads[3] > 0


def test_parameter_count_matches_hand_computation():
    model = VisionTransformer(image_size=32, patch_size=4, in_channels=3, width=16, depth=2, heads=2,
                              mlp_ratio=2.0, registers=1)
    D, C, p, N, H = 16, 3, 4, 64, 32  # width, channels, patch, patches, MLP hidden
    patch = C * p * p * D + D  # conv weight + bias = 784
    tokens = D + D + N * D  # CLS + 1 register + positions = 1056
    block = (2 * D) + (D * 3 * D + 3 * D) + (D * D + D) + (2 * D) + (D * H + H) + (H * D + D)  # 2224
    final_norm = 2 * D
    expected = patch + tokens + 2 * block + final_norm
    assert expected == 6320
    assert sum(p.numel() for p in model.parameters()) == expected


def test_drop_path_is_identity_in_eval_and_stochastic_in_train():
    model = small(drop_path=0.5)
    x = torch.randn(8, 3, 16, 16)
    model.eval()
    torch.testing.assert_close(model(x).final, model(x).final)
    model.train()
    torch.manual_seed(0)
    a = model(x).final
    b = model(x).final
    assert not torch.allclose(a, b)


@pytest.mark.parametrize("kw, words", [
    (dict(image_size=30, patch_size=4), ["30", "patch size 4"]),
    (dict(width=30, heads=4), ["width 30", "heads 4"]),
    (dict(pool="max"), ["pool", "max"]),
    (dict(gradient_isolation=[9]), ["gradient_isolation", "9"]),
])
def test_invalid_shapes_raise_clear_errors(kw, words):
    with pytest.raises(ValueError) as info:
        small(**kw)
    for w in words:
        assert w in str(info.value)


def test_wrong_input_shape_is_reported():
    with pytest.raises(ValueError, match="expected images of shape"):
        small()(torch.randn(2, 1, 16, 16))
    with pytest.raises(ValueError, match="multiples of the patch size 4"):
        small()(torch.randn(2, 3, 10, 10))


def test_smaller_images_use_interpolated_positions():
    model = small()
    out = model(torch.randn(2, 3, 8, 8))  # a local crop: 2 x 2 patches instead of 4 x 4
    assert out.layers[0].shape == (2, 1 + 4, 32)
    # interpolating the grid to its own size is the identity
    torch.testing.assert_close(model.positions(4, 4), model.pos_embed)
    # a constant position grid stays constant after interpolation
    with torch.no_grad():
        model.pos_embed.fill_(0.5)
    torch.testing.assert_close(model.positions(2, 2), torch.full((1, 4, 32), 0.5))
