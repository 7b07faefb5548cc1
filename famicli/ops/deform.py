"""Modulated deformable convolution with ``torchvision.ops.deform_conv2d``'s semantics, fast on CPU.

torchvision's CPU kernel builds the sampled columns one value at a time and scatters its gradients
with a serial loop; here the sampling is ``grid_sample`` (a vectorised bilinear kernel, parallel over
batch x offset groups), the convolution is one matmul, and the backward pass is written by hand
(:class:`_DeformConv2d`) so that it reproduces torchvision's gradients up to float rounding, including
torchvision's choice of one-sided derivative where a sample falls exactly on a pixel:

- torchvision samples bilinearly with zeros outside the image: a sample at (y, x) reads the four
  corners floor(y) + {0, 1}, floor(x) + {0, 1}, and a corner outside the image counts as 0 (so a
  sample with y <= -1, y >= H, x <= -1 or x >= W is 0, and one just outside still sees its inside
  corners). ``grid_sample(..., padding_mode="zeros")`` computes the same bilinear form.
- The gradient with respect to the offsets is torchvision's ``get_coordinate_weight``: the difference
  of the two rows (columns) around floor(y) (floor(x)), interpolated along the other axis. grid_sample
  would differentiate its own un-normalised coordinate, whose floor can differ from torchvision's by
  one pixel within ~1e-6 of an integer; here floor(y) and floor(x) are taken on torchvision's
  coordinate, and the row/column differences are sampled at that exact integer.

Offsets are (dy, dx) pairs per kernel tap and offset group, taps in row-major order: channel
``2 * (g * kh * kw + i * kw + j) + {0: dy, 1: dx}``; the mask channel is ``g * kh * kw + i * kw + j``.
Input channel c belongs to offset group ``c // (C / G)``. Not twice differentiable (torchvision's op
is not either).
"""

from __future__ import annotations

import functools

import torch
from torch.autograd.function import once_differentiable

# grid_sampler_2d's integer codes
_BILINEAR, _ZEROS = 0, 0
_OUTSIDE = -4.0  # a row/column index far enough outside that bilinear sampling reads nothing


def _pair(v: int | tuple[int, int]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def deform_conv2d(
    input: torch.Tensor,
    offset: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] = 0,
    dilation: int | tuple[int, int] = 1,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Deformable convolution v1 / modulated v2, equal to ``torchvision.ops.deform_conv2d``.

    Args:
        input: (B, C_in, H, W).
        offset: (B, 2 * G * kh * kw, H_out, W_out), (dy, dx) per tap and offset group G.
        weight: (C_out, C_in / groups, kh, kw); the weight groups are C_in / weight.shape[1].
        bias: (C_out,) or None.
        stride, padding, dilation: int or (h, w).
        mask: (B, G * kh * kw, H_out, W_out) modulation, or None (all ones).

    Returns:
        (B, C_out, H_out, W_out).

    Raises:
        ValueError: inconsistent shapes (the message names them).
    """
    geom = _geometry(input, offset, weight, mask, _pair(stride), _pair(padding), _pair(dilation))
    tensors = (input, offset, weight, bias, mask)
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors):
        return _DeformConv2d.apply(*tensors, geom)
    return _forward(*tensors, geom)


def _geometry(input, offset, weight, mask, stride, padding, dilation) -> tuple:
    """Check the shapes the way torchvision does; return the sizes the kernel needs."""
    if input.dim() != 4 or offset.dim() != 4 or weight.dim() != 4:
        raise ValueError(
            f"expected 4-D input, offset and weight, got {input.dim()}-D, {offset.dim()}-D and {weight.dim()}-D"
        )
    b, c, h, w = input.shape
    c_out, c_per_group, kh, kw = weight.shape
    if c_per_group == 0 or c % c_per_group or c_out % (c // c_per_group):
        raise ValueError(f"weight {tuple(weight.shape)} does not fit {c} input channels")
    if offset.shape[1] == 0 or offset.shape[1] % (2 * kh * kw) or c % (offset.shape[1] // (2 * kh * kw)):
        raise ValueError(
            f"offset has {offset.shape[1]} channels: expected 2 * kh * kw * G = {2 * kh * kw} * G "
            f"with G dividing the {c} input channels"
        )
    g = offset.shape[1] // (2 * kh * kw)
    h_out = (h + 2 * padding[0] - (dilation[0] * (kh - 1) + 1)) // stride[0] + 1
    w_out = (w + 2 * padding[1] - (dilation[1] * (kw - 1) + 1)) // stride[1] + 1
    if h_out <= 0 or w_out <= 0:
        raise ValueError(f"output would be {h_out}x{w_out}: the input {h}x{w} is too small for the kernel")
    if offset.shape[0] != b or tuple(offset.shape[2:]) != (h_out, w_out):
        raise ValueError(f"offset {tuple(offset.shape)} does not match batch {b} and output {h_out}x{w_out}")
    if mask is not None and tuple(mask.shape) != (b, g * kh * kw, h_out, w_out):
        raise ValueError(f"mask {tuple(mask.shape)}: expected {(b, g * kh * kw, h_out, w_out)}")
    return (g, c // c_per_group, kh, kw, h_out, w_out, stride, padding, dilation)


def _taps(size_out: int, k: int, stride: int, pad: int, dilation: int) -> torch.Tensor:
    """(k, size_out) int64: ``out * stride - pad + tap * dilation``, a tap's position before the offset."""
    return torch.arange(size_out) * stride - pad + (torch.arange(k) * dilation).view(k, 1)


@functools.lru_cache(maxsize=32)
def _grid_base(h: int, w: int, geom: tuple, dtype: torch.dtype, device: torch.device):
    """The normalized tap positions before the offsets, (2, kh*kw, Ho, Wo) as (y, x), and the
    normalizing scale (2, 1, 1, 1); cached per shape (read-only)."""
    _, _, kh, kw, h_out, w_out, (sh, sw), (ph, pw), (dh, dw) = geom
    base = torch.empty(2, kh, kw, h_out, w_out, dtype=torch.float64)
    base[0] = _normalized(_taps(h_out, kh, sh, ph, dh).double(), h).view(kh, 1, h_out, 1)
    base[1] = _normalized(_taps(w_out, kw, sw, pw, dw).double(), w).view(1, kw, 1, w_out)
    base = base.view(2, kh * kw, h_out, w_out).to(device=device, dtype=dtype)
    scale = torch.tensor([2.0 / h, 2.0 / w], dtype=torch.float64).view(2, 1, 1, 1)
    return base, scale.to(device=device, dtype=dtype)


def _normalized(p: torch.Tensor, size: int) -> torch.Tensor:
    """Pixel coordinate -> grid_sample's with ``align_corners=False``: (2p + 1) / size - 1."""
    return p * (2.0 / size) + (1.0 / size - 1.0)


def _sampling_grid(offset: torch.Tensor, h: int, w: int, geom: tuple) -> torch.Tensor:
    """grid_sample's grid for the *transposed* input.

    grid_sample reads (x, y) = (grid[..., 0], grid[..., 1]); on the transposed image its x is our row,
    so the grid holds (y, x) in the offsets' own (dy, dx) order, and it is built by one fused
    multiply-add in a (B, G, 2, K, Ho, Wo) buffer that grid_sample reads through a permuted view
    (faster than an interleaved grid). Clamping to +-(1 + 2 / min(H, W)), where every sample is at
    least a pixel outside the image, keeps far-away (zero) samples, even infinite ones, from reaching
    grid_sample's integer conversion without changing any value.

    Args:
        offset: (B, G, 2*kh*kw*H_out*W_out), contiguous.

    Returns:
        (B*G, kh*kw*H_out, W_out, 2) as (y, x), a view of a (B*G, 2, kh*kw*H_out, W_out) tensor.
    """
    kh, kw, h_out, w_out = geom[2:6]
    b, g, k = offset.shape[0], offset.shape[1], kh * kw
    base, scale = _grid_base(h, w, geom, offset.dtype, offset.device)
    grid = offset.new_empty(b, g, 2, k, h_out, w_out)
    # (B, G, 2*K*Ho*Wo) -> (B, G, 2, K, Ho, Wo), a view; the product is contiguous along Wo
    torch.addcmul(base, offset.view(b, g, k, 2, h_out, w_out).transpose(2, 3), scale, out=grid)
    far = 1.0 + 2.0 / min(h, w)
    # (B, G, 2, K, Ho, Wo) -> (B*G, K*Ho, Wo, 2)
    return grid.clamp_(-far, far).view(b * g, 2, k * h_out, w_out).permute(0, 2, 3, 1)


def _sample(image: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """Bilinear samples of ``image``, zeros outside.

    Args:
        image: (B*G, C/G, rows, columns).
        grid: (B*G, K*Ho, Wo, 2) as (row, column), normalized for this image.

    Returns:
        (B*G, C/G, K*Ho, Wo).
    """
    return torch.ops.aten.grid_sampler_2d(image.transpose(2, 3), grid, _BILINEAR, _ZEROS, False)


def _forward(input, offset, weight, bias, mask, geom) -> torch.Tensor:
    """(B, C_out, Ho, Wo): sample, modulate, then one matmul per weight group."""
    g, groups, kh, kw, h_out, w_out = geom[:6]
    b, c, h, w = input.shape
    k, c_out = kh * kw, weight.shape[0]
    grid = _sampling_grid(offset.reshape(b, g, -1), h, w, geom)  # (B*G, K*Ho, Wo, 2)
    # (B, C, H, W) -> (B*G, C/G, H, W): one grid_sample batch per image and offset group
    cols = _sample(input.reshape(b * g, c // g, h, w), grid)  # (B*G, C/G, K*Ho, Wo)
    if mask is not None:
        cols.mul_(mask.reshape(b * g, 1, k * h_out, w_out))
    # the convolution: the weight as a matrix over torchvision's column order (c, tap), per weight group
    # (groups, C_out/groups, C/groups*K) @ (B, groups, C/groups*K, Ho*Wo) -> (B, C_out, Ho, Wo)
    out = weight.reshape(groups, c_out // groups, -1) @ cols.view(b, groups, -1, h_out * w_out)
    out = out.view(b, c_out, h_out, w_out)
    if bias is not None:
        out.add_(bias.view(1, c_out, 1, 1))
    return out


class _DeformConv2d(torch.autograd.Function):
    """grid_sample + matmul forward; hand-written backward reproducing torchvision's gradients.

    Like torchvision's, it saves only its inputs and recomputes the samples in the backward pass
    (9x the output's size: keeping them would multiply the layer's activation memory).
    """

    @staticmethod
    def forward(ctx, input, offset, weight, bias, mask, geom):
        ctx.geom = geom
        ctx.save_for_backward(input, offset, weight, mask)
        return _forward(input, offset, weight, bias, mask, geom)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        input, offset, weight, mask = ctx.saved_tensors
        g, groups, kh, kw, h_out, w_out = ctx.geom[:6]
        need_input, need_offset, need_weight, need_bias, need_mask = ctx.needs_input_grad[:5]
        b, c, h, w = input.shape
        n, cg, k, c_out = b * g, c // g, kh * kw, weight.shape[0]
        grad_input = grad_offset = grad_weight = grad_bias = grad_mask = None
        image = input.reshape(n, cg, h, w)
        grid = _sampling_grid(offset.reshape(b, g, -1), h, w, ctx.geom)  # (B*G, K*Ho, Wo, 2)
        samples = _sample(image, grid)  # (B*G, C/G, K*Ho, Wo)
        mask = None if mask is None else mask.reshape(n, 1, k * h_out, w_out)
        go = grad_out.reshape(b, groups, c_out // groups, h_out * w_out)  # (B, groups, C_out/groups, Ho*Wo)

        if need_weight:
            cols = samples if mask is None else samples * mask
            # (B, groups, C_out/groups, Ho*Wo) @ (B, groups, Ho*Wo, C/groups*K), summed over B
            cols = cols.view(b, groups, (c // groups) * k, h_out * w_out)
            grad_weight = (go @ cols.transpose(2, 3)).sum(0).view(weight.shape)
        if need_bias:
            grad_bias = grad_out.sum((0, 2, 3))
        if not (need_input or need_offset or need_mask):
            return grad_input, grad_offset, grad_weight, grad_bias, grad_mask, None

        # (groups, C/groups*K, C_out/groups) @ (B, groups, C_out/groups, Ho*Wo) -> (B*G, C/G, K*Ho, Wo)
        w_t = weight.reshape(groups, c_out // groups, -1).transpose(1, 2)
        grad_cols = (w_t @ go).view(n, cg, k * h_out, w_out)
        if need_mask and mask is not None:
            grad_mask = (grad_cols * samples).sum(1).view(b, g * k, h_out, w_out)
        grad_val = grad_cols if mask is None else grad_cols.mul_(mask)  # d loss / d samples
        if need_input:
            grad_image = torch.ops.aten.grid_sampler_2d_backward(
                grad_val, image.transpose(2, 3), grid, _BILINEAR, _ZEROS, False, [True, False]
            )[0]
            grad_input = grad_image.transpose(2, 3).reshape(b, c, h, w)
        if need_offset:
            grad_offset = _offset_grad(grad_val, image, offset, grid, ctx.geom)
        return grad_input, grad_offset, grad_weight, grad_bias, grad_mask, None


def _offset_grad(grad_val, image, offset, grid, geom) -> torch.Tensor:
    """d loss / d offset as torchvision's ``get_coordinate_weight`` defines it.

    d sample / dy = (1 - fx) * (X[y0+1, x0] - X[y0, x0]) + fx * (X[y0+1, x0+1] - X[y0, x0+1]) with
    y0 = floor(y), x0 = floor(x), fx = x - x0 and zeros outside the image: the row-difference image
    sampled at row y0 exactly and at column x; likewise for x. y and x are torchvision's coordinates
    ``(out * stride - pad) + tap * dilation + offset``, computed in the offset's dtype as it does.

    Args:
        grad_val: (B*G, C/G, K*Ho, Wo) gradient of the samples (mask applied).
        image: (B*G, C/G, H, W) the input.
        offset: (B, 2*G*K, Ho, Wo).
        grid: (B*G, K*Ho, Wo, 2) the forward's grid.

    Returns:
        (B, 2*G*K, Ho, Wo).
    """
    g, _, kh, kw, h_out, w_out, (sh, sw), (ph, pw), (dh, dw) = geom
    n, _, h, w = image.shape
    b = n // g
    off = offset.reshape(b, g, kh, kw, 2, h_out, w_out)  # (B, 2*G*kh*kw, Ho, Wo) -> (B, G, kh, kw, 2, Ho, Wo)
    y = off[:, :, :, :, 0] + _taps(h_out, kh, sh, ph, dh).to(offset).view(kh, 1, h_out, 1)
    x = off[:, :, :, :, 1] + _taps(w_out, kw, sw, pw, dw).to(offset).view(1, kw, 1, w_out)

    def difference_grid(coord: torch.Tensor, size: int, along: int) -> torch.Tensor:
        """The forward grid with coordinate ``along`` (0 = y, 1 = x) replaced by floor(coord) + 1, the
        exact row (column) of the difference image (size + 1 long), or far outside when the pair of
        rows (columns) around ``coord`` is outside the image."""
        lo = torch.floor(coord)
        inside = (lo >= -1) & (lo <= size - 1)
        exact = _normalized(torch.where(inside, lo + 1, _OUTSIDE), size + 1)  # (B, G, kh, kw, Ho, Wo)
        out = grid.permute(0, 3, 1, 2).clone()  # (B*G, 2, K*Ho, Wo)
        out[:, along] = exact.view(n, kh * kw * h_out, w_out)
        return out.permute(0, 2, 3, 1)

    # zero-padded differences: row r of dy holds X[r] - X[r-1] (H+1 rows), column r of dx likewise
    dy = torch.diff(
        image, dim=2, prepend=image.new_zeros(n, image.shape[1], 1, w), append=image.new_zeros(n, image.shape[1], 1, w)
    )
    dx = torch.diff(
        image, dim=3, prepend=image.new_zeros(n, image.shape[1], h, 1), append=image.new_zeros(n, image.shape[1], h, 1)
    )
    # channel sums: (B*G, C/G, K*Ho, Wo) -> (B, G, K, 1, Ho, Wo)
    gy = _sample(dy, difference_grid(y, h, 0)).mul_(grad_val).sum(1).view(b, g, kh * kw, 1, h_out, w_out)
    gx = _sample(dx, difference_grid(x, w, 1)).mul_(grad_val).sum(1).view(b, g, kh * kw, 1, h_out, w_out)
    return torch.cat((gy, gx), dim=3).view(b, 2 * g * kh * kw, h_out, w_out)
