// Losses, reduced by the mean as PyTorch's defaults are.

extension Tensor {
    /// `F.mse_loss`: mean of (a - b)^2 over every element.
    @_specialize(where T == Float)
    public func mseLoss(_ target: Tensor) -> Tensor {
        // Equal shapes (the usual case) in one pass each way; broadcasting through the composed ops.
        guard shape == target.shape, count > 0 else { return (self - target).square().mean() }
        let n = count
        let total = storage.withUnsafeBufferPointer { a in
            target.storage.withUnsafeBufferPointer { b in
                let ptrs = UncheckedSendable((a.baseAddress!, b.baseAddress!))
                return Parallel.chunkSums(n) { r in
                    T.sumSquaredDifference(ptrs.value.0 + r.lowerBound, ptrs.value.1 + r.lowerBound, count: r.count)
                }
            }
        }
        return Tensor.make([total / T(n)], shape: [], inputs: [self, target]) { [self] g in
            // d/da = 2 (a - b) g / n, d/db = -d/da
            let scale = 2 * g[0] / T(n)
            let da: [T] = storage.withUnsafeBufferPointer { a in
                target.storage.withUnsafeBufferPointer { b in
                    let ptrs = UncheckedSendable((a.baseAddress!, b.baseAddress!))
                    return filledArray(count: n) { out in
                        let o = UncheckedSendable(out.baseAddress!)
                        Parallel.chunks(n, grain: Parallel.elementGrain) { r in
                            let (a, b) = ptrs.value
                            for i in r { o.value[i] = scale * (a[i] - b[i]) }
                        }
                    }
                }
            }
            if target.requiresGrad { target.accumulate(da.map { -$0 }) }
            accumulate(da)
        }
    }

    /// `F.l1_loss`: mean of |a - b|.
    @_specialize(where T == Float)
    public func l1Loss(_ target: Tensor) -> Tensor { (self - target).abs().mean() }

    /// `F.cross_entropy` for logits (N, C) and class indices, averaged over N.
    @_specialize(where T == Float)
    public func crossEntropy(_ targets: [Int]) -> Tensor {
        let c = shape[rank - 1]
        let n = count / c
        precondition(
            targets.count == n && targets.allSatisfy { $0 >= 0 && $0 < c },
            "cross_entropy: \(targets.count) targets in 0..<\(c) for \(n) rows")
        let logp = logSoftmax()
        var pick = [T](repeating: 0, count: count)
        for (r, t) in targets.enumerated() { pick[r * c + t] = -1 / T(n) }
        return (logp * Tensor(pick, shape: shape)).sum()
    }
}
