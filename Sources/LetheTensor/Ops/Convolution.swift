// 2-D convolution over blocks of images, NCHW activations and (O, C, kH, kW) weights as in PyTorch.
// Each convolution takes one of four paths, chosen from its shapes alone: Winograd F(4x4, 3x3)
// (Winograd.swift), direct (few input channels, or strided), shifted products, or im2col + gemm.

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
struct ConvPlan {
    let n, c, h, w, o, kh, kw, ho, wo: Int
    let geo: Conv2dGeometry
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
        blockImages = 1
        let perImage = winograd ? winogradPerImage : direct ? directPerImage : max(1, c * kh * kw * ho * wo)
        blockImages = ConvPlan.blockImages(n: n, perImage: perImage)
    }

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

    // MARK: shifted products
    //
    // With stride 1 a convolution is a sum of k*k products, one per kernel tap, of the tap's (O, C)
    // weights with the zero-padded input shifted by the tap: on a padded grid (rows of Wp = W + 2p),
    // output pixel q reads input q + ki Wp + kj, so each shifted input is just an offset into one
    // padded copy. That replaces im2col's k*k-fold copy with one 1.1-1.3-fold copy. The products have
    // depth C instead of C k k, which OpenBLAS runs less efficiently on small images: measured on the
    // development machine (2026-11-27), shifted products win from 32x32 images (32 -> 32 channels:
    // 238 vs 275 us per image forward, 284 vs 363 us for the weight gradient, before im2col's own
    // cost) and lose at 16x16 and below, so they are used from 1024 output pixels per image.

    /// Whether this convolution runs as shifted products over a padded copy (shape-only decision).
    var shifted: Bool { !winograd && !direct && geo.stride == 1 && hw >= 1024 }
    var paddedWidth: Int { w + 2 * geo.padding }
    var paddedPlane: Int { (h + 2 * geo.padding) * paddedWidth }
    /// Zeros after each channel's padded rows, so the furthest-shifted view stays inside the copy.
    var slack: Int { (kh - 1) * paddedWidth + (kw - 1) }
    /// Row stride of the padded copy of a block of `images`.
    func paddedStride(_ images: Int) -> Int { images * paddedPlane + slack }

    /// The padded copy of a block: (C, images Hp Wp + slack), channel-major so the block's images
    /// sit side by side in each row. Every entry is written.
    func pad<T: TensorScalar>(_ x: UnsafePointer<T>, images: Range<Int>, into dst: UnsafeMutablePointer<T>) {
        let (wp, pd, ld) = (paddedWidth, geo.padding, paddedStride(images.count))
        dst.update(repeating: 0, count: c * ld)
        for ci in 0..<c {
            for local in 0..<images.count {
                let plane = x + ((images.lowerBound + local) * c + ci) * h * w
                let to = dst + ci * ld + local * paddedPlane + pd * wp + pd
                for y in 0..<h { (to + y * wp).update(from: plane + y * w, count: w) }
            }
        }
    }

    /// The gradient of a block's outputs on the padded grid (O, images Hp Wp), zeros where no output is.
    func padOutputs<T: TensorScalar>(_ g: UnsafePointer<T>, images: Range<Int>, into dst: UnsafeMutablePointer<T>) {
        let (wp, span) = (paddedWidth, images.count * paddedPlane)
        dst.update(repeating: 0, count: o * span)
        for oc in 0..<o {
            for local in 0..<images.count {
                let from = g + ((images.lowerBound + local) * o + oc) * hw
                let to = dst + oc * span + local * paddedPlane
                for y in 0..<ho { (to + y * wp).update(from: from + y * wo, count: wo) }
            }
        }
    }

    /// Per-tap weights: taps[t][o][c] = W[o][c][t / kw][t % kw].
    func taps<T: TensorScalar>(_ weight: [T]) -> [T] {
        var out = [T](repeating: 0, count: weight.count)
        for t in 0..<(kh * kw) {
            for oc in 0..<o { for ci in 0..<c { out[(t * o + oc) * c + ci] = weight[(oc * c + ci) * kh * kw + t] } }
        }
        return out
    }

    /// Q (O, images Hp Wp) = sum over taps of taps[t] (O, C) x the padded copy shifted by the tap.
    func shiftedProducts<T: TensorScalar>(
        _ padded: UnsafePointer<T>, taps: UnsafePointer<T>, images: Int, into q: UnsafeMutablePointer<T>
    ) {
        let (span, ld) = (images * paddedPlane, paddedStride(images))
        for t in 0..<(kh * kw) {
            T.gemm(
                transA: false, transB: false, m: o, n: span, k: c, alpha: 1, a: taps + t * o * c, lda: c,
                b: padded + (t / kw) * paddedWidth + t % kw, ldb: ld, beta: t == 0 ? 0 : 1, c: q, ldc: span)
        }
    }

    /// The outputs of a block from Q on the padded grid into (N, O, Ho, Wo), plus the bias.
    func unpad<T: TensorScalar>(
        _ q: UnsafePointer<T>, images: Range<Int>, into out: UnsafeMutablePointer<T>, bias: UnsafePointer<T>?
    ) {
        let (wp, span) = (paddedWidth, images.count * paddedPlane)
        for local in 0..<images.count {
            for oc in 0..<o {
                let add = bias?[oc] ?? 0
                let from = q + oc * span + local * paddedPlane
                let to = out + ((images.lowerBound + local) * o + oc) * hw
                for y in 0..<ho { for x in 0..<wo { to[y * wo + x] = from[y * wp + x] + add } }
            }
        }
    }

    /// A block's weight gradient: per tap, g on the padded grid (O, span) x the shifted copy^T, into
    /// `dw` in (O, C, kh, kw) layout (overwritten); `tapScratch` holds kh kw O C elements.
    func shiftedWeightGradient<T: TensorScalar>(
        _ gPadded: UnsafePointer<T>, _ padded: UnsafePointer<T>, images: Int,
        tapScratch: UnsafeMutablePointer<T>, into dw: UnsafeMutablePointer<T>
    ) {
        let (span, ld) = (images * paddedPlane, paddedStride(images))
        for t in 0..<(kh * kw) {
            T.gemm(
                transA: false, transB: true, m: o, n: c, k: span, alpha: 1, a: gPadded, lda: span,
                b: padded + (t / kw) * paddedWidth + t % kw, ldb: ld, beta: 0, c: tapScratch + t * o * c, ldc: c)
        }
        for t in 0..<(kh * kw) {
            for oc in 0..<o { for ci in 0..<c { dw[(oc * c + ci) * kh * kw + t] = tapScratch[(t * o + oc) * c + ci] } }
        }
    }

    // MARK: direct convolution
    //
    // Convolutions with few input channels make thin products (depth C k k of 9 or 18 for the image
    // input layers), and strided ones need an im2col copy 2.25 times their input; both run as a
    // direct convolution instead (kernels.c): one padded copy of the input split into `stride` column
    // phases, so that every tap of 8 neighbouring outputs reads 8 neighbouring floats, and register
    // tiles of 4 output channels x 24 output pixels. 1x1 stride-1 convolutions are products as they
    // are and stay on im2col (a plain copy there).

    /// Whether this convolution runs direct (shape-only decision).
    var direct: Bool { !winograd && (geo.stride > 1 || c < 8) && !(kh == 1 && kw == 1 && geo.stride == 1) }
    /// Rows of the packed input that outputs read, and floats per packed row (a multiple of 8 outputs
    /// plus the widest tap offset).
    var directRows: Int { (ho - 1) * geo.stride + kh }
    var directWidth: Int { (wo + 7) / 8 * 8 + (kw - 1) / geo.stride }
    var directPerImage: Int {
        c * directRows * geo.stride * directWidth + ((wo % 8 == 0) ? 0 : o * ho * ((wo + 7) / 8 * 8))
    }

    /// The same memory as Float, for the C kernels (callers check T == Float).
    @inline(__always) private func floats<T>(_ p: UnsafePointer<T>) -> UnsafePointer<Float> {
        UnsafeRawPointer(p).assumingMemoryBound(to: Float.self)
    }
    @inline(__always) private func floats<T>(_ p: UnsafeMutablePointer<T>) -> UnsafeMutablePointer<Float> {
        UnsafeMutableRawPointer(p).assumingMemoryBound(to: Float.self)
    }

    /// The packed input of a block (Float only; the Double path reads the images directly).
    func directPack(_ x: UnsafePointer<Float>, images: Range<Int>, into xp: UnsafeMutablePointer<Float>) {
        lethe_direct_pack(
            x + images.lowerBound * c * h * w, images.count, c, h, w, geo.stride, geo.padding, kw, directRows, wo, xp)
    }

    /// The input pixel tap (ki, kj) of output (oy, ox) reads, in its image plane, or nil in the padding.
    @inline(__always)
    func inputPixel(_ oy: Int, _ ox: Int, _ ki: Int, _ kj: Int) -> Int? {
        let iy = oy * geo.stride - geo.padding + ki
        let ix = ox * geo.stride - geo.padding + kj
        return iy >= 0 && iy < h && ix >= 0 && ix < w ? iy * w + ix : nil
    }

    /// out[images] = conv(x[images]) + bias, directly.
    func directForward<T: TensorScalar>(
        _ x: UnsafePointer<T>, images: Range<Int>, weight: UnsafePointer<T>, bias: UnsafePointer<T>?,
        into out: UnsafeMutablePointer<T>
    ) {
        if T.self == Float.self {
            Scratch.with(Float.self, count: images.count * directPerImage, zeroed: false) { xp in
                directPack(floats(x), images: images, into: xp)
                lethe_direct_forward(
                    xp, images.count, c, o, kh, kw, geo.stride, directRows, ho, wo, floats(weight),
                    bias.map { floats($0) },
                    floats(out + images.lowerBound * o * hw))
            }
            BLAS.count(m: o, n: images.count * hw, k: ck)
            return
        }
        for b in images {
            for oc in 0..<o {
                for oy in 0..<ho {
                    for ox in 0..<wo {
                        var sum = T(0)
                        for ci in 0..<c {
                            let plane = x + (b * c + ci) * h * w
                            let kernel = weight + (oc * c + ci) * kh * kw
                            for ki in 0..<kh {
                                for kj in 0..<kw {
                                    if let at = inputPixel(oy, ox, ki, kj) { sum += kernel[ki * kw + kj] * plane[at] }
                                }
                            }
                        }
                        out[((b * o + oc) * ho + oy) * wo + ox] = sum + (bias?[oc] ?? 0)
                    }
                }
            }
        }
    }

    /// A block's weight gradient, directly, into `dw` in (O, C, kh, kw) layout (overwritten).
    func directWeightGradient<T: TensorScalar>(
        _ x: UnsafePointer<T>, _ g: UnsafePointer<T>, images: Range<Int>, into dw: UnsafeMutablePointer<T>
    ) {
        if T.self == Float.self {
            let gBlock = floats(g + images.lowerBound * o * hw)
            let wr = (wo + 7) / 8 * 8
            Scratch.with(Float.self, count: images.count * directPerImage, zeroed: false) { xp in
                directPack(floats(x), images: images, into: xp)
                let dwf = floats(dw)
                if wr == wo {  // rows already a whole number of vectors
                    lethe_direct_weight_gradient(
                        xp, gBlock, images.count, c, o, kh, kw, geo.stride, directRows, ho, wo, dwf)
                } else {
                    let gp = xp + images.count * c * directRows * geo.stride * directWidth
                    lethe_direct_pack_gradient(gBlock, images.count, o, ho, wo, gp)
                    lethe_direct_weight_gradient(
                        xp, gp, images.count, c, o, kh, kw, geo.stride, directRows, ho, wo, dwf)
                }
            }
            BLAS.count(m: o, n: images.count * hw, k: ck)
            return
        }
        dw.update(repeating: 0, count: o * c * kh * kw)
        for b in images {
            for oc in 0..<o {
                for ci in 0..<c {
                    let plane = x + (b * c + ci) * h * w
                    let grad = g + (b * o + oc) * hw
                    let kernel = dw + (oc * c + ci) * kh * kw
                    for ki in 0..<kh {
                        for kj in 0..<kw {
                            var sum = T(0)
                            for oy in 0..<ho {
                                for ox in 0..<wo {
                                    if let at = inputPixel(oy, ox, ki, kj) { sum += grad[oy * wo + ox] * plane[at] }
                                }
                            }
                            kernel[ki * kw + kj] += sum
                        }
                    }
                }
            }
        }
    }

    /// A block's input gradient, directly, into gx[images] (every element written): for strided
    /// convolutions, whose input gradient is no stride-1 convolution.
    func directInputGradient<T: TensorScalar>(
        _ g: UnsafePointer<T>, images: Range<Int>, weight: UnsafePointer<T>, into gx: UnsafeMutablePointer<T>
    ) {
        if T.self == Float.self {
            lethe_direct_input_gradient(
                floats(g + images.lowerBound * o * hw), images.count, c, h, w, o, kh, kw, geo.stride, geo.padding, ho,
                wo,
                floats(weight), floats(gx + images.lowerBound * c * h * w))
            BLAS.count(m: o, n: images.count * hw, k: ck)
            return
        }
        (gx + images.lowerBound * c * h * w).update(repeating: 0, count: images.count * c * h * w)
        for b in images {
            for oc in 0..<o {
                for oy in 0..<ho {
                    for ox in 0..<wo {
                        let grad = g[((b * o + oc) * ho + oy) * wo + ox]
                        for ci in 0..<c {
                            let plane = gx + (b * c + ci) * h * w
                            let kernel = weight + (oc * c + ci) * kh * kw
                            for ki in 0..<kh {
                                for kj in 0..<kw {
                                    if let at = inputPixel(oy, ox, ki, kj) { plane[at] += kernel[ki * kw + kj] * grad }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// The kernel in the form this plan's path multiplies with: Winograd's U, per-tap weights for
    /// shifted products, or the weight as it is for im2col.
    func preparedKernel<T: TensorScalar>(_ weight: [T]) -> [T] {
        winograd ? winogradKernel(weight) : shifted ? taps(weight) : weight
    }

    /// One block of the convolution by this plan's path: out[images] = conv(x[images]) + bias, with
    /// `kernel` from `preparedKernel`. Serial (blocks run in parallel); used for the forward pass and,
    /// on the transposed plan, for the input gradient.
    func forwardBlock<T: TensorScalar>(
        _ x: UnsafePointer<T>, images: Range<Int>, kernel: UnsafePointer<T>, bias: UnsafePointer<T>?,
        into out: UnsafeMutablePointer<T>
    ) {
        if winograd {
            let tiles = tiles(images.count)
            Scratch.with(T.self, count: 36 * c * tiles, zeroed: false) { v in
                Scratch.with(T.self, count: 36 * o * tiles, zeroed: false) { m in
                    winogradInput(x, images: images, into: v)
                    winogradProducts(kernel, UnsafePointer(v), images: images.count, into: m)
                    winogradOutput(UnsafePointer(m), images: images, into: out, bias: bias)
                }
            }
        } else if direct {
            directForward(x, images: images, weight: kernel, bias: bias, into: out)
        } else if shifted {
            Scratch.with(T.self, count: c * paddedStride(images.count), zeroed: false) { padded in
                Scratch.with(T.self, count: o * images.count * paddedPlane, zeroed: false) { q in
                    pad(x, images: images, into: padded)
                    shiftedProducts(UnsafePointer(padded), taps: kernel, images: images.count, into: q)
                    unpad(UnsafePointer(q), images: images, into: out, bias: bias)
                }
            }
        } else {
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

    /// Output columns ox whose input column ox*s - p + kj lies inside the image.
    @inline(__always)
    func validColumns(kj: Int) -> Range<Int> {
        let lo = max(0, (geo.padding - kj + geo.stride - 1) / geo.stride)
        let last = w - 1 + geo.padding - kj  // the largest ox s that stays inside (may be < 0)
        let hi = last < 0 ? 0 : min(wo, last / geo.stride + 1)
        return lo..<max(lo, hi)
    }

    /// cols[(ci, ki, kj)][(b - images.lowerBound, oy, ox)] = x[b][ci][oy*s - p + ki][ox*s - p + kj]
    /// (0 outside) for the images of one block: a (C k k, |images| Ho Wo) matrix. Every entry is
    /// written (the padding with zeros), so `dst` may start uninitialised.
    func im2col<T: TensorScalar>(_ x: UnsafePointer<T>, images: Range<Int>, into dst: UnsafeMutablePointer<T>) {
        if T.self == Float.self {  // the C kernel: short runs as plain loops, not library calls
            lethe_im2col(
                UnsafeRawPointer(x + images.lowerBound * c * h * w).assumingMemoryBound(to: Float.self), images.count,
                c, h, w, kh, kw, geo.stride, geo.padding, ho, wo,
                UnsafeMutableRawPointer(dst).assumingMemoryBound(to: Float.self))
            return
        }
        forEachRow(images: images) { row, image, valid in
            let d = dst + row
            guard let image else {
                d.update(repeating: 0, count: wo)
                return
            }
            d.update(repeating: 0, count: valid.lowerBound)
            for j in 0..<valid.count { d[valid.lowerBound + j] = x[image + j * geo.stride] }
            (d + valid.upperBound).update(repeating: 0, count: wo - valid.upperBound)
        }
    }

    /// Calls `body(row, pixel, valid)` for every output row of every column-matrix row of a block:
    /// `row` is the offset of that run of `wo` columns in the block's matrix, `pixel` the offset in the
    /// images of the input pixel under column `valid.lowerBound` (the next ones `stride` apart), nil
    /// when the row lies wholly in the padding. The Double path of im2col and col2im; Float runs the
    /// same traversal in C.
    private func forEachRow(images: Range<Int>, _ body: (Int, Int?, Range<Int>) -> Void) {
        let s = geo.stride
        let width = images.count * hw
        for local in 0..<images.count {
            for ci in 0..<c {
                let image = ((images.lowerBound + local) * c + ci) * h * w
                for ki in 0..<kh {
                    for kj in 0..<kw {
                        let row = ((ci * kh + ki) * kw + kj) * width + local * hw
                        let valid = validColumns(kj: kj)
                        for oy in 0..<ho {
                            let iy = oy * s - geo.padding + ki
                            let inside = iy >= 0 && iy < h && !valid.isEmpty
                            body(
                                row + oy * wo, inside ? image + iy * w + valid.lowerBound * s - geo.padding + kj : nil,
                                valid)
                        }
                    }
                }
            }
        }
    }

    /// The adjoint of im2col for one block: scatter-adds its columns into the images' gradient.
    func col2im<T: TensorScalar>(_ src: UnsafePointer<T>, images: Range<Int>, into gx: UnsafeMutablePointer<T>) {
        if T.self == Float.self {
            lethe_col2im(
                UnsafeRawPointer(src).assumingMemoryBound(to: Float.self), images.count, c, h, w, kh, kw, geo.stride,
                geo.padding,
                ho, wo, UnsafeMutableRawPointer(gx + images.lowerBound * c * h * w).assumingMemoryBound(to: Float.self))
            return
        }
        forEachRow(images: images) { row, image, valid in
            guard let image else { return }
            for j in 0..<valid.count { gx[image + j * geo.stride] += src[row + valid.lowerBound + j] }
        }
    }

    /// Between a block's (O, |images| HW) product layout and the images' (N, O, HW) layout; adds
    /// `bias[o]` on the way out when given.
    func blockToImages<T: TensorScalar>(
        _ block: UnsafePointer<T>, images: Range<Int>, into out: UnsafeMutablePointer<T>, bias: UnsafePointer<T>?
    ) {
        let width = images.count * hw
        for local in 0..<images.count {
            for oc in 0..<o {
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

    func imagesToBlock<T: TensorScalar>(
        _ images: Range<Int>, from g: UnsafePointer<T>, into block: UnsafeMutablePointer<T>
    ) {
        let width = images.count * hw
        for local in 0..<images.count {
            for oc in 0..<o {
                (block + oc * width + local * hw).update(
                    from: g + ((images.lowerBound + local) * o + oc) * hw, count: hw)
            }
        }
    }
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
            let blockWidth = p.blockImages * p.hw
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
                                        let images = blocks[i]
                                        let width = images.count * p.hw
                                        Scratch.with(T.self, count: p.ck * blockWidth, zeroed: false) { cols in
                                            Scratch.with(T.self, count: p.o * blockWidth, zeroed: false) { gBlock in
                                                let im2colWeight = needW && !p.winograd && !p.direct && !p.shifted
                                                if im2colWeight || (needX && transposed == nil && !p.direct) {
                                                    p.imagesToBlock(images, from: gp, into: gBlock)
                                                }
                                                // dU = (A dY A^T) V^T per position, dW = G^T dU G
                                                if needW && p.winograd {
                                                    let tiles = p.tiles(images.count)
                                                    Scratch.with(T.self, count: 36 * p.c * tiles, zeroed: false) { v in
                                                        Scratch.with(T.self, count: 36 * p.o * tiles, zeroed: false) {
                                                            dm in
                                                            Scratch.with(T.self, count: 36 * p.o * p.c, zeroed: false) {
                                                                du in
                                                                p.winogradInput(xs, images: images, into: v)
                                                                p.winogradOutputGradient(gp, images: images, into: dm)
                                                                p.winogradKernelProducts(
                                                                    UnsafePointer(dm), UnsafePointer(v),
                                                                    images: images.count, into: du)
                                                                p.winogradKernelGradient(
                                                                    UnsafePointer(du), into: gwp! + i * weight.count)
                                                            }
                                                        }
                                                    }
                                                } else if needW && p.direct {
                                                    p.directWeightGradient(
                                                        xs, gp, images: images, into: gwp! + i * weight.count)
                                                    // per tap: g on the padded grid x shifted copy^T
                                                } else if needW && p.shifted {
                                                    Scratch.with(
                                                        T.self, count: p.c * p.paddedStride(images.count), zeroed: false
                                                    ) { padded in
                                                        Scratch.with(
                                                            T.self, count: p.o * images.count * p.paddedPlane,
                                                            zeroed: false
                                                        ) { gPadded in
                                                            Scratch.with(T.self, count: weight.count, zeroed: false) {
                                                                tapScratch in
                                                                p.pad(xs, images: images, into: padded)
                                                                p.padOutputs(gp, images: images, into: gPadded)
                                                                p.shiftedWeightGradient(
                                                                    UnsafePointer(gPadded), UnsafePointer(padded),
                                                                    images: images.count,
                                                                    tapScratch: tapScratch,
                                                                    into: gwp! + i * weight.count)
                                                            }
                                                        }
                                                    }
                                                } else if needW {  // gW_i = g (O, width) x cols^T (width, CK)
                                                    p.im2col(xs, images: images, into: cols)
                                                    gemm(
                                                        UnsafePointer(gBlock), UnsafePointer(cols),
                                                        gwp! + i * weight.count, m: p.o, n: p.ck, k: width,
                                                        transA: false, transB: true, beta: 0, parallel: false)
                                                }
                                                // gx = the transposed convolution, by its own path
                                                if let t = transposed {
                                                    flipped.withUnsafeBufferPointer {
                                                        t.forwardBlock(
                                                            gp, images: images, kernel: $0.baseAddress!, bias: nil,
                                                            into: gxp!)
                                                    }
                                                } else if needX && p.direct {
                                                    p.directInputGradient(gp, images: images, weight: w, into: gxp!)
                                                    // columns' gradient W^T (CK, O) x g (O, width), scattered back
                                                } else if needX {
                                                    gemm(
                                                        w, UnsafePointer(gBlock), cols, m: p.ck, n: width, k: p.o,
                                                        transA: true, transB: false, beta: 0, parallel: false)
                                                    p.col2im(UnsafePointer(cols), images: images, into: gxp!)
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
        var out = [T](repeating: 0, count: count * 4)
        for p in 0..<(n * c) {
            for y in 0..<(2 * h) {
                for x in 0..<(2 * w) { out[p * 4 * h * w + y * 2 * w + x] = storage[p * h * w + (y / 2) * w + x / 2] }
            }
        }
        return Tensor.make(out, shape: [n, c, 2 * h, 2 * w], inputs: [self]) { [self] g in
            var gx = [T](repeating: 0, count: count)
            for p in 0..<(n * c) {
                for y in 0..<(2 * h) {
                    for x in 0..<(2 * w) { gx[p * h * w + (y / 2) * w + x / 2] += g[p * 4 * h * w + y * 2 * w + x] }
                }
            }
            accumulate(gx)
        }
    }
}
