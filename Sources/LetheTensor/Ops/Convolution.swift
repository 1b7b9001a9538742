// 2-D convolution as im2col + gemm, NCHW activations and (O, C, kH, kW) weights as in PyTorch.

public struct Conv2dGeometry: Sendable, Equatable {
    public var stride: Int
    public var padding: Int
    public init(stride: Int = 1, padding: Int = 0) { self.stride = stride; self.padding = padding }

    func outSize(_ size: Int, kernel: Int) -> Int { (size + 2 * padding - kernel) / stride + 1 }
}

extension Tensor {
    /// `F.conv2d(x, weight, bias, stride, padding)`: (N, C, H, W) -> (N, O, Ho, Wo).
    public func conv2d(_ weight: Tensor, _ bias: Tensor? = nil, _ geo: Conv2dGeometry = .init()) -> Tensor {
        precondition(rank == 4 && weight.rank == 4 && weight.shape[1] == shape[1], "conv2d: input \(shape), weight \(weight.shape)")
        let (n, c, h, w) = (shape[0], shape[1], shape[2], shape[3])
        let (o, kh, kw) = (weight.shape[0], weight.shape[2], weight.shape[3])
        let ho = geo.outSize(h, kernel: kh), wo = geo.outSize(w, kernel: kw)
        let ck = c * kh * kw, hw = ho * wo
        var cols = [T](repeating: 0, count: n * ck * hw)
        Tensor.im2col(storage, into: &cols, n: n, c: c, h: h, w: w, kh: kh, kw: kw, ho: ho, wo: wo, geo: geo)
        var out = [T](repeating: 0, count: n * o * hw)
        if let bias {
            for b in 0..<n { for oc in 0..<o { for i in 0..<hw { out[(b * o + oc) * hw + i] = bias.storage[oc] } } }
        }
        for b in 0..<n {
            gemm(weight.storage, cols, into: &out, m: o, n: hw, k: ck, beta: bias == nil ? 0 : 1, bOffset: b * ck * hw, cOffset: b * o * hw)
        }
        let x = self
        let inputs = [x, weight] + (bias.map { [$0] } ?? [])
        return Tensor.make(out, shape: [n, o, ho, wo], inputs: inputs) { g in
            if weight.requiresGrad {
                var gw = [T](repeating: 0, count: weight.count)
                for b in 0..<n {   // (O, HW) x (HW, CK)
                    gemm(g, cols, into: &gw, m: o, n: ck, k: hw, transB: true, beta: 1, aOffset: b * o * hw, bOffset: b * ck * hw)
                }
                weight.accumulate(gw)
            }
            if let bias, bias.requiresGrad {
                var gb = [T](repeating: 0, count: o)
                for b in 0..<n { for oc in 0..<o { for i in 0..<hw { gb[oc] += g[(b * o + oc) * hw + i] } } }
                bias.accumulate(gb)
            }
            if x.requiresGrad {
                var gcols = [T](repeating: 0, count: n * ck * hw)
                for b in 0..<n {   // (CK, O) x (O, HW)
                    gemm(weight.storage, g, into: &gcols, m: ck, n: hw, k: o, transA: true, bOffset: b * o * hw, cOffset: b * ck * hw)
                }
                var gx = [T](repeating: 0, count: x.count)
                Tensor.col2im(gcols, into: &gx, n: n, c: c, h: h, w: w, kh: kh, kw: kw, ho: ho, wo: wo, geo: geo)
                x.accumulate(gx)
            }
        }
    }

    /// cols[b][(ci, ki, kj)][(oy, ox)] = x[b][ci][oy*s - p + ki][ox*s - p + kj] (0 outside).
    static func im2col(_ x: [T], into cols: inout [T], n: Int, c: Int, h: Int, w: Int, kh: Int, kw: Int, ho: Int, wo: Int, geo: Conv2dGeometry) {
        x.withUnsafeBufferPointer { xp in
            cols.withUnsafeMutableBufferPointer { cp in
                forEachPatchElement(n: n, c: c, h: h, w: w, kh: kh, kw: kw, ho: ho, wo: wo, geo: geo) { col, pixel in cp[col] = xp[pixel] }
            }
        }
    }

    /// The adjoint of im2col: scatter-adds columns back into the image.
    static func col2im(_ cols: [T], into x: inout [T], n: Int, c: Int, h: Int, w: Int, kh: Int, kw: Int, ho: Int, wo: Int, geo: Conv2dGeometry) {
        cols.withUnsafeBufferPointer { cp in
            x.withUnsafeMutableBufferPointer { xp in
                forEachPatchElement(n: n, c: c, h: h, w: w, kh: kh, kw: kw, ho: ho, wo: wo, geo: geo) { col, pixel in xp[pixel] += cp[col] }
            }
        }
    }

    /// Visits every (column index, pixel index) pair of im2col that lies inside the image.
    @inline(__always)
    static func forEachPatchElement(n: Int, c: Int, h: Int, w: Int, kh: Int, kw: Int, ho: Int, wo: Int, geo: Conv2dGeometry, _ body: (Int, Int) -> Void) {
        let ck = c * kh * kw, hw = ho * wo
        for b in 0..<n {
            for row in 0..<ck {
                let ci = row / (kh * kw), ki = (row / kw) % kh, kj = row % kw
                let colBase = (b * ck + row) * hw
                let pixelBase = (b * c + ci) * h * w
                for oy in 0..<ho {
                    let iy = oy * geo.stride - geo.padding + ki
                    guard iy >= 0 && iy < h else { continue }
                    for ox in 0..<wo {
                        let ix = ox * geo.stride - geo.padding + kj
                        if ix >= 0 && ix < w { body(colBase + oy * wo + ox, pixelBase + iy * w + ix) }
                    }
                }
            }
        }
    }

    /// `F.interpolate(x, scale_factor=2, mode="nearest")` on (N, C, H, W).
    public func upsampleNearest2x() -> Tensor {
        let (n, c, h, w) = (shape[0], shape[1], shape[2], shape[3])
        var out = [T](repeating: 0, count: count * 4)
        for p in 0..<(n * c) {
            for y in 0..<(2 * h) { for x in 0..<(2 * w) { out[p * 4 * h * w + y * 2 * w + x] = storage[p * h * w + (y / 2) * w + x / 2] } }
        }
        return Tensor.make(out, shape: [n, c, 2 * h, 2 * w], inputs: [self]) { [self] g in
            var gx = [T](repeating: 0, count: count)
            for p in 0..<(n * c) {
                for y in 0..<(2 * h) { for x in 0..<(2 * w) { gx[p * h * w + (y / 2) * w + x / 2] += g[p * 4 * h * w + y * 2 * w + x] } }
            }
            accumulate(gx)
        }
    }
}
