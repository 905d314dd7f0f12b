import torch
import torch.nn.functional as F

from sessrec.bodies.attention import attention


def test_attention_equals_torch_sdpa_with_an_additive_mask_and_its_gradients():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(3, 2, 5, 4, generator=g, dtype=torch.float64, requires_grad=True) for _ in range(3))
    keep = torch.rand(3, 1, 5, 5, generator=g) < 0.7
    keep[..., 0] = True  # every query sees a key
    mask = torch.zeros(keep.shape, dtype=torch.float64).masked_fill(~keep, torch.finfo(torch.float64).min)
    for scale in (None, 0.3):
        got = attention(q, k, v, mask, scale=scale)
        ref = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)
        assert torch.allclose(got, ref)
        grads = torch.autograd.grad(got.square().sum(), (q, k, v))
        refs = torch.autograd.grad(ref.square().sum(), (q, k, v))
        assert all(torch.allclose(a, b) for a, b in zip(grads, refs))


def test_attention_dropout_drops_weights():
    q = k = v = torch.ones(1, 1, 4, 2)
    mask = torch.zeros(1, 1, 4, 4)
    torch.manual_seed(0)
    out = attention(q, k, v, mask, dropout_p=0.5)
    assert not torch.allclose(out, torch.ones_like(out))  # some weights dropped, the rest scaled by 2
    assert torch.equal(attention(q, k, v, mask), torch.ones_like(out))
