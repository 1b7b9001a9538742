// Winograd F(2x2, 3x3) for stride-1 3x3 convolutions (Lavin & Gray, 2016).
//
// Each 2x2 tile of output is Y = A^T [(G g G^T) ⊙ (B^T d B)] A, with d the 4x4 input tile it reads
// and g a 3x3 kernel. Over a block of images the elementwise product becomes 16 independent products
// (one per position ξ of the 4x4 transformed tile): M_ξ (O, tiles) = U_ξ (O, C) x V_ξ (C, tiles),
// with 16 multiplications per tile and channel pair where direct convolution needs 36. The transforms'
// coefficients are 0, ±1 and ±1/2, so rounding stays close to the direct sum's (the tests compare
// against it). Backward: the weight gradient is dU_ξ = dM_ξ V_ξ^T with dM = A dY A^T, mapped back by
// dg = G^T dU G; the input gradient is the transposed convolution, itself a stride-1 3x3 convolution.
//
//   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]   G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1]
//   A^T = [1 1 1 0; 0 1 -1 -1]

import CShims

extension ConvPlan {
    /// Whether this convolution runs as Winograd F(2x2, 3x3): stride 1, 3x3, and enough input channels
    /// for the 16 products to be worth their transforms (shape-only decision).
    var winograd: Bool { geo.stride == 1 && kh == 3 && kw == 3 && c >= 8 }
    var tilesH: Int { (ho + 1) / 2 }
    var tilesW: Int { (wo + 1) / 2 }
    func tiles(_ images: Int) -> Int { images * tilesH * tilesW }
    /// Elements per image of the transformed input (16 C tiles) or output (16 O tiles).
    var winogradPerImage: Int { 16 * max(c, o) * tilesH * tilesW }

    /// U[ξ][o][c] = (G g G^T)[ξ] for every kernel g = W[o][c].
    func winogradKernel<T: TensorScalar>(_ weight: [T]) -> [T] {
        var u = [T](repeating: 0, count: 16 * o * c)
        weight.withUnsafeBufferPointer { wp in
            u.withUnsafeMutableBufferPointer { up in
                var t = [T](repeating: 0, count: 12)           // G g: 4x3, reused for every kernel
                for oc in 0..<o {
                    for ci in 0..<c {
                        let g = wp.baseAddress! + (oc * c + ci) * 9
                        for j in 0..<3 {
                            let (g0, g1, g2) = (g[j], g[3 + j], g[6 + j])
                            t[j] = g0
                            t[3 + j] = (g0 + g1 + g2) / 2
                            t[6 + j] = (g0 - g1 + g2) / 2
                            t[9 + j] = g2
                        }
                        for i in 0..<4 {                       // (G g) G^T: 4x4
                            let (t0, t1, t2) = (t[3 * i], t[3 * i + 1], t[3 * i + 2])
                            let at = { (j: Int) in ((i * 4 + j) * o + oc) * c + ci }
                            up[at(0)] = t0
                            up[at(1)] = (t0 + t1 + t2) / 2
                            up[at(2)] = (t0 - t1 + t2) / 2
                            up[at(3)] = t2
                        }
                    }
                }
            }
        }
        return u
    }

    /// dg = G^T dU G for every (o, c), written into `dw` in (O, C, 3, 3) layout.
    func winogradKernelGradient<T: TensorScalar>(_ du: UnsafePointer<T>, into dw: UnsafeMutablePointer<T>) {
        var t = [T](repeating: 0, count: 12)                   // G^T dU: 3x4, reused for every kernel
        for oc in 0..<o {
            for ci in 0..<c {
                let u = { (xi: Int) in du[(xi * o + oc) * c + ci] }
                for j in 0..<4 {
                    let (u0, u1, u2, u3) = (u(j), u(4 + j), u(8 + j), u(12 + j))
                    t[j] = u0 + (u1 + u2) / 2
                    t[4 + j] = (u1 - u2) / 2
                    t[8 + j] = (u1 + u2) / 2 + u3
                }
                let out = dw + (oc * c + ci) * 9
                for i in 0..<3 {                               // (G^T dU) G: 3x3
                    let (t0, t1, t2, t3) = (t[4 * i], t[4 * i + 1], t[4 * i + 2], t[4 * i + 3])
                    out[3 * i] = t0 + (t1 + t2) / 2
                    out[3 * i + 1] = (t1 - t2) / 2
                    out[3 * i + 2] = (t1 + t2) / 2 + t3
                }
            }
        }
    }

    /// V[ξ][c][tile] = (B^T d B)[ξ] for the input tiles of a block (zeros outside the image).
    func winogradInput<T: TensorScalar>(_ x: UnsafePointer<T>, images: Range<Int>, into v: UnsafeMutablePointer<T>) {
        if T.self == Float.self {
            lethe_winograd_input(UnsafeRawPointer(x + images.lowerBound * c * h * w).assumingMemoryBound(to: Float.self), images.count, c, h, w,
                                 geo.padding, tilesH, tilesW, UnsafeMutableRawPointer(v).assumingMemoryBound(to: Float.self))
            return
        }
        let count = tiles(images.count), p = geo.padding
        for local in 0..<images.count {
            for ci in 0..<c {
                let plane = x + ((images.lowerBound + local) * c + ci) * h * w
                for ty in 0..<tilesH {
                    for tx in 0..<tilesW {
                        var d = (T(0), T(0), T(0), T(0), T(0), T(0), T(0), T(0), T(0), T(0), T(0), T(0), T(0), T(0), T(0), T(0))
                        withUnsafeMutableBytes(of: &d) { raw in
                            let d = raw.baseAddress!.assumingMemoryBound(to: T.self)
                            let (y0, x0) = (2 * ty - p, 2 * tx - p)
                            for i in 0..<4 where y0 + i >= 0 && y0 + i < h {
                                for j in 0..<4 where x0 + j >= 0 && x0 + j < w { d[4 * i + j] = plane[(y0 + i) * w + x0 + j] }
                            }
                            // B^T d: rows
                            for j in 0..<4 {
                                let (d0, d1, d2, d3) = (d[j], d[4 + j], d[8 + j], d[12 + j])
                                d[j] = d0 - d2; d[4 + j] = d1 + d2; d[8 + j] = d2 - d1; d[12 + j] = d1 - d3
                            }
                            // (B^T d) B: columns, scattered to the 16 planes
                            let tile = (local * tilesH + ty) * tilesW + tx
                            for i in 0..<4 {
                                let (t0, t1, t2, t3) = (d[4 * i], d[4 * i + 1], d[4 * i + 2], d[4 * i + 3])
                                v[((4 * i) * c + ci) * count + tile] = t0 - t2
                                v[((4 * i + 1) * c + ci) * count + tile] = t1 + t2
                                v[((4 * i + 2) * c + ci) * count + tile] = t2 - t1
                                v[((4 * i + 3) * c + ci) * count + tile] = t1 - t3
                            }
                        }
                    }
                }
            }
        }
    }

    /// M_ξ (O, tiles) = U_ξ (O, C) x V_ξ (C, tiles) for the 16 positions.
    func winogradProducts<T: TensorScalar>(_ u: UnsafePointer<T>, _ v: UnsafePointer<T>, images: Int, into m: UnsafeMutablePointer<T>) {
        let count = tiles(images)
        for xi in 0..<16 {
            T.gemm(transA: false, transB: false, m: o, n: count, k: c, alpha: 1, a: u + xi * o * c, lda: c,
                   b: v + xi * c * count, ldb: count, beta: 0, c: m + xi * o * count, ldc: count)
        }
    }

    /// Y = A^T M A per tile, plus the bias, into the block's (N, O, Ho, Wo) outputs.
    func winogradOutput<T: TensorScalar>(_ m: UnsafePointer<T>, images: Range<Int>, into out: UnsafeMutablePointer<T>, bias: UnsafePointer<T>?) {
        if T.self == Float.self {
            lethe_winograd_output(UnsafeRawPointer(m).assumingMemoryBound(to: Float.self), images.count, o, ho, wo, tilesH, tilesW,
                                  bias.map { UnsafeRawPointer($0).assumingMemoryBound(to: Float.self) },
                                  UnsafeMutableRawPointer(out + images.lowerBound * o * hw).assumingMemoryBound(to: Float.self))
            return
        }
        let count = tiles(images.count)
        for local in 0..<images.count {
            for oc in 0..<o {
                let plane = out + ((images.lowerBound + local) * o + oc) * hw
                let add = bias?[oc] ?? 0
                for ty in 0..<tilesH {
                    for tx in 0..<tilesW {
                        let tile = (local * tilesH + ty) * tilesW + tx
                        // A^T M: 2x4, from the 16 planes
                        var t = (T(0), T(0), T(0), T(0), T(0), T(0), T(0), T(0))
                        withUnsafeMutableBytes(of: &t) { raw in
                            let t = raw.baseAddress!.assumingMemoryBound(to: T.self)
                            for j in 0..<4 {
                                let m0 = m[((0 + j) * o + oc) * count + tile], m1 = m[((4 + j) * o + oc) * count + tile]
                                let m2 = m[((8 + j) * o + oc) * count + tile], m3 = m[((12 + j) * o + oc) * count + tile]
                                t[j] = m0 + m1 + m2
                                t[4 + j] = m1 - m2 - m3
                            }
                            for i in 0..<2 where 2 * ty + i < ho {
                                let (t0, t1, t2, t3) = (t[4 * i], t[4 * i + 1], t[4 * i + 2], t[4 * i + 3])
                                let row = plane + (2 * ty + i) * wo + 2 * tx
                                row[0] = t0 + t1 + t2 + add
                                if 2 * tx + 1 < wo { row[1] = t1 - t2 - t3 + add }
                            }
                        }
                    }
                }
            }
        }
    }

    /// dM[ξ][o][tile] = (A dY A^T)[ξ] for the block's output gradient (zeros beyond the output).
    func winogradOutputGradient<T: TensorScalar>(_ g: UnsafePointer<T>, images: Range<Int>, into dm: UnsafeMutablePointer<T>) {
        if T.self == Float.self {
            lethe_winograd_output_gradient(UnsafeRawPointer(g + images.lowerBound * o * hw).assumingMemoryBound(to: Float.self), images.count, o, ho, wo,
                                           tilesH, tilesW, UnsafeMutableRawPointer(dm).assumingMemoryBound(to: Float.self))
            return
        }
        let count = tiles(images.count)
        for local in 0..<images.count {
            for oc in 0..<o {
                let plane = g + ((images.lowerBound + local) * o + oc) * hw
                for ty in 0..<tilesH {
                    for tx in 0..<tilesW {
                        let tile = (local * tilesH + ty) * tilesW + tx
                        func at(_ i: Int, _ j: Int) -> T {
                            let (y, x) = (2 * ty + i, 2 * tx + j)
                            return y < ho && x < wo ? plane[y * wo + x] : 0
                        }
                        // A dY: 4x2 (rows), then (A dY) A^T: 4x4 (columns)
                        let (a, b, cc, d) = (at(0, 0), at(0, 1), at(1, 0), at(1, 1))
                        let rows = [(a, b), (a + cc, b + d), (a - cc, b - d), (-cc, -d)]
                        for (i, (r0, r1)) in rows.enumerated() {
                            dm[((4 * i) * o + oc) * count + tile] = r0
                            dm[((4 * i + 1) * o + oc) * count + tile] = r0 + r1
                            dm[((4 * i + 2) * o + oc) * count + tile] = r0 - r1
                            dm[((4 * i + 3) * o + oc) * count + tile] = -r1
                        }
                    }
                }
            }
        }
    }

    /// dU_ξ (O, C) = dM_ξ (O, tiles) x V_ξ^T (tiles, C) for the 16 positions.
    func winogradKernelProducts<T: TensorScalar>(_ dm: UnsafePointer<T>, _ v: UnsafePointer<T>, images: Int, into du: UnsafeMutablePointer<T>) {
        let count = tiles(images)
        for xi in 0..<16 {
            T.gemm(transA: false, transB: true, m: o, n: c, k: count, alpha: 1, a: dm + xi * o * count, lda: count,
                   b: v + xi * c * count, ldb: count, beta: 0, c: du + xi * o * c, ldc: c)
        }
    }
}
