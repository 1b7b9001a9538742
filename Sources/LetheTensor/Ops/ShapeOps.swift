// Reshaping, permuting, joining and cutting. Reshape shares storage (copy-on-write); the others copy.

extension Tensor {
    /// The same values in a new shape; one dimension may be -1.
    @_specialize(where T == Float)
    public func reshaped(_ newShape: [Int]) -> Tensor {
        var s = newShape
        if let i = s.firstIndex(of: -1) {
            let known = s.enumerated().filter { $0.offset != i }.map(\.element).reduce(1, *)
            s[i] = known == 0 ? 0 : count / known
        }
        precondition(s.reduce(1, *) == count, "cannot reshape \(shape) to \(newShape)")
        return Tensor.make(storage, shape: s, inputs: [self]) { [self] g in accumulate(g) }
    }

    /// Dimensions reordered: out.shape[i] = shape[dims[i]].
    @_specialize(where T == Float)
    public func permuted(_ dims: [Int]) -> Tensor {
        precondition(dims.sorted() == Array(0..<rank), "permutation \(dims) for rank \(rank)")
        let outShape = dims.map { shape[$0] }
        let inStrides = Tensor.strides(shape)
        let srcStrides = dims.map { inStrides[$0] }
        var out = [T](repeating: 0, count: count)
        Tensor.gatherStrided(storage, into: &out, shape: outShape, strides: srcStrides, forward: true)
        return Tensor.make(out, shape: outShape, inputs: [self]) { [self] g in
            var gx = [T](repeating: 0, count: count)
            Tensor.gatherStrided(g, into: &gx, shape: outShape, strides: srcStrides, forward: false)
            accumulate(gx)
        }
    }

    @_specialize(where T == Float)
    public func transposed(_ a: Int = -2, _ b: Int = -1) -> Tensor {
        var dims = Array(0..<rank)
        dims.swapAt(normalizedAxis(a), normalizedAxis(b))
        return permuted(dims)
    }

    @_specialize(where T == Float)
    static func strides(_ shape: [Int]) -> [Int] {
        var s = [Int](repeating: 1, count: shape.count)
        var acc = 1
        for i in stride(from: shape.count - 1, through: 0, by: -1) {
            s[i] = acc
            acc *= shape[i]
        }
        return s
    }

    /// forward: out[i] = src[map(i)]; backward: out[map(i)] += src[i].
    static func gatherStrided(_ src: [T], into out: inout [T], shape: [Int], strides: [Int], forward: Bool) {
        let zero = [Int](repeating: 0, count: shape.count)
        src.withUnsafeBufferPointer { s in
            out.withUnsafeMutableBufferPointer { o in
                Broadcast.forEach(shape, strides, zero) { i, j, _ in
                    if forward { o[i] = s[j] } else { o[j] += s[i] }
                }
            }
        }
    }

    /// Joins tensors along `axis`; all other dimensions must agree.
    @_specialize(where T == Float)
    public static func concat(_ parts: [Tensor], axis: Int) -> Tensor {
        let first = parts[0]
        let ax = first.normalizedAxis(axis)
        let (outer, _, inner) = first.split(at: ax)
        for p in parts {
            precondition(
                p.rank == first.rank
                    && p.shape.enumerated().allSatisfy { $0.offset == ax || $0.element == first.shape[$0.offset] },
                "concat: \(p.shape) vs \(first.shape)")
        }
        let sizes = parts.map { $0.shape[ax] }
        let total = sizes.reduce(0, +)
        var out = [T](repeating: 0, count: outer * total * inner)
        var offset = 0
        for (p, size) in zip(parts, sizes) {
            for o in 0..<outer {
                for j in 0..<(size * inner) { out[(o * total + offset) * inner + j] = p.storage[o * size * inner + j] }
            }
            offset += size
        }
        var outShape = first.shape
        outShape[ax] = total
        return make(out, shape: outShape, inputs: parts) { g in
            var offset = 0
            for (p, size) in zip(parts, sizes) {
                if p.requiresGrad {
                    var gp = [T](repeating: 0, count: p.count)
                    for o in 0..<outer {
                        for j in 0..<(size * inner) { gp[o * size * inner + j] = g[(o * total + offset) * inner + j] }
                    }
                    p.accumulate(gp)
                }
                offset += size
            }
        }
    }

    /// Elements `range` along `axis`.
    @_specialize(where T == Float)
    public func slice(axis: Int, _ range: Range<Int>) -> Tensor {
        let ax = normalizedAxis(axis)
        let (outer, n, inner) = split(at: ax)
        precondition(range.lowerBound >= 0 && range.upperBound <= n, "slice \(range) of dimension \(n)")
        let len = range.count
        var out = [T](repeating: 0, count: outer * len * inner)
        for o in 0..<outer {
            for j in 0..<(len * inner) { out[o * len * inner + j] = storage[(o * n + range.lowerBound) * inner + j] }
        }
        var outShape = shape
        outShape[ax] = len
        return Tensor.make(out, shape: outShape, inputs: [self]) { [self] g in
            var gx = [T](repeating: 0, count: count)
            for o in 0..<outer {
                for j in 0..<(len * inner) { gx[(o * n + range.lowerBound) * inner + j] = g[o * len * inner + j] }
            }
            accumulate(gx)
        }
    }

    /// Rows `indices` of dimension 0 (PyTorch's `index_select(0, ...)`); repeats accumulate in backward.
    @_specialize(where T == Float)
    public func gather(rows indices: [Int]) -> Tensor {
        let inner = count / Swift.max(shape[0], 1)
        var out = [T](repeating: 0, count: indices.count * inner)
        for (r, i) in indices.enumerated() {
            precondition(i >= 0 && i < shape[0], "row \(i) of \(shape[0])")
            for j in 0..<inner { out[r * inner + j] = storage[i * inner + j] }
        }
        return Tensor.make(out, shape: [indices.count] + shape.dropFirst(), inputs: [self]) { [self] g in
            var gx = [T](repeating: 0, count: count)
            for (r, i) in indices.enumerated() { for j in 0..<inner { gx[i * inner + j] += g[r * inner + j] } }
            accumulate(gx)
        }
    }
}
