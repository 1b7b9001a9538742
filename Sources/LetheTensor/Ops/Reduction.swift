// Reductions. Sums run in a fixed order, so their bits do not depend on threading.

extension Tensor {
    @_specialize(where T == Float)
    func normalizedAxis(_ axis: Int) -> Int {
        let a = axis < 0 ? axis + rank : axis
        precondition(a >= 0 && a < rank, "axis \(axis) out of range for shape \(shape)")
        return a
    }

    /// (outer, n, inner) around `axis`.
    @_specialize(where T == Float)
    func split(at axis: Int) -> (Int, Int, Int) {
        (shape[..<axis].reduce(1, *), shape[axis], shape[(axis + 1)...].reduce(1, *))
    }

    /// Sum of every element.
    @_specialize(where T == Float)
    public func sum() -> Tensor {
        // Partial sums over fixed chunks, added in chunk order: the same bits for any thread count.
        let total = storage.withUnsafeBufferPointer { x -> T in
            guard let start = x.baseAddress else { return 0 }
            let base = UncheckedSendable(start)
            return Parallel.chunkSums(count) { r in T.sum(base.value + r.lowerBound, count: r.count) }
        }
        return Tensor.make([total], shape: [], inputs: [self]) { [self] g in
            accumulate([T](repeating: g[0], count: count))
        }
    }

    @_specialize(where T == Float)
    public func mean() -> Tensor { sum() * (1 / T(Swift.max(count, 1))) }

    /// Sum over one axis. (outer, n, inner) -> (outer, inner), or (outer, 1, inner) with `keepDims`.
    @_specialize(where T == Float)
    public func sum(axis: Int, keepDims: Bool = false) -> Tensor {
        let ax = normalizedAxis(axis)
        let (outer, n, inner) = split(at: ax)
        var out = [T](repeating: 0, count: outer * inner)
        storage.withUnsafeBufferPointer { x in
            out.withUnsafeMutableBufferPointer { o in
                Parallel.run(outer) { a in
                    for j in 0..<n {
                        let base = (a * n + j) * inner
                        for i in 0..<inner { o[a * inner + i] += x[base + i] }
                    }
                }
            }
        }
        var outShape = shape
        if keepDims { outShape[ax] = 1 } else { outShape.remove(at: ax) }
        return Tensor.make(out, shape: outShape, inputs: [self]) { [self] g in
            var gx = [T](repeating: 0, count: count)
            for a in 0..<outer {
                for j in 0..<n {
                    for i in 0..<inner { gx[(a * n + j) * inner + i] = g[a * inner + i] }
                }
            }
            accumulate(gx)
        }
    }

    @_specialize(where T == Float)
    public func mean(axis: Int, keepDims: Bool = false) -> Tensor {
        sum(axis: axis, keepDims: keepDims) * (1 / T(shape[normalizedAxis(axis)]))
    }
}
