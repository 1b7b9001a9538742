// Matrix products on BLAS gemm. Shapes in comments: (B..., M, K) x (K, N) -> (B..., M, N).

extension Tensor {
    /// Batched matrix product. `b` is (K, N), shared by every batch, or (B..., K, N) with the same
    /// batch dimensions as `a`.
    @_specialize(where T == Float)
    public func matmul(_ b: Tensor) -> Tensor {
        precondition(rank >= 2 && b.rank >= 2, "matmul needs matrices: \(shape) x \(b.shape)")
        let m = shape[rank - 2]
        let k = shape[rank - 1]
        let n = b.shape[b.rank - 1]
        precondition(b.shape[b.rank - 2] == k, "matmul inner dimensions differ: \(shape) x \(b.shape)")
        let batch = shape[..<(rank - 2)].reduce(1, *)
        let shared = b.rank == 2
        precondition(
            shared || Array(b.shape.dropLast(2)) == Array(shape.dropLast(2)),
            "matmul batch dimensions differ: \(shape) x \(b.shape)")
        // Every product below has beta = 0 and writes its whole output (k = 0 included): no zero-fill.
        var out: [T] = unwrittenArray(count: batch * m * n)
        let a = self
        if shared {
            // One gemm over all batch rows: (B*M, K) x (K, N).
            gemm(a.storage, b.storage, into: &out, m: batch * m, n: n, k: k)
        } else {
            Tensor.batchedGemm(
                batch: batch, m: m, n: n, k: k, a.storage, b.storage, into: &out, aStride: m * k, bStride: k * n,
                cStride: m * n)
        }
        return Tensor.make(out, shape: Array(shape.dropLast()) + [n], inputs: [a, b]) { g in
            if a.requiresGrad {
                var ga: [T] = unwrittenArray(count: a.count)
                if shared {
                    gemm(g, b.storage, into: &ga, m: batch * m, n: k, k: n, transB: true)
                } else {
                    Tensor.batchedGemm(
                        batch: batch, m: m, n: k, k: n, g, b.storage, into: &ga, transB: true, aStride: m * n,
                        bStride: k * n, cStride: m * k)
                }
                a.accumulate(ga)
            }
            if b.requiresGrad {
                var gb: [T] = unwrittenArray(count: b.count)
                if shared {
                    gemm(a.storage, g, into: &gb, m: k, n: n, k: batch * m, transA: true)
                } else {
                    Tensor.batchedGemm(
                        batch: batch, m: k, n: n, k: m, a.storage, g, into: &gb, transA: true, aStride: m * k,
                        bStride: m * n, cStride: k * n)
                }
                b.accumulate(gb)
            }
        }
    }

    /// Independent products C_i = op(A_i) op(B_i); small ones are spread over threads.
    @_specialize(where T == Float)
    static func batchedGemm(
        batch: Int, m: Int, n: Int, k: Int, _ a: [T], _ b: [T], into c: inout [T],
        transA: Bool = false, transB: Bool = false, aStride: Int, bStride: Int, cStride: Int
    ) {
        a.withUnsafeBufferPointer { ap in
            b.withUnsafeBufferPointer { bp in
                c.withUnsafeMutableBufferPointer { cp in
                    let (aBase, bBase, cBase) = (ap.baseAddress!, bp.baseAddress!, cp.baseAddress!)
                    let one = { (i: Int, parallel: Bool) in
                        gemm(
                            aBase + i * aStride, bBase + i * bStride, cBase + i * cStride,
                            m: m, n: n, k: k, transA: transA, transB: transB, beta: 0, parallel: parallel)
                    }
                    if m * n * k <= smallGemmWork || Numerics.mode == .strict {
                        Parallel.run(batch) { one($0, false) }
                    } else {
                        for i in 0..<batch { one(i, true) }
                    }
                }
            }
        }
    }

    /// PyTorch's `F.linear`: x (..., in), weight (out, in), bias (out) -> (..., out).
    @_specialize(where T == Float)
    public func linear(_ weight: Tensor, _ bias: Tensor? = nil) -> Tensor {
        let inF = shape[rank - 1]
        let outF = weight.shape[0]
        precondition(weight.shape == [outF, inF], "linear: input \(shape) with weight \(weight.shape)")
        let rows = count / inF
        precondition(bias == nil || bias!.shape == [outF], "linear: bias \(bias!.shape) for \(outF) outputs")
        // Every row starts as the bias (or is written by a beta = 0 product), so no zero-fill.
        var out: [T] = filledArray(count: rows * outF) { o in
            guard let bias else { return }
            bias.storage.withUnsafeBufferPointer { b in
                for r in 0..<rows { (o.baseAddress! + r * outF).initialize(from: b.baseAddress!, count: outF) }
            }
        }
        gemm(storage, weight.storage, into: &out, m: rows, n: outF, k: inF, transB: true, beta: bias == nil ? 0 : 1)
        let x = self
        let inputs = bias.map { [x, weight, $0] } ?? [x, weight]
        /// The input and weight gradients one after the other, each product over all threads.
        func linearBackwardInOrder(_ g: [T]) {
            if x.requiresGrad {
                var gx: [T] = unwrittenArray(count: x.count)
                gemm(g, weight.storage, into: &gx, m: rows, n: inF, k: outF)  // (rows, out) x (out, in)
                x.accumulate(gx)
            }
            if weight.requiresGrad {
                var gw: [T] = unwrittenArray(count: weight.count)
                gemm(g, x.storage, into: &gw, m: outF, n: inF, k: rows, transA: true)  // (out, rows) x (rows, in)
                weight.accumulate(gw)
            }
        }
        return Tensor.make(out, shape: Array(shape.dropLast()) + [outF], inputs: inputs) { g in
            if x.requiresGrad && weight.requiresGrad && x.count > 0 && weight.count > 0 && Numerics.mode == .fast
                && Numerics.threads > 1
            {
                // The two products are independent and the same size (rows x in x out): each on its own
                // thread, single-threaded, rather than one after the other split over the threads.
                var gx: [T] = unwrittenArray(count: x.count)
                var gw: [T] = unwrittenArray(count: weight.count)
                g.withUnsafeBufferPointer { gp in
                    weight.storage.withUnsafeBufferPointer { wp in
                        x.storage.withUnsafeBufferPointer { xp in
                            gx.withUnsafeMutableBufferPointer { gxp in
                                gw.withUnsafeMutableBufferPointer { gwp in
                                    let p = UncheckedSendable(
                                        (
                                            gp.baseAddress!, wp.baseAddress!, xp.baseAddress!, gxp.baseAddress!,
                                            gwp.baseAddress!
                                        ))
                                    Parallel.blocksWithSerialBLAS(2) { i in
                                        let (g, w, xs, gx, gw) = p.value
                                        if i == 0 {
                                            LetheTensor.gemm(
                                                g, w, gx, m: rows, n: inF, k: outF, transA: false, transB: false,
                                                beta: 0, parallel: false)
                                        } else {
                                            LetheTensor.gemm(
                                                g, xs, gw, m: outF, n: inF, k: rows, transA: true, transB: false,
                                                beta: 0, parallel: false)
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                x.accumulate(gx)
                weight.accumulate(gw)
            } else {
                linearBackwardInOrder(g)
            }
            if let bias, bias.requiresGrad {
                bias.accumulate(T.columnSums(g, columns: outF))
            }
        }
    }
}

/// C[cOffset...] = op(A) op(B) + beta * C, row-major, on slices of flat arrays.
func gemm<T: TensorScalar>(
    _ a: [T], _ b: [T], into c: inout [T], m: Int, n: Int, k: Int,
    transA: Bool = false, transB: Bool = false, beta: T = 0,
    aOffset: Int = 0, bOffset: Int = 0, cOffset: Int = 0, parallel: Bool = true
) {
    guard m > 0 && n > 0 else { return }
    a.withUnsafeBufferPointer { ap in
        b.withUnsafeBufferPointer { bp in
            c.withUnsafeMutableBufferPointer { cp in
                gemm(
                    ap.baseAddress! + aOffset, bp.baseAddress! + bOffset, cp.baseAddress! + cOffset,
                    m: m, n: n, k: k, transA: transA, transB: transB, beta: beta, parallel: parallel)
            }
        }
    }
}

/// Rows of C per block in strict mode. Fixed, so the blocks (and the bits) never depend on threads.
let strictGemmBlockRows = 64

/// C (m x n, row-major) = op(A) op(B) + beta * C. In strict mode the product is split into fixed
/// blocks of rows of C, each a single-threaded gemm over the whole of K.
func gemm<T: TensorScalar>(
    _ a: UnsafePointer<T>, _ b: UnsafePointer<T>, _ c: UnsafeMutablePointer<T>, m: Int, n: Int, k: Int,
    transA: Bool, transB: Bool, beta: T, parallel: Bool
) {
    guard m > 0 && n > 0 else { return }
    if k == 0 {
        // C may be uninitialised when beta is 0 (as BLAS allows): write, do not scale.
        for i in 0..<(m * n) { c[i] = beta == 0 ? 0 : c[i] * beta }
        return
    }
    let lda = transA ? m : k
    let ldb = transB ? k : n
    guard Numerics.mode == .strict && m > strictGemmBlockRows else {
        T.gemm(
            transA: transA, transB: transB, m: m, n: n, k: k, alpha: 1, a: a, lda: lda, b: b, ldb: ldb, beta: beta,
            c: c, ldc: n)
        return
    }
    let blocks = (m + strictGemmBlockRows - 1) / strictGemmBlockRows
    let block = { (i: Int) in
        let m0 = i * strictGemmBlockRows
        let rows = min(strictGemmBlockRows, m - m0)
        T.gemm(
            transA: transA, transB: transB, m: rows, n: n, k: k, alpha: 1,
            a: transA ? a + m0 : a + m0 * lda, lda: lda, b: b, ldb: ldb, beta: beta, c: c + m0 * n, ldc: n)
    }
    if parallel { Parallel.run(blocks, block) } else { for i in 0..<blocks { block(i) } }
}

/// Products this small run single-threaded inside OpenBLAS, so a batch of them is spread over threads.
let smallGemmWork = 262_144
