import CShims

extension ConvPlan {
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
}
