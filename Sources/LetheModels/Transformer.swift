import Foundation
import LetheTensor

/// timm's `Attention`: qkv (dim -> 3 dim), scaled dot-product attention over `heads`, proj.
public final class Attention<T: TensorScalar>: Module<T> {
    public let heads: Int
    public let qkv: Linear<T>
    public let proj: Linear<T>

    public init(dim: Int, heads: Int, rng: inout Philox) {
        precondition(dim % heads == 0, "attention width \(dim) is not divisible by \(heads) heads")
        self.heads = heads
        qkv = Linear(dim, 3 * dim, rng: &rng)
        proj = Linear(dim, dim, rng: &rng)
        super.init()
        register("qkv", qkv)
        register("proj", proj)
    }

    /// (B, N, C) -> (B, N, C)
    public func callAsFunction(_ x: Tensor<T>) -> Tensor<T> {
        let (b, n, c) = (x.shape[0], x.shape[1], x.shape[2])
        // reshape(B, N, 3, H, D).permute(2, 0, 3, 1, 4) -> q, k, v; attention; transpose(1, 2).reshape(B, N, C),
        // fused so none of those copies is made.
        return proj(Tensor.selfAttention(qkv: qkv(x), heads: heads).reshaped([b, n, c]))
    }
}

/// timm's `Mlp`: fc1, GELU, fc2.
public final class MLP<T: TensorScalar>: Module<T> {
    public let fc1: Linear<T>
    public let fc2: Linear<T>

    public init(dim: Int, hidden: Int, rng: inout Philox) {
        fc1 = Linear(dim, hidden, rng: &rng)
        fc2 = Linear(hidden, dim, rng: &rng)
        super.init()
        register("fc1", fc1)
        register("fc2", fc2)
    }

    public func callAsFunction(_ x: Tensor<T>) -> Tensor<T> { fc2(fc1(x).gelu()) }
}

/// timm's pre-norm transformer `Block`: x + attn(norm1(x)), then x + mlp(norm2(x)).
public final class TransformerBlock<T: TensorScalar>: Module<T> {
    public let norm1: LayerNorm<T>
    public let attn: Attention<T>
    public let norm2: LayerNorm<T>
    public let mlp: MLP<T>

    public init(dim: Int, heads: Int, mlpRatio: Double, rng: inout Philox) {
        norm1 = LayerNorm(dim, eps: 1e-6)
        attn = Attention(dim: dim, heads: heads, rng: &rng)
        norm2 = LayerNorm(dim, eps: 1e-6)
        mlp = MLP(dim: dim, hidden: Int(Double(dim) * mlpRatio), rng: &rng)
        super.init()
        register("norm1", norm1)
        register("attn", attn)
        register("norm2", norm2)
        register("mlp", mlp)
    }

    public func callAsFunction(_ x: Tensor<T>) -> Tensor<T> {
        let h = x + attn(norm1(x))
        return h + mlp(norm2(h))
    }
}

/// MAE's fixed 2-D sine-cosine position embedding for a `grid` x `grid` patch grid: (grid^2, dim).
/// Half the channels encode the row, half the column; each half is sin then cos of pos * omega_k.
public func sinCosPositionEmbedding<T: TensorScalar>(dim: Int, grid: Int) -> Tensor<T> {
    precondition(dim % 4 == 0, "sin-cos position embedding needs a width divisible by 4")
    let quarter = dim / 4
    var out = [T](repeating: 0, count: grid * grid * dim)
    for row in 0..<grid {
        for col in 0..<grid {
            let token = row * grid + col
            // MAE puts the embedding of the w (column) coordinate first, then the h (row) coordinate.
            for (half, pos) in [(0, col), (1, row)] {
                for k in 0..<quarter {
                    let omega = 1 / Foundation.pow(10_000, Double(k) / Double(quarter))
                    out[token * dim + half * 2 * quarter + k] = T(sin(Double(pos) * omega))
                    out[token * dim + half * 2 * quarter + quarter + k] = T(cos(Double(pos) * omega))
                }
            }
        }
    }
    return Tensor(out, shape: [grid * grid, dim])
}

/// Token bookkeeping of the masked transformers (MAE, MAGE): the encoder sees the visible tokens
/// only, the decoder every position again.
public enum TokenOrder {
    /// Rows `indices[b]` of each batch item of (B, L, C) -> (B, K, C).
    public static func gather<T: TensorScalar>(_ x: Tensor<T>, _ indices: [[Int]]) -> Tensor<T> {
        let (b, l, c) = (x.shape[0], x.shape[1], x.shape[2])
        precondition(indices.count == b, "one index list per batch item")
        let flat = indices.enumerated().flatMap { item in item.element.map { item.offset * l + $0 } }
        return x.reshaped([b * l, c]).gather(rows: flat).reshaped([b, indices[0].count, c])
    }

    /// The decoder's input: the visible tokens' latents (B, V, C) and a mask token (1, 1, C) for every
    /// other of `count` positions, each put back at its position (MAE's ids_restore) -> (B, count, C).
    public static func restore<T: TensorScalar>(_ x: Tensor<T>, maskToken: Tensor<T>, visible: [[Int]], count l: Int)
        -> Tensor<T>
    {
        let (b, v, c) = (x.shape[0], x.shape[1], x.shape[2])
        // Every position visible: no mask tokens to append.
        let tokens = v == l ? x : Tensor.concat([x, maskToken + Tensor(zeros: [b, l - v, c])], axis: 1)
        // Visible tokens first, then mask tokens; `position[p]` is where position p's token sits.
        let order: [[Int]] = visible.map { vis in
            let shown = Set(vis)
            let hidden = (0..<l).filter { !shown.contains($0) }
            var position = [Int](repeating: 0, count: l)
            for (i, p) in (vis + hidden).enumerated() { position[p] = i }
            return position
        }
        return gather(tokens, order)
    }
}
