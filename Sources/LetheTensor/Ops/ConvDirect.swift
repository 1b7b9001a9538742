import CShims

extension ConvPlan {
    // MARK: direct convolution
    //
    // Convolutions with few input channels make thin products (depth C k k of 9 or 18 for the image
    // input layers), and strided ones need an im2col copy 2.25 times their input; both run as a
    // direct convolution instead (CShims/direct.c): one padded copy of the input split into `stride` column
    // phases, so that every tap of 8 neighbouring outputs reads 8 neighbouring floats, and register
    // tiles of 4 output channels x 24 output pixels. 1x1 stride-1 convolutions are products as they
    // are and stay on im2col (a plain copy there).

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
}
