// Attention, embeddings and vector quantisation.

extension Tensor {
    /// `F.scaled_dot_product_attention(q, k, v)` on (B, H, T, D): softmax(q k^T / sqrt(D)) v.
    @_specialize(where T == Float)
    public static func attention(_ q: Tensor, _ k: Tensor, _ v: Tensor) -> Tensor {
        let d = q.shape[q.rank - 1]
        let scores = q.matmul(k.transposed()) * (1 / T(d).squareRoot())
        return scores.softmax().matmul(v)
    }

    /// Multi-head self-attention straight from a fused projection: `qkv` is (B, N, 3C) laid out as
    /// [q | k | v], each C = heads * D wide (timm's `qkv` linear), and the result is (B, N, C), the
    /// heads side by side: what `reshape(B, N, 3, H, D).permute(2, 0, 3, 1, 4)`, `attention(q, k, v)`
    /// and `transpose(1, 2).reshape(B, N, C)` give, without materialising any of those copies. Each
    /// (batch, head) pair is independent work with strided products, so the bits never depend on the
    /// thread count.
    @_specialize(where T == Float)
    public static func selfAttention(qkv: Tensor, heads: Int) -> Tensor {
        precondition(
            qkv.rank == 3 && qkv.shape[2] % (3 * heads) == 0, "selfAttention: qkv \(qkv.shape) for \(heads) heads")
        let (b, n, c3) = (qkv.shape[0], qkv.shape[1], qkv.shape[2])
        let c = c3 / 3
        let d = c / heads
        let pairs = b * heads
        let scale = 1 / T(d).squareRoot()
        /// Offsets of head h of batch i in qkv (its q; k and v follow at +c and +2c) and in the output.
        func offsets(_ pair: Int) -> (qkv: Int, out: Int) {
            let (i, h) = (pair / heads, pair % heads)
            return (i * n * c3 + h * d, i * n * c + h * d)
        }
        var probs = [T](repeating: 0, count: pairs * n * n)  // softmax(q k^T scale), kept for backward
        let out: [T] = filledArray(count: b * n * c) { o in
            qkv.storage.withUnsafeBufferPointer { x in
                probs.withUnsafeMutableBufferPointer { p in
                    let ptrs = UncheckedSendable((x.baseAddress!, p.baseAddress!, o.baseAddress!))
                    Parallel.run(pairs) { pair in
                        let (x, p, o) = ptrs.value
                        let at = offsets(pair)
                        let s = p + pair * n * n
                        T.gemm(
                            transA: false, transB: true, m: n, n: n, k: d, alpha: scale, a: x + at.qkv, lda: c3,
                            b: x + at.qkv + c, ldb: c3, beta: 0, c: s, ldc: n)
                        T.softmaxRows(s, rows: n, n: n)
                        T.gemm(
                            transA: false, transB: false, m: n, n: d, k: n, alpha: 1, a: s, lda: n,
                            b: x + at.qkv + 2 * c, ldb: c3, beta: 0, c: o + at.out, ldc: c)
                    }
                }
            }
        }
        return make(out, shape: [b, n, c], inputs: [qkv]) { g in
            let gx: [T] = filledArray(count: qkv.count) { gq in
                qkv.storage.withUnsafeBufferPointer { x in
                    probs.withUnsafeBufferPointer { p in
                        g.withUnsafeBufferPointer { gp in
                            let ptrs = UncheckedSendable(
                                (x.baseAddress!, p.baseAddress!, gp.baseAddress!, gq.baseAddress!))
                            Parallel.run(pairs) { pair in
                                let (x, p, g, gq) = ptrs.value
                                let at = offsets(pair)
                                let probs = p + pair * n * n
                                let (q, k, v) = (x + at.qkv, x + at.qkv + c, x + at.qkv + 2 * c)
                                let (gqOut, gkOut, gvOut) = (gq + at.qkv, gq + at.qkv + c, gq + at.qkv + 2 * c)
                                var scratch = [T](repeating: 0, count: 2 * n * n)
                                scratch.withUnsafeMutableBufferPointer { tmp in
                                    let (dP, dS) = (tmp.baseAddress!, tmp.baseAddress! + n * n)
                                    // dV = P^T dO; dP = dO V^T; dS = softmax'(dP) * scale
                                    T.gemm(
                                        transA: true, transB: false, m: n, n: d, k: n, alpha: 1, a: probs, lda: n,
                                        b: g + at.out, ldb: c, beta: 0, c: gvOut, ldc: c3)
                                    T.gemm(
                                        transA: false, transB: true, m: n, n: n, k: d, alpha: 1, a: g + at.out, lda: c,
                                        b: v, ldb: c3, beta: 0, c: dP, ldc: n)
                                    T.softmaxBackwardRows(y: probs, g: dP, dx: dS, rows: n, n: n, scale: scale)
                                    // dQ = dS K; dK = dS^T Q
                                    T.gemm(
                                        transA: false, transB: false, m: n, n: d, k: n, alpha: 1, a: dS, lda: n,
                                        b: k, ldb: c3, beta: 0, c: gqOut, ldc: c3)
                                    T.gemm(
                                        transA: true, transB: false, m: n, n: d, k: n, alpha: 1, a: dS, lda: n,
                                        b: q, ldb: c3, beta: 0, c: gkOut, ldc: c3)
                                }
                            }
                        }
                    }
                }
            }
            qkv.accumulate(gx)
        }
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
        let d = shape[rank - 1]
        let n = count / d
        let k = codebook.shape[0]
        precondition(codebook.shape == [k, d], "codebook \(codebook.shape) for vectors of \(d)")
        var norms = [T](repeating: 0, count: k)
        for j in 0..<k { for i in 0..<d { norms[j] += codebook.storage[j * d + i] * codebook.storage[j * d + i] } }
        var indices = [Int](repeating: 0, count: n)
        var out: [T] = unwrittenArray(count: count)
        // Fixed blocks of rows, each its own single-threaded product (depth d is small, and OpenBLAS split
        // over threads ran the whole 2048 x 256 x 32 product at a quarter of its one-thread rate), then
        // its rows' nearest codes: the blocks fixed, so the codes do not depend on the thread count.
        let blockRows = 256
        storage.withUnsafeBufferPointer { z in
            codebook.storage.withUnsafeBufferPointer { e in
                norms.withUnsafeBufferPointer { sq in
                    indices.withUnsafeMutableBufferPointer { idx in
                        out.withUnsafeMutableBufferPointer { o in
                            let p = UncheckedSendable(
                                (z.baseAddress!, e.baseAddress!, sq.baseAddress!, idx.baseAddress!, o.baseAddress!))
                            Parallel.blocksWithSerialBLAS((n + blockRows - 1) / blockRows) { block in
                                let (z, e, sq, idx, o) = p.value
                                let r0 = block * blockRows
                                let rows = min(blockRows, n - r0)
                                var dots: [T] = unwrittenArray(count: rows * k)
                                dots.withUnsafeMutableBufferPointer { dp in
                                    let dots = dp.baseAddress!
                                    gemm(
                                        z + r0 * d, e, dots, m: rows, n: k, k: d, transA: false, transB: true,
                                        beta: 0, parallel: false)
                                    for r in 0..<rows {
                                        var best = 0
                                        var bestDist = T.infinity
                                        for j in 0..<k {
                                            let dist = sq[j] - 2 * dots[r * k + j]  // ||z||^2 is the same for every j
                                            if dist < bestDist {
                                                bestDist = dist
                                                best = j
                                            }
                                        }
                                        idx[r0 + r] = best
                                        (o + (r0 + r) * d).initialize(from: e + best * d, count: d)
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        let q = Tensor.make(out, shape: shape, inputs: [self]) { [self] g in accumulate(g) }
        return (q, indices)
    }
}
