import CShims

extension ConvPlan {
    // MARK: im2col + gemm

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
