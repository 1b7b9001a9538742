// 2-D convolution as im2col + gemm, NCHW activations and (O, C, kH, kW) weights as in PyTorch.

public struct Conv2dGeometry: Sendable, Equatable {
    public var stride: Int
    public var padding: Int
    public init(stride: Int = 1, padding: Int = 0) { self.stride = stride; self.padding = padding }

    func outSize(_ size: Int, kernel: Int) -> Int { (size + 2 * padding - kernel) / stride + 1 }
}

/// Sizes of one convolution and the index maps between images and columns.
struct ConvPlan {
    let n, c, h, w, o, kh, kw, ho, wo: Int
    let geo: Conv2dGeometry
    var hw: Int { ho * wo }
    var ck: Int { c * kh * kw }
    /// Columns of the im2col matrix: one per output pixel of every image.
    var columns: Int { n * hw }

    init(input: [Int], kernel: [Int], geo: Conv2dGeometry) {
        (n, c, h, w) = (input[0], input[1], input[2], input[3])
        (o, kh, kw) = (kernel[0], kernel[2], kernel[3])
        self.geo = geo
        ho = geo.outSize(h, kernel: kh)
        wo = geo.outSize(w, kernel: kw)
    }

    /// Output columns ox whose input column ox*s - p + kj lies inside the image.
    @inline(__always)
    func validColumns(kj: Int) -> Range<Int> {
        let lo = max(0, (geo.padding - kj + geo.stride - 1) / geo.stride)
        let hi = min(wo, (w - 1 + geo.padding - kj) / geo.stride + 1)
        return lo..<max(lo, hi)
    }

    /// Calls `body(colStart, pixelStart, count)` for each run of one (image, channel) plane: `count`
    /// column entries from colStart on correspond to pixels pixelStart, pixelStart + stride, ...
    /// Planes touch disjoint pixels and disjoint column entries, so they run in parallel.
    @inline(__always)
    func forEachRun(plane: Int, _ body: (Int, Int, Int) -> Void) {
        let b = plane / c, ci = plane % c
        let pixelBase = plane * h * w
        for ki in 0..<kh {
            for kj in 0..<kw {
                let colBase = ((ci * kh + ki) * kw + kj) * columns + b * hw
                let valid = validColumns(kj: kj)
                guard !valid.isEmpty else { continue }
                for oy in 0..<ho {
                    let iy = oy * geo.stride - geo.padding + ki
                    guard iy >= 0 && iy < h else { continue }
                    body(colBase + oy * wo + valid.lowerBound, pixelBase + iy * w + valid.lowerBound * geo.stride - geo.padding + kj, valid.count)
                }
            }
        }
    }

    /// cols[(ci, ki, kj)][(b, oy, ox)] = x[b][ci][oy*s - p + ki][ox*s - p + kj] (0 outside).
    /// Every entry of `dst` is written (the padding with zeros), so it may start uninitialised.
    func im2col<T: TensorScalar>(_ x: [T], into dst: UnsafeMutablePointer<T>) {
        let s = geo.stride
        x.withUnsafeBufferPointer { xp in
            let src = UncheckedSendable(xp.baseAddress!)
            let out = UncheckedSendable(dst)
            Parallel.run(n * c) { plane in
                let b = plane / c, ci = plane % c
                let image = src.value + plane * h * w
                for ki in 0..<kh {
                    for kj in 0..<kw {
                        let row = out.value + ((ci * kh + ki) * kw + kj) * columns + b * hw
                        let valid = validColumns(kj: kj)
                        for oy in 0..<ho {
                            let d = row + oy * wo
                            let iy = oy * s - geo.padding + ki
                            guard iy >= 0 && iy < h && !valid.isEmpty else { d.update(repeating: 0, count: wo); continue }
                            d.update(repeating: 0, count: valid.lowerBound)
                            let pixels = image + iy * w + valid.lowerBound * s - geo.padding + kj
                            if s == 1 {
                                (d + valid.lowerBound).update(from: pixels, count: valid.count)
                            } else {
                                for j in 0..<valid.count { d[valid.lowerBound + j] = pixels[j * s] }
                            }
                            (d + valid.upperBound).update(repeating: 0, count: wo - valid.upperBound)
                        }
                    }
                }
            }
        }
    }

    /// The adjoint of im2col: scatter-adds columns back into the images.
    func col2im<T: TensorScalar>(_ src: UnsafePointer<T>, into x: inout [T]) {
        let s = geo.stride
        let cols = UncheckedSendable(src)
        x.withUnsafeMutableBufferPointer { xp in
            let dst = UncheckedSendable(xp.baseAddress!)
            Parallel.run(n * c) { plane in
                forEachRun(plane: plane) { col, pixel, count in
                    let from = cols.value + col, to = dst.value + pixel
                    if s == 1 {
                        T.add(from, into: to, count: count)
                    } else {
                        for j in 0..<count { to[j * s] += from[j] }
                    }
                }
            }
        }
    }

    /// (O, N, HW) <-> (N, O, HW); adds `bias[o]` on the way when given.
    func swapBatchAndChannels<T: TensorScalar>(_ src: [T], into dst: UnsafeMutablePointer<T>, fromChannelsFirst: Bool, bias: [T]?) {
        src.withUnsafeBufferPointer { s in
            let (s, d) = (UncheckedSendable(s.baseAddress!), UncheckedSendable(dst))
            Parallel.run(n * o) { job in
                let b = job / o, oc = job % o
                let channelsFirst = (oc * n + b) * hw, batchFirst = (b * o + oc) * hw
                if !fromChannelsFirst {
                    (d.value + channelsFirst).update(from: s.value + batchFirst, count: hw)
                } else if let add = bias?[oc] {
                    let (from, to) = (s.value + channelsFirst, d.value + batchFirst)
                    for i in 0..<hw { to[i] = from[i] + add }
                } else {
                    (d.value + batchFirst).update(from: s.value + channelsFirst, count: hw)
                }
            }
        }
    }
}

extension Tensor {
    /// `F.conv2d(x, weight, bias, stride, padding)`: (N, C, H, W) -> (N, O, Ho, Wo).
    /// One gemm per pass: columns are laid out (C k k, N Ho Wo), so the product covers the batch.
    @_specialize(where T == Float)
    public func conv2d(_ weight: Tensor, _ bias: Tensor? = nil, _ geo: Conv2dGeometry = .init()) -> Tensor {
        precondition(rank == 4 && weight.rank == 4 && weight.shape[1] == shape[1], "conv2d: input \(shape), weight \(weight.shape)")
        let p = ConvPlan(input: shape, kernel: weight.shape, geo: geo)
        // The columns are scratch: built here and again in the backward pass rather than kept on the
        // tape (they are C k k times the input, and rebuilding is cheaper than holding them).
        let outT: [T] = filledArray(count: p.o * p.columns) { o in     // (O, N HW)
            Scratch.with(T.self, count: p.ck * p.columns, zeroed: false) { cols in
                p.im2col(storage, into: cols)
                weight.storage.withUnsafeBufferPointer { w in
                    gemm(w.baseAddress!, UnsafePointer(cols), o.baseAddress!, m: p.o, n: p.columns, k: p.ck, transA: false, transB: false, beta: 0, parallel: true)
                }
            }
        }
        let out: [T] = filledArray(count: p.o * p.columns) { o in      // (N, O, HW)
            p.swapBatchAndChannels(outT, into: o.baseAddress!, fromChannelsFirst: true, bias: bias?.storage)
        }
        let x = self
        let inputs = [x, weight] + (bias.map { [$0] } ?? [])
        return Tensor.make(out, shape: [p.n, p.o, p.ho, p.wo], inputs: inputs) { g in
            let gT: [T] = filledArray(count: p.o * p.columns) { d in   // (O, N HW)
                p.swapBatchAndChannels(g, into: d.baseAddress!, fromChannelsFirst: false, bias: nil)
            }
            if weight.requiresGrad {
                let gw: [T] = filledArray(count: weight.count) { out in   // (O, N HW) x (N HW, CK)
                    Scratch.with(T.self, count: p.ck * p.columns, zeroed: false) { cols in
                        p.im2col(x.storage, into: cols)
                        gT.withUnsafeBufferPointer { g in
                            gemm(g.baseAddress!, UnsafePointer(cols), out.baseAddress!, m: p.o, n: p.ck, k: p.columns, transA: false, transB: true, beta: 0, parallel: true)
                        }
                    }
                }
                weight.accumulate(gw)
            }
            if let bias, bias.requiresGrad {
                bias.accumulate(T.rowSums(gT, rows: p.o))
            }
            if x.requiresGrad {
                var gx = [T](repeating: 0, count: x.count)
                Scratch.with(T.self, count: p.ck * p.columns, zeroed: false) { gcols in   // (CK, O) x (O, N HW)
                    weight.storage.withUnsafeBufferPointer { w in
                        gT.withUnsafeBufferPointer { g in
                            gemm(w.baseAddress!, g.baseAddress!, gcols, m: p.ck, n: p.columns, k: p.o, transA: true, transB: false, beta: 0, parallel: true)
                        }
                    }
                    p.col2im(UnsafePointer(gcols), into: &gx)
                }
                x.accumulate(gx)
            }
        }
    }

    /// `F.interpolate(x, scale_factor=2, mode="nearest")` on (N, C, H, W).
    @_specialize(where T == Float)
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
