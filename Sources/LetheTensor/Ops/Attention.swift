// Attention, embeddings and vector quantisation.

extension Tensor {
    /// `F.scaled_dot_product_attention(q, k, v)` on (B, H, T, D): softmax(q k^T / sqrt(D)) v.
    @_specialize(where T == Float)
    public static func attention(_ q: Tensor, _ k: Tensor, _ v: Tensor) -> Tensor {
        let d = q.shape[q.rank - 1]
        let scores = q.matmul(k.transposed()) * (1 / T(d).squareRoot())
        return scores.softmax().matmul(v)
    }

    /// `F.embedding(indices, weight)`: rows of `weight` (V, D) laid out as `indexShape + [D]`.
    @_specialize(where T == Float)
    public static func embedding(_ indices: [Int], shape indexShape: [Int], weight: Tensor) -> Tensor {
        weight.gather(rows: indices).reshaped(indexShape + [weight.shape[1]])
    }

    /// Nearest codebook row for each row of `self` (N, D) against `codebook` (K, D), by squared
    /// Euclidean distance (ties: the lowest index). Returns the quantised rows with a straight-through
    /// gradient (d out / d self = identity; the codebook gets no gradient here: use
    /// `codebook.gather(rows:)` in the codebook loss) and the indices.
    @_specialize(where T == Float)
    public func nearestCodebook(_ codebook: Tensor) -> (quantized: Tensor, indices: [Int]) {
        let d = shape[rank - 1], n = count / d, k = codebook.shape[0]
        precondition(codebook.shape == [k, d], "codebook \(codebook.shape) for vectors of \(d)")
        var dots = [T](repeating: 0, count: n * k)
        gemm(storage, codebook.storage, into: &dots, m: n, n: k, k: d, transB: true)
        var norms = [T](repeating: 0, count: k)
        for j in 0..<k { for i in 0..<d { norms[j] += codebook.storage[j * d + i] * codebook.storage[j * d + i] } }
        var indices = [Int](repeating: 0, count: n)
        var out = [T](repeating: 0, count: count)
        for r in 0..<n {
            var best = 0
            var bestDist = T.infinity
            for j in 0..<k {
                let dist = norms[j] - 2 * dots[r * k + j]   // ||z||^2 is the same for every j
                if dist < bestDist { bestDist = dist; best = j }
            }
            indices[r] = best
            for i in 0..<d { out[r * d + i] = codebook.storage[best * d + i] }
        }
        let q = Tensor.make(out, shape: shape, inputs: [self]) { [self] g in accumulate(g) }
        return (q, indices)
    }
}
