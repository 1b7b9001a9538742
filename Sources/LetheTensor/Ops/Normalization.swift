// Softmax and normalisations over rows. Forward saves what backward needs (llm.c style).

import CShims

extension Tensor {
    /// The largest value of each row of the last dimension (the shift that keeps exp finite).
    /// Rows per parallel chunk for row-wise kernels of row length `n`.
    @_specialize(where T == Float)
    static func rowGrain(_ n: Int) -> Int { Swift.max(1, Parallel.elementGrain / Swift.max(n, 1)) }

    /// Runs `body(buffer, rowStart, rowMax)` over the rows (runs of the last dimension, length `n`) of
    /// `values`, in parallel chunks; the row's maximum is the shift that keeps exp finite.
    private func forEachRow(_ values: inout [T], n: Int, _ body: (UnsafeMutableBufferPointer<T>, Int, T) -> Void) {
        let rows = values.count / Swift.max(n, 1)
        values.withUnsafeMutableBufferPointer { o in
            Parallel.chunks(rows, grain: Tensor.rowGrain(n)) { rs in
                for r in rs {
                    var mx = -T.infinity
                    for j in (r * n)..<((r + 1) * n) { mx = Swift.max(mx, o[j]) }
                    body(o, r * n, mx)
                }
            }
        }
    }

    /// Softmax over the last dimension.
    @_specialize(where T == Float)
    public func softmax() -> Tensor {
        let n = shape[rank - 1]
        let rows = count / Swift.max(n, 1)
        var out = storage
        out.withUnsafeMutableBufferPointer { o in
            let base = UncheckedSendable(o.baseAddress!)
            Parallel.chunks(rows, grain: Tensor.rowGrain(n)) { rs in
                T.softmaxRows(base.value + rs.lowerBound * n, rows: rs.count, n: n)
            }
        }
        return Tensor.make(out, shape: shape, inputs: [self]) { [self] g in
            // dx = y * (g - sum(g * y))
            let gx: [T] = filledArray(count: count) { d in
                g.withUnsafeBufferPointer { gp in
                    out.withUnsafeBufferPointer { y in
                        let p = UncheckedSendable((y.baseAddress!, gp.baseAddress!, d.baseAddress!))
                        Parallel.chunks(rows, grain: Tensor.rowGrain(n)) { rs in
                            let (y, g, d) = p.value
                            let at = rs.lowerBound * n
                            T.softmaxBackwardRows(y: y + at, g: g + at, dx: d + at, rows: rs.count, n: n, scale: 1)
                        }
                    }
                }
            }
            accumulate(gx)
        }
    }

    /// log(softmax) over the last dimension, computed stably.
    @_specialize(where T == Float)
    public func logSoftmax() -> Tensor {
        let n = shape[rank - 1]
        let rows = count / Swift.max(n, 1)
        var out = storage
        forEachRow(&out, n: n) { o, start, mx in
            var z: T = 0
            for j in start..<(start + n) { z += T.exp(o[j] - mx) }
            let lse = mx + T.log(z)
            for j in start..<(start + n) { o[j] -= lse }
        }
        return Tensor.make(out, shape: shape, inputs: [self]) { [self] g in
            // dx = g - softmax * sum(g)
            var gx = [T](repeating: 0, count: count)
            for r in 0..<rows {
                var s: T = 0
                for j in 0..<n { s += g[r * n + j] }
                for j in 0..<n { gx[r * n + j] = g[r * n + j] - T.exp(out[r * n + j]) * s }
            }
            accumulate(gx)
        }
    }

    /// `F.layer_norm` over the last dimension with an affine weight and bias of that size.
    @_specialize(where T == Float)
    public func layerNorm(_ weight: Tensor?, _ bias: Tensor?, eps: T = 1e-5) -> Tensor {
        let n = shape[rank - 1]
        return Tensor.normalize(
            self, groups: count / n, groupSize: n, spatial: 1, channels: n, weight: weight, bias: bias, eps: eps)
    }

    /// `F.group_norm` on (N, C, H, W...): statistics per sample over C/groups channels.
    @_specialize(where T == Float)
    public func groupNorm(groups: Int, _ weight: Tensor?, _ bias: Tensor?, eps: T = 1e-5) -> Tensor {
        let c = shape[1]
        let spatial = shape[2...].reduce(1, *)
        precondition(c % groups == 0, "group_norm: \(c) channels in \(groups) groups")
        return Tensor.normalize(
            self, groups: shape[0] * groups, groupSize: (c / groups) * spatial,
            spatial: spatial, channels: c, weight: weight, bias: bias, eps: eps)
    }

    /// y = (x - mean) * rstd * w[c] + b[c] over contiguous groups of `m` elements, where element i
    /// belongs to channel (i / spatial) % channels; the shared core of both norms.
    @_specialize(where T == Float)
    static func normalize(
        _ x: Tensor, groups: Int, groupSize m: Int, spatial: Int, channels: Int,
        weight: Tensor?, bias: Tensor?, eps: T
    ) -> Tensor {
        if T.self == Float.self {
            return unsafeBitCast(
                Tensor<Float>.normalizeFloat(
                    unsafeDowncast(x, to: Tensor<Float>.self), groups: groups, groupSize: m, spatial: spatial,
                    channels: channels,
                    weight: weight.map { unsafeDowncast($0, to: Tensor<Float>.self) },
                    bias: bias.map { unsafeDowncast($0, to: Tensor<Float>.self) }, eps: Float(eps)), to: Tensor.self)
        }
        var xhat = [T](repeating: 0, count: x.count)
        var rstd = [T](repeating: 0, count: groups)
        let w = weight?.storage
        let b = bias?.storage
        var out = [T](repeating: 0, count: x.count)
        x.storage.withUnsafeBufferPointer { xs in
            xhat.withUnsafeMutableBufferPointer { xh in
                rstd.withUnsafeMutableBufferPointer { rstd in
                    Parallel.chunks(groups, grain: Tensor.rowGrain(m)) { gs in
                        for g in gs {
                            var mean: T = 0
                            for i in (g * m)..<((g + 1) * m) { mean += xs[i] }
                            mean /= T(m)
                            var v: T = 0
                            for i in (g * m)..<((g + 1) * m) {
                                let d = xs[i] - mean
                                v += d * d
                            }
                            let r = 1 / (v / T(m) + eps).squareRoot()
                            rstd[g] = r
                            for i in (g * m)..<((g + 1) * m) { xh[i] = (xs[i] - mean) * r }
                        }
                    }
                }
            }
        }
        out.withUnsafeMutableBufferPointer { o in
            Parallel.chunks(o.count, grain: Parallel.elementGrain) { r in
                for i in r {
                    let c = (i / spatial) % channels
                    o[i] = xhat[i] * (w?[c] ?? 1) + (b?[c] ?? 0)
                }
            }
        }
        /// Per-channel sums of term(i) over all elements: fixed-chunk partials added in chunk order.
        func channelSums(_ total: Int, _ term: (Int) -> T) -> [T] {
            let grain = Parallel.elementGrain
            let chunks = (total + grain - 1) / grain
            var partials = [T](repeating: 0, count: chunks * channels)
            partials.withUnsafeMutableBufferPointer { p in
                Parallel.chunks(total, grain: grain) { r in
                    let base = (r.lowerBound / grain) * channels
                    for i in r { p[base + (i / spatial) % channels] += term(i) }
                }
            }
            var sums = [T](repeating: 0, count: channels)
            for c in 0..<chunks { for ch in 0..<channels { sums[ch] += partials[c * channels + ch] } }
            return sums
        }
        let inputs = [x] + [weight, bias].compactMap { $0 }
        return make(out, shape: x.shape, inputs: inputs) { g in
            if let weight, weight.requiresGrad {
                weight.accumulate(channelSums(g.count) { g[$0] * xhat[$0] })
            }
            if let bias, bias.requiresGrad {
                bias.accumulate(channelSums(g.count) { g[$0] })
            }
            guard x.requiresGrad else { return }
            // dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))
            var gx = [T](repeating: 0, count: x.count)
            gx.withUnsafeMutableBufferPointer { d in
                Parallel.chunks(groups, grain: Tensor.rowGrain(m)) { gs in
                    for grp in gs {
                        var meanD: T = 0
                        var meanDX: T = 0
                        for i in (grp * m)..<((grp + 1) * m) {
                            let v = g[i] * (w?[(i / spatial) % channels] ?? 1)
                            d[i] = v
                            meanD += v
                            meanDX += v * xhat[i]
                        }
                        meanD /= T(m)
                        meanDX /= T(m)
                        for i in (grp * m)..<((grp + 1) * m) { d[i] = rstd[grp] * (d[i] - meanD - xhat[i] * meanDX) }
                    }
                }
            }
            x.accumulate(gx)
        }
    }
}

extension Tensor where T == Float {
    /// `normalize` through the C kernels: groups in fixed chunks over the threads; the per-channel
    /// weight and bias gradients are summed per chunk and the chunks added in order, so the bits never
    /// depend on the thread count.
    static func normalizeFloat(
        _ x: Tensor, groups: Int, groupSize m: Int, spatial: Int, channels: Int,
        weight: Tensor?, bias: Tensor?, eps: Float
    ) -> Tensor {
        let grain = rowGrain(m)
        var rstd = [Float](repeating: 0, count: groups)
        var xhat = [Float]()
        var out = [Float]()
        xhat = filledArray(count: x.count) { xh in
            out = filledArray(count: x.count) { o in
                rstd.withUnsafeMutableBufferPointer { r in
                    x.storage.withUnsafeBufferPointer { xs in
                        withOptionalPointer(weight?.storage) { w in
                            withOptionalPointer(bias?.storage) { b in
                                let p = UncheckedSendable(
                                    (xs.baseAddress!, xh.baseAddress!, o.baseAddress!, r.baseAddress!, w, b))
                                Parallel.chunks(groups, grain: grain) { gs in
                                    let (xs, xh, o, r, w, b) = p.value
                                    lethe_norm_forward(
                                        xs, xh, o, r, gs.lowerBound, gs.upperBound, m, spatial, channels, w, b, eps)
                                }
                            }
                        }
                    }
                }
            }
        }
        let inputs = [x] + [weight, bias].compactMap { $0 }
        return make(out, shape: x.shape, inputs: inputs) { g in
            let needW = weight?.requiresGrad ?? false
            let needB = bias?.requiresGrad ?? false
            let chunks = (groups + grain - 1) / grain
            var dw = [Float](repeating: 0, count: needW ? chunks * channels : 0)
            var db = [Float](repeating: 0, count: needB ? chunks * channels : 0)
            var gx: [Float] = x.requiresGrad ? unwrittenArray(count: x.count) : []  // written whole by the kernel
            g.withUnsafeBufferPointer { gp in
                xhat.withUnsafeBufferPointer { xh in
                    rstd.withUnsafeBufferPointer { r in
                        withOptionalPointer(weight?.storage) { w in
                            dw.withUnsafeMutableBufferPointer { dwp in
                                db.withUnsafeMutableBufferPointer { dbp in
                                    gx.withUnsafeMutableBufferPointer { dx in
                                        // An empty array's buffer still has an address: pass nil for what is not wanted.
                                        let p = UncheckedSendable(
                                            (
                                                gp.baseAddress!, xh.baseAddress!, r.baseAddress!, w,
                                                needW ? dwp.baseAddress : nil,
                                                needB ? dbp.baseAddress : nil, x.requiresGrad ? dx.baseAddress : nil
                                            ))
                                        Parallel.chunks(groups, grain: grain) { gs in
                                            let (gp, xh, r, w, dw, db, dx) = p.value
                                            let chunk = gs.lowerBound / grain
                                            lethe_norm_backward(
                                                gp, xh, r, w, dx, dw.map { $0 + chunk * channels },
                                                db.map { $0 + chunk * channels },
                                                gs.lowerBound, gs.upperBound, m, spatial, channels)
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            /// Adds the chunks' partial sums in chunk order.
            func total(_ partials: [Float]) -> [Float] {
                var sums = [Float](repeating: 0, count: channels)
                for c in 0..<chunks { for ch in 0..<channels { sums[ch] += partials[c * channels + ch] } }
                return sums
            }
            if needW { weight!.accumulate(total(dw)) }
            if needB { bias!.accumulate(total(db)) }
            if x.requiresGrad { x.accumulate(gx) }
        }
    }
}

/// `body` with the array's base address, or nil for a nil or empty array.
@inline(__always)
func withOptionalPointer<T, R>(_ a: [T]?, _ body: (UnsafePointer<T>?) -> R) -> R {
    guard let a, !a.isEmpty else { return body(nil) }
    return a.withUnsafeBufferPointer { body($0.baseAddress) }
}
