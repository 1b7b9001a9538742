/// NumPy / PyTorch broadcasting: shapes align on the right; a dimension of 1 stretches.
enum Broadcast {
    static func shape(_ a: [Int], _ b: [Int]) -> [Int]? {
        let n = max(a.count, b.count)
        var out = [Int](repeating: 1, count: n)
        for i in 0..<n {
            let x = i < n - a.count ? 1 : a[i - (n - a.count)]
            let y = i < n - b.count ? 1 : b[i - (n - b.count)]
            guard x == y || x == 1 || y == 1 else { return nil }
            out[i] = max(x, y)
        }
        return out
    }

    /// Strides of `shape` seen from an `outShape` view: 0 where the dimension is broadcast.
    static func strides(_ shape: [Int], in outShape: [Int]) -> [Int] {
        let n = outShape.count
        var strides = [Int](repeating: 0, count: n)
        var s = 1
        for i in stride(from: shape.count - 1, through: 0, by: -1) {
            let o = i + (n - shape.count)
            strides[o] = shape[i] == 1 ? 0 : s
            s *= shape[i]
        }
        return strides
    }

    /// Calls `body(outIndex, aIndex, bIndex)` for every element of the broadcast output, in order.
    @inline(__always)
    static func forEach(_ outShape: [Int], _ aStrides: [Int], _ bStrides: [Int], _ body: (Int, Int, Int) -> Void) {
        let inner = outShape.last ?? 1
        let rows = inner == 0 ? 0 : outShape.reduce(1, *) / inner
        forEach(outShape, aStrides, bStrides, rows: 0..<rows, body)
    }

    /// The same over the rows (runs of the last dimension) `rows`, so disjoint row ranges can run in
    /// parallel.
    @inline(__always)
    static func forEach(
        _ outShape: [Int], _ aStrides: [Int], _ bStrides: [Int], rows: Range<Int>, _ body: (Int, Int, Int) -> Void
    ) {
        let n = outShape.count
        if n == 0 {
            if !rows.isEmpty { body(0, 0, 0) }
            return
        }
        let inner = outShape[n - 1]
        let sa = aStrides[n - 1]
        let sb = bStrides[n - 1]
        guard inner > 0, !rows.isEmpty else { return }
        // Mixed-radix digits of the first row over the leading dimensions.
        var counter = [Int](repeating: 0, count: n)
        var ai = 0
        var bi = 0
        var r = rows.lowerBound
        for d in stride(from: n - 2, through: 0, by: -1) {
            counter[d] = r % outShape[d]
            r /= outShape[d]
            ai += counter[d] * aStrides[d]
            bi += counter[d] * bStrides[d]
        }
        for row in rows {
            let o = row * inner
            for j in 0..<inner { body(o + j, ai + j * sa, bi + j * sb) }
            var d = n - 2
            while d >= 0 {
                counter[d] += 1
                ai += aStrides[d]
                bi += bStrides[d]
                if counter[d] < outShape[d] { break }
                ai -= aStrides[d] * outShape[d]
                bi -= bStrides[d] * outShape[d]
                counter[d] = 0
                d -= 1
            }
        }
    }

    /// `forEach` split into fixed chunks of rows over the threads; `body` must write only `outIndex`.
    static func parallelForEach(
        _ outShape: [Int], _ aStrides: [Int], _ bStrides: [Int], _ body: (Int, Int, Int) -> Void
    ) {
        let inner = Swift.max(outShape.last ?? 1, 1)
        let rows = outShape.isEmpty ? 1 : outShape.reduce(1, *) / inner
        Parallel.chunks(rows, grain: Swift.max(1, Parallel.elementGrain / inner)) { range in
            forEach(outShape, aStrides, bStrides, rows: range, body)
        }
    }

    /// How a broadcast operand of `shape` spreads over `outShape`, in the two contiguous cases:
    /// - rows(r): one value per row of r contiguous rows (a per-channel (N, C, 1, 1) or (C, 1, 1) term
    ///   of (N, C, H, W)): shape is a prefix of outShape followed by ones;
    /// - columns(n): the same n values for every row of n (a bias (C) or (1, C) of (..., C)): shape
    ///   is ones followed by a suffix of outShape.
    enum Pattern: Equatable {
        case rows(Int)
        case columns(Int)
    }

    static func pattern(_ shape: [Int], in outShape: [Int]) -> Pattern? {
        guard shape.count <= outShape.count else { return nil }
        let padded = [Int](repeating: 1, count: outShape.count - shape.count) + shape
        if let kept = (0...outShape.count).last(where: { k in padded[..<k].elementsEqual(outShape[..<k]) }),
            padded[kept...].allSatisfy({ $0 == 1 })
        {
            return .rows(outShape[..<kept].reduce(1, *))
        }
        if let dropped = (0...outShape.count).first(where: { k in padded[k...].elementsEqual(outShape[k...]) }),
            padded[..<dropped].allSatisfy({ $0 == 1 })
        {
            return .columns(outShape[dropped...].reduce(1, *))
        }
        return nil
    }

    /// Sums a gradient of `outShape` back down to `shape` (over the broadcast dimensions).
    static func reduce<T: TensorScalar>(_ g: [T], from outShape: [Int], to shape: [Int]) -> [T] {
        if outShape == shape { return g }
        switch pattern(shape, in: outShape) {
        case .rows(let rows): return T.rowSums(g, rows: rows)
        case .columns(let inner): return T.columnSums(g, columns: inner)
        case nil: break
        }
        var out = [T](repeating: 0, count: shape.reduce(1, *))
        let s = strides(shape, in: outShape)
        out.withUnsafeMutableBufferPointer { o in
            g.withUnsafeBufferPointer { gp in
                forEach(outShape, s, s) { i, a, _ in o[a] += gp[i] }
            }
        }
        return out
    }
}
