// 2-D convolution as im2col + gemm over blocks of images, NCHW activations and (O, C, kH, kW) weights
// as in PyTorch.

public struct Conv2dGeometry: Sendable, Equatable {
    public var stride: Int
    public var padding: Int
    public init(stride: Int = 1, padding: Int = 0) { self.stride = stride; self.padding = padding }

    func outSize(_ size: Int, kernel: Int) -> Int { (size + 2 * padding - kernel) / stride + 1 }
}

/// Sizes of one convolution and the index maps between images and columns.
///
/// The batch is processed in blocks of `blockImages` images whose im2col matrix stays small enough to
/// live in the core's cache (about 1 MiB): the columns are written, packed by the product and read
/// back while still cached, instead of streaming a C k k times larger copy of the whole batch through
/// memory three times per pass.
struct ConvPlan {
    let n, c, h, w, o, kh, kw, ho, wo: Int
    let geo: Conv2dGeometry
    var hw: Int { ho * wo }
    var ck: Int { c * kh * kw }
    /// Images per block; fixed by the shapes alone, never by the thread count.
    let blockImages: Int

    init(input: [Int], kernel: [Int], geo: Conv2dGeometry) {
        (n, c, h, w) = (input[0], input[1], input[2], input[3])
        (o, kh, kw) = (kernel[0], kernel[2], kernel[3])
        self.geo = geo
        ho = geo.outSize(h, kernel: kh)
        wo = geo.outSize(w, kernel: kw)
        let perImage = max(1, c * kh * kw * ho * wo)
        blockImages = max(1, min(n, ConvPlan.blockElements / perImage))
    }

    /// Column-matrix elements per block (floats: 1 MiB).
    static let blockElements = 1 << 18

    /// The image blocks, in order.
    var blocks: [Range<Int>] { stride(from: 0, to: n, by: blockImages).map { $0..<min(n, $0 + blockImages) } }

    /// Output columns ox whose input column ox*s - p + kj lies inside the image.
    @inline(__always)
    func validColumns(kj: Int) -> Range<Int> {
        let lo = max(0, (geo.padding - kj + geo.stride - 1) / geo.stride)
        let hi = min(wo, (w - 1 + geo.padding - kj) / geo.stride + 1)
        return lo..<max(lo, hi)
    }

    /// cols[(ci, ki, kj)][(b - images.lowerBound, oy, ox)] = x[b][ci][oy*s - p + ki][ox*s - p + kj]
    /// (0 outside) for the images of one block: a (C k k, |images| Ho Wo) matrix. Every entry is
    /// written (the padding with zeros), so `dst` may start uninitialised.
    func im2col<T: TensorScalar>(_ x: UnsafePointer<T>, images: Range<Int>, into dst: UnsafeMutablePointer<T>) {
        let s = geo.stride, width = images.count * hw
        let (src, out) = (UncheckedSendable(x), UncheckedSendable(dst))
        Parallel.run(images.count * c) { job in
            let local = job / c, ci = job % c
            let image = src.value + ((images.lowerBound + local) * c + ci) * h * w
            for ki in 0..<kh {
                for kj in 0..<kw {
                    let row = out.value + ((ci * kh + ki) * kw + kj) * width + local * hw
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

    /// The adjoint of im2col for one block: scatter-adds its columns into the images' gradient.
    func col2im<T: TensorScalar>(_ src: UnsafePointer<T>, images: Range<Int>, into gx: UnsafeMutablePointer<T>) {
        let s = geo.stride, width = images.count * hw
        let (cols, dst) = (UncheckedSendable(src), UncheckedSendable(gx))
        Parallel.run(images.count * c) { job in
            let local = job / c, ci = job % c
            let image = dst.value + ((images.lowerBound + local) * c + ci) * h * w
            for ki in 0..<kh {
                for kj in 0..<kw {
                    let row = cols.value + ((ci * kh + ki) * kw + kj) * width + local * hw
                    let valid = validColumns(kj: kj)
                    guard !valid.isEmpty else { continue }
                    for oy in 0..<ho {
                        let iy = oy * s - geo.padding + ki
                        guard iy >= 0 && iy < h else { continue }
                        let from = row + oy * wo + valid.lowerBound
                        let to = image + iy * w + valid.lowerBound * s - geo.padding + kj
                        if s == 1 {
                            T.add(from, into: to, count: valid.count)
                        } else {
                            for j in 0..<valid.count { to[j * s] += from[j] }
                        }
                    }
                }
            }
        }
    }

    /// Between a block's (O, |images| HW) product layout and the images' (N, O, HW) layout; adds
    /// `bias[o]` on the way out when given.
    func blockToImages<T: TensorScalar>(_ block: UnsafePointer<T>, images: Range<Int>, into out: UnsafeMutablePointer<T>, bias: UnsafePointer<T>?) {
        let width = images.count * hw
        let (src, dst, add) = (UncheckedSendable(block), UncheckedSendable(out), UncheckedSendable(bias))
        Parallel.run(images.count * o) { job in
            let local = job / o, oc = job % o
            let (block, out, bias) = (src.value, dst.value, add.value)
            do {
                let (from, to) = (block + oc * width + local * hw, out + ((images.lowerBound + local) * o + oc) * hw)
                if let bias {
                    let add = bias[oc]
                    for i in 0..<hw { to[i] = from[i] + add }
                } else {
                    to.update(from: from, count: hw)
                }
            }
        }
    }

    func imagesToBlock<T: TensorScalar>(_ images: Range<Int>, from g: UnsafePointer<T>, into block: UnsafeMutablePointer<T>) {
        let width = images.count * hw
        let (src, dst) = (UncheckedSendable(g), UncheckedSendable(block))
        Parallel.run(images.count * o) { job in
            let local = job / o, oc = job % o
            (dst.value + oc * width + local * hw).update(from: src.value + ((images.lowerBound + local) * o + oc) * hw, count: hw)
        }
    }
}

extension Tensor {
    /// `F.conv2d(x, weight, bias, stride, padding)`: (N, C, H, W) -> (N, O, Ho, Wo).
    /// Per block of images: im2col into cached scratch, one gemm, then out to NCHW (with the bias).
    @_specialize(where T == Float)
    public func conv2d(_ weight: Tensor, _ bias: Tensor? = nil, _ geo: Conv2dGeometry = .init()) -> Tensor {
        precondition(rank == 4 && weight.rank == 4 && weight.shape[1] == shape[1], "conv2d: input \(shape), weight \(weight.shape)")
        let p = ConvPlan(input: shape, kernel: weight.shape, geo: geo)
        let blockWidth = p.blockImages * p.hw
        // The columns are scratch, rebuilt in the backward pass rather than kept on the tape.
        let out: [T] = filledArray(count: p.n * p.o * p.hw) { out in
            Scratch.with(T.self, count: p.ck * blockWidth, zeroed: false) { cols in
                Scratch.with(T.self, count: p.o * blockWidth, zeroed: false) { product in
                    storage.withUnsafeBufferPointer { x in
                        weight.storage.withUnsafeBufferPointer { w in
                            withOptionalPointer(bias?.storage) { b in
                                for images in p.blocks {
                                    p.im2col(x.baseAddress!, images: images, into: cols)
                                    gemm(w.baseAddress!, UnsafePointer(cols), product, m: p.o, n: images.count * p.hw, k: p.ck,
                                         transA: false, transB: false, beta: 0, parallel: true)
                                    p.blockToImages(UnsafePointer(product), images: images, into: out.baseAddress!, bias: b)
                                }
                            }
                        }
                    }
                }
            }
        }
        let x = self
        let inputs = [x, weight] + (bias.map { [$0] } ?? [])
        return Tensor.make(out, shape: [p.n, p.o, p.ho, p.wo], inputs: inputs) { g in
            let needW = weight.requiresGrad, needX = x.requiresGrad
            var gw = [T](repeating: 0, count: needW ? weight.count : 0)
            var gx = [T](repeating: 0, count: needX ? x.count : 0)
            if needW || needX {
                Scratch.with(T.self, count: p.ck * blockWidth, zeroed: false) { cols in
                    Scratch.with(T.self, count: p.o * blockWidth, zeroed: false) { gBlock in
                        x.storage.withUnsafeBufferPointer { xs in
                            weight.storage.withUnsafeBufferPointer { w in
                                g.withUnsafeBufferPointer { gp in
                                    gw.withUnsafeMutableBufferPointer { gwp in
                                        gx.withUnsafeMutableBufferPointer { gxp in
                                            for (i, images) in p.blocks.enumerated() {
                                                let width = images.count * p.hw
                                                p.imagesToBlock(images, from: gp.baseAddress!, into: gBlock)
                                                if needW {   // gW += g (O, width) x cols^T (width, CK)
                                                    p.im2col(xs.baseAddress!, images: images, into: cols)
                                                    gemm(UnsafePointer(gBlock), UnsafePointer(cols), gwp.baseAddress!, m: p.o, n: p.ck, k: width,
                                                         transA: false, transB: true, beta: i == 0 ? 0 : 1, parallel: true)
                                                }
                                                if needX {   // columns' gradient W^T (CK, O) x g (O, width), scattered back
                                                    gemm(w.baseAddress!, UnsafePointer(gBlock), cols, m: p.ck, n: width, k: p.o,
                                                         transA: true, transB: false, beta: 0, parallel: true)
                                                    p.col2im(UnsafePointer(cols), images: images, into: gxp.baseAddress!)
                                                }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            if needW { weight.accumulate(gw) }
            if needX { x.accumulate(gx) }
            if let bias, bias.requiresGrad {
                // Per (image, channel) sums, then over the images in order.
                let sums = T.rowSums(g, rows: p.n * p.o)
                var gb = [T](repeating: 0, count: p.o)
                for b in 0..<p.n { for oc in 0..<p.o { gb[oc] += sums[b * p.o + oc] } }
                bias.accumulate(gb)
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
