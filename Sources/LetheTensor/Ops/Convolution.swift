// 2-D convolution over blocks of images, NCHW activations and (O, C, kH, kW) weights as in PyTorch.
// Each convolution takes one of five paths, chosen from its shapes alone: Winograd F(4x4, 3x3)
// (Winograd.swift), direct (few input channels, or strided), shifted products, pointwise (1x1: a
// product per image), or im2col + gemm.

import CShims

public struct Conv2dGeometry: Sendable, Equatable {
    public var stride: Int
    public var padding: Int
    public init(stride: Int = 1, padding: Int = 0) {
        self.stride = stride
        self.padding = padding
    }

    func outSize(_ size: Int, kernel: Int) -> Int { (size + 2 * padding - kernel) / stride + 1 }
}

/// Sizes of one convolution and the index maps between images and columns.
///
/// The batch is processed in blocks of `blockImages` images whose im2col matrix stays small enough to
/// live in the core's cache (about 1 MiB): the columns are written, packed by the product and read
/// back while still cached, instead of streaming a C k k times larger copy of the whole batch through
/// memory three times per pass.
/// How a convolution is computed; chosen once per plan from the shapes alone (`ConvPlan.choose`), so
/// results never depend on anything else. One file per algorithm: Winograd.swift, ConvDirect.swift,
/// ConvShifted.swift, ConvIm2col.swift.
enum ConvAlgorithm: Sendable, Equatable {
    /// Winograd F(4x4, 3x3): stride-1 3x3 convolutions with 8+ input channels.
    case winograd
    /// Direct register-tiled kernels: strided convolutions and those with fewer than 8 input channels.
    case direct
    /// One gemm per kernel tap over a zero-padded copy: other stride-1 convolutions from 32x32 outputs.
    case shifted
    /// 1x1, stride 1, no padding: one product per image, straight from the input into the output.
    case pointwise
    /// im2col + gemm: everything else (larger kernels on small images, padded or strided 1x1).
    case im2col
}

struct ConvPlan {
    let n, c, h, w, o, kh, kw, ho, wo: Int
    let geo: Conv2dGeometry
    /// This plan's algorithm.
    let algorithm: ConvAlgorithm
    var hw: Int { ho * wo }
    var ck: Int { c * kh * kw }
    /// Images per block; fixed by the shapes alone, never by the thread count.
    var blockImages: Int

    init(input: [Int], kernel: [Int], geo: Conv2dGeometry) {
        (n, c, h, w) = (input[0], input[1], input[2], input[3])
        (o, kh, kw) = (kernel[0], kernel[2], kernel[3])
        self.geo = geo
        ho = geo.outSize(h, kernel: kh)
        wo = geo.outSize(w, kernel: kw)
        algorithm = Self.choose(c: c, kh: kh, kw: kw, stride: geo.stride, padding: geo.padding, outputPixels: ho * wo)
        blockImages = 1
        let perImage: Int
        switch algorithm {
        case .winograd: perImage = winogradPerImage
        case .direct: perImage = directPerImage
        case .shifted, .im2col, .pointwise: perImage = max(1, c * kh * kw * ho * wo)
        }
        blockImages = ConvPlan.blockImages(n: n, perImage: perImage)
    }

    /// The one place the algorithm is decided, from the shapes alone. Measured on the development
    /// machine (2026-11-27): shifted products win over im2col from 32x32 outputs (32 -> 32 channels:
    /// 1.5x at 16x16 loses, 2x at 32x32 wins).
    static func choose(c: Int, kh: Int, kw: Int, stride: Int, padding: Int, outputPixels: Int) -> ConvAlgorithm {
        if stride == 1 && kh == 3 && kw == 3 && c >= 8 { return .winograd }
        if stride == 1 && kh == 1 && kw == 1 && padding == 0 { return .pointwise }
        if (stride > 1 || c < 8) && !(kh == 1 && kw == 1 && stride == 1) { return .direct }
        if stride == 1 && outputPixels >= 1024 { return .shifted }
        return .im2col
    }

    var winograd: Bool { algorithm == .winograd }
    var direct: Bool { algorithm == .direct }
    var shifted: Bool { algorithm == .shifted }

    /// At most a cache's worth of scratch per block, and at least eight blocks when the batch allows,
    /// so the blocks spread evenly over the threads; a power of two, so that batches of 32 or 64
    /// images split into equal blocks (3 images per block would leave one thread 2 images more).
    static func blockImages(n: Int, perImage: Int) -> Int {
        let limit = max(1, min((n + 7) / 8, blockElements / max(1, perImage)))
        return 1 << (Int.bitWidth - 1 - limit.leadingZeroBitCount)
    }

    /// Column-matrix elements per block (floats: 1 MiB).
    static let blockElements = 1 << 18

    /// For stride 1: the convolution that maps the output's gradient to the input's (input (N, O, Ho,
    /// Wo), kernel (C, O, k, k), padding k - 1 - p, output (N, C, H, W)); nil where that does not hold.
    func transposedPlan() -> ConvPlan? {
        guard geo.stride == 1, kh == kw, geo.padding <= kh - 1 else { return nil }
        var t = ConvPlan(
            input: [n, o, ho, wo], kernel: [c, o, kh, kw], geo: Conv2dGeometry(stride: 1, padding: kh - 1 - geo.padding)
        )
        guard t.ho == h, t.wo == w else { return nil }
        t.blockImages = blockImages  // the same image blocks as this plan
        return t
    }

    /// W'[c][o][i][j] = W[o][c][k-1-i][k-1-j]: the kernel of the transposed convolution.
    func flippedKernel<T: TensorScalar>(_ weight: [T]) -> [T] {
        var out = [T](repeating: 0, count: weight.count)
        for oc in 0..<o {
            for ci in 0..<c {
                for i in 0..<kh {
                    for j in 0..<kw {
                        out[((ci * o + oc) * kh + i) * kw + j] =
                            weight[((oc * c + ci) * kh + (kh - 1 - i)) * kw + (kw - 1 - j)]
                    }
                }
            }
        }
        return out
    }

    /// The kernel in the form this plan's path multiplies with: Winograd's U, per-tap weights for
    /// shifted products, or the weight as it is for im2col.
    func preparedKernel<T: TensorScalar>(_ weight: [T]) -> [T] {
        switch algorithm {
        case .winograd: return winogradKernel(weight)
        case .shifted: return taps(weight)
        case .direct, .im2col, .pointwise: return weight
        }
    }

    /// One block of the convolution by this plan's path: out[images] = conv(x[images]) + bias, with
    /// `kernel` from `preparedKernel`. Serial (blocks run in parallel); used for the forward pass and,
    /// on the transposed plan, for the input gradient.
    func forwardBlock<T: TensorScalar>(
        _ x: UnsafePointer<T>, images: Range<Int>, kernel: UnsafePointer<T>, bias: UnsafePointer<T>?,
        into out: UnsafeMutablePointer<T>
    ) {
        switch algorithm {
        case .winograd:
            let tiles = tiles(images.count)
            Scratch.with(T.self, count: 36 * c * tiles, zeroed: false) { v in
                Scratch.with(T.self, count: 36 * o * tiles, zeroed: false) { m in
                    winogradInput(x, images: images, into: v)
                    winogradProducts(kernel, UnsafePointer(v), images: images.count, into: m)
                    winogradOutput(UnsafePointer(m), images: images, into: out, bias: bias)
                }
            }
        case .direct:
            directForward(x, images: images, weight: kernel, bias: bias, into: out)
        case .shifted:
            Scratch.with(T.self, count: c * paddedStride(images.count), zeroed: false) { padded in
                Scratch.with(T.self, count: o * images.count * paddedPlane, zeroed: false) { q in
                    pad(x, images: images, into: padded)
                    shiftedProducts(UnsafePointer(padded), taps: kernel, images: images.count, into: q)
                    unpad(UnsafePointer(q), images: images, into: out, bias: bias)
                }
            }
        case .pointwise:
            // out[b] (O, HW) = W (O, C) x[b] (C, HW), written in place; the bias added after.
            for b in images {
                gemm(
                    kernel, x + b * c * hw, out + b * o * hw, m: o, n: hw, k: c, transA: false, transB: false,
                    beta: 0, parallel: false)
                guard let bias else { continue }
                for oc in 0..<o {
                    let (row, add) = (out + (b * o + oc) * hw, bias[oc])
                    for i in 0..<hw { row[i] += add }
                }
            }
        case .im2col:
            let width = images.count * hw
            Scratch.with(T.self, count: ck * width, zeroed: false) { cols in
                Scratch.with(T.self, count: o * width, zeroed: false) { product in
                    im2col(x, images: images, into: cols)
                    gemm(
                        kernel, UnsafePointer(cols), product, m: o, n: width, k: ck, transA: false, transB: false,
                        beta: 0, parallel: false)
                    blockToImages(UnsafePointer(product), images: images, into: out, bias: bias)
                }
            }
        }
    }

    /// The image blocks, in order.
    var blocks: [Range<Int>] { stride(from: 0, to: n, by: blockImages).map { $0..<min(n, $0 + blockImages) } }

}

extension Tensor {
    /// `F.conv2d(x, weight, bias, stride, padding)`: (N, C, H, W) -> (N, O, Ho, Wo).
    /// Blocks of images run in parallel, each by the plan's path (`ConvPlan.forwardBlock`).
    @_specialize(where T == Float)
    public func conv2d(_ weight: Tensor, _ bias: Tensor? = nil, _ geo: Conv2dGeometry = .init()) -> Tensor {
        precondition(
            rank == 4 && weight.rank == 4 && weight.shape[1] == shape[1],
            "conv2d: input \(shape), weight \(weight.shape)")
        let p = ConvPlan(input: shape, kernel: weight.shape, geo: geo)
        let blocks = p.blocks
        let kernel = p.preparedKernel(weight.storage)
        // The columns are scratch, rebuilt in the backward pass rather than kept on the tape.
        let out: [T] = filledArray(count: p.n * p.o * p.hw) { out in
            storage.withUnsafeBufferPointer { x in
                kernel.withUnsafeBufferPointer { k in
                    withOptionalPointer(bias?.storage) { b in
                        let ptrs = UncheckedSendable((x.baseAddress!, k.baseAddress!, b, out.baseAddress!))
                        Parallel.blocksWithSerialBLAS(blocks.count) { i in
                            let (x, k, b, out) = ptrs.value
                            p.forwardBlock(x, images: blocks[i], kernel: k, bias: b, into: out)
                        }
                    }
                }
            }
        }
        let x = self
        let inputs = [x, weight] + (bias.map { [$0] } ?? [])
        return Tensor.make(out, shape: [p.n, p.o, p.ho, p.wo], inputs: inputs) { g in
            let needW = weight.requiresGrad
            let needX = x.requiresGrad
            // Each block adds its share of the weight gradient into its own slot; the slots are then
            // added in block order, so the sum never depends on the thread count.
            // Every path writes each block's slot whole, so the slots start uninitialised.
            var partials: [T] = unwrittenArray(count: needW ? blocks.count * weight.count : 0)
            // With stride 1 (and a square kernel, padding < k) the input's gradient is itself a
            // convolution: of g with the flipped, transposed kernel and padding k - 1 - p. Its product
            // has depth O k k instead of O and needs no scatter-add.
            let transposed = needX ? p.transposedPlan() : nil
            let flipped = transposed.map { $0.preparedKernel(p.flippedKernel(weight.storage)) } ?? []
            // The transposed convolution writes every element of gx; the scatter-add of col2im needs zeros.
            var gx: [T] =
                !needX
                ? []
                : transposed == nil && !p.direct ? [T](repeating: 0, count: x.count) : unwrittenArray(count: x.count)
            if needW || needX {
                x.storage.withUnsafeBufferPointer { xs in
                    weight.storage.withUnsafeBufferPointer { w in
                        g.withUnsafeBufferPointer { gp in
                            partials.withUnsafeMutableBufferPointer { gwp in
                                gx.withUnsafeMutableBufferPointer { gxp in
                                    let ptrs = UncheckedSendable(
                                        (
                                            xs.baseAddress!, w.baseAddress!, gp.baseAddress!, gwp.baseAddress,
                                            gxp.baseAddress
                                        ))
                                    Parallel.blocksWithSerialBLAS(blocks.count) { i in
                                        let (xs, w, gp, gwp, gxp) = ptrs.value
                                        p.backwardBlock(
                                            x: xs, weight: w, g: gp, images: blocks[i],
                                            weightGradient: needW ? gwp! + i * weight.count : nil,
                                            inputGradient: needX ? gxp! : nil, transposed: transposed,
                                            flippedKernel: flipped)
                                    }
                                }
                            }
                        }
                    }
                }
            }
            var gw = [T]()
            if needW {
                gw = Array(partials[0..<weight.count])
                gw.withUnsafeMutableBufferPointer { total in
                    partials.withUnsafeBufferPointer { parts in
                        for i in 1..<max(1, blocks.count) {
                            T.add(parts.baseAddress! + i * weight.count, into: total.baseAddress!, count: weight.count)
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
        let out: [T] = filledArray(count: count * 4) { o in
            storage.withUnsafeBufferPointer { x in
                let p = UncheckedSendable((x.baseAddress!, o.baseAddress!))
                Parallel.run(n * c) { plane in
                    let (src, dst) = (p.value.0 + plane * h * w, p.value.1 + plane * 4 * h * w)
                    for y in 0..<(2 * h) {
                        let (from, to) = (src + (y / 2) * w, dst + y * 2 * w)
                        for x in 0..<w {
                            to[2 * x] = from[x]
                            to[2 * x + 1] = from[x]
                        }
                    }
                }
            }
        }
        return Tensor.make(out, shape: [n, c, 2 * h, 2 * w], inputs: [self]) { [self] g in
            // Each input pixel sums its four outputs in the order (2i, 2j), (2i, 2j+1), (2i+1, 2j), (2i+1, 2j+1).
            let gx: [T] = filledArray(count: count) { gx in
                g.withUnsafeBufferPointer { gp in
                    let p = UncheckedSendable((gp.baseAddress!, gx.baseAddress!))
                    Parallel.run(n * c) { plane in
                        let (src, dst) = (p.value.0 + plane * 4 * h * w, p.value.1 + plane * h * w)
                        for i in 0..<h {
                            let (top, bottom, row) = (src + 2 * i * 2 * w, src + (2 * i + 1) * 2 * w, dst + i * w)
                            for j in 0..<w {
                                var s: T = 0
                                s += top[2 * j]
                                s += top[2 * j + 1]
                                s += bottom[2 * j]
                                s += bottom[2 * j + 1]
                                row[j] = s
                            }
                        }
                    }
                }
            }
            accumulate(gx)
        }
    }
}
